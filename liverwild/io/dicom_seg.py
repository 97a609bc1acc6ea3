"""DICOM Segmentation objects (SEG) of predicted masks, written with highdicom (the optional ``dicom``
extra: ``pip install 'liverwild[dicom]'``).

A SEG references its source series (Study, Series and Frame of Reference UIDs; every frame names the
source slice it was derived from) and carries that slice's plane position and orientation, so a viewer
overlays it on the scan. Each organ is one segment (binary), coded with SNOMED CT concepts from pydicom's
code dictionary (:data:`ORGAN_CODES`; category "Anatomical Structure"), with the algorithm identified
(liverwild, its version, the model, and whether it was trained on synthetic data only).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..errors import ConfigurationError, ImageReadError
from .dicom import sorted_series_files

INSTALL_HINT = "pip install 'liverwild[dicom]' (or: pip install highdicom)"

ORGAN_CODES = {  # organ → (pydicom codes.SCT name of the property type, laterality modifier or None)
    "liver": ("Liver", None),
    "spleen": ("Spleen", None),
    "kidney": ("Kidney", None),
    "left_kidney": ("Kidney", "Left"),
    "right_kidney": ("Kidney", "Right"),
    "gallbladder": ("Gallbladder", None),
    "esophagus": ("Esophagus", None),
    "stomach": ("Stomach", None),
    "pancreas": ("Pancreas", None),
    "duodenum": ("Duodenum", None),
}
"""An organ not listed is coded as the generic SNOMED CT "Organ" (91772007), labelled with its name."""


def require_highdicom() -> None:
    """Refuse (one line naming the pip command) when highdicom, which writes SEG objects, is missing."""
    if importlib.util.find_spec("highdicom") is None:
        raise ConfigurationError(f"--output-type dicom-seg needs highdicom, which is not installed: {INSTALL_HINT}")


def source_datasets(volume) -> list:
    """The pydicom headers (no pixel data) of the DICOM series ``volume`` was read from, one per slice
    of ``volume.array`` in its order (``result[k]`` ↔ ``array[k]``): each file is placed by its
    ImagePositionPatient on the volume's grid, so the pairing never rests on file or instance order.
    A slice off the grid, or a grid slice without a file, raises :class:`ImageReadError`."""
    import pydicom

    geometry = volume.geometry
    d, origin = geometry.direction_matrix, np.asarray(geometry.origin)
    nx, ny, nz = geometry.size
    placed: dict = {}
    for name in sorted_series_files(volume.path):
        ds = pydicom.dcmread(name, stop_before_pixels=True)
        offset = np.asarray(ds.ImagePositionPatient, float) - origin
        k = float(offset @ d[:, 2]) / geometry.spacing[2]
        sideways = float(np.linalg.norm(offset - (offset @ d[:, 2]) * d[:, 2]))
        row_col = np.asarray(ds.ImageOrientationPatient, float)
        same_plane = np.allclose(row_col, np.concatenate([d[:, 0], d[:, 1]]), atol=1e-3)
        if abs(k - round(k)) > 0.05 or sideways > 0.05 * min(geometry.spacing) or not same_plane:
            raise ImageReadError(name, "does not lie on the grid of the series read (cannot reference it in a SEG)")
        if "FrameOfReferenceUID" not in ds:
            raise ImageReadError(name, "has no FrameOfReferenceUID, which a SEG must reference")
        if (int(ds.Rows), int(ds.Columns)) != (ny, nx) or round(k) in placed:
            raise ImageReadError(name, "does not match the series read (size or a repeated position)")
        placed[round(k)] = ds
    if sorted(placed) != list(range(nz)):
        raise ImageReadError(volume.path, f"{len(placed)} DICOM files for {nz} slices: cannot reference every slice")
    return [placed[k] for k in range(nz)]


def segment_descriptions(labels: dict, algorithm) -> list:
    """highdicom SegmentDescriptions of ``labels`` (value → organ name; 0 skipped), segment number = value."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    out = []
    for value, organ in sorted(labels.items()):
        if int(value) == 0:
            continue
        name, side = ORGAN_CODES.get(organ, ("Organ", None))
        description = hd.seg.SegmentDescription(
            segment_number=int(value),
            segment_label=organ[:64],
            segmented_property_category=codes.SCT.AnatomicalStructure,
            segmented_property_type=getattr(codes.SCT, name),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
        )
        if side is not None:  # the laterality modifier lives inside the property type's code item
            modifier = hd.sr.CodedConcept.from_code(getattr(codes.SCT, side))
            description.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [modifier]
        out.append(description)
    return out


def write_dicom_seg(mask: np.ndarray, sources: list, labels: dict, path, model: str, training: str = "") -> Path:
    """Write ``mask`` (uint8 ``(z, y, x)``, values = ``labels``' keys; slice ``k`` on ``sources[k]``, from
    :func:`source_datasets`) as a binary DICOM SEG at ``path`` (atomically); returns the path.

    ``model`` names the model (manufacturer model name, algorithm parameters); ``training`` describes its
    training data when worth saying (e.g. "synthetic data only"). An empty mask gives a SEG whose frames
    are all empty (highdicom keeps every frame then), which says "nothing found" to a viewer.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    from .. import __version__

    parameters = {"model": model, **({"training_data": training} if training else {})}
    algorithm = hd.AlgorithmIdentificationSequence(
        name="liverwild", family=codes.cid7162.ArtificialIntelligence, version=__version__, parameters=parameters
    )
    described = f"liverwild {model}" + (f" ({training})" if training else "")
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=np.ascontiguousarray(mask, dtype=np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=segment_descriptions(labels, algorithm),
        series_instance_uid=hd.UID(),
        series_number=int(sources[0].get("SeriesNumber") or 0) + 1000,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="liverwild",
        manufacturer_model_name=model[:64],
        software_versions=__version__,
        device_serial_number="none",
        content_description=described[:64],
        content_label="LIVERWILD",
        series_description=described[:64],
        omit_empty_frames=bool(np.any(mask)),  # an empty mask keeps its empty frames (none would be invalid)
    )
    if training:
        seg.ImageComments = f"liverwild model {model}: trained on {training}; not a medical device"
    path = Path(path)
    with atomic_path(path, ".dcm") as tmp:
        seg.save_as(tmp)
    return path

"""DICOM series: discovery, ordering by position, and the checks of a regular stack.

Slices are ordered by their position along the slice normal (ImagePositionPatient projected on the
cross product of the ImageOrientationPatient row and column vectors), never by file name. A folder that
holds several series is an error naming them unless a series UID is chosen. ITK stacks the slices on
one spacing, straight along the normal: gaps, uneven spacing and gantry tilts that would misplace a
slice are refused, and slices with different rescales are read in float32.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import ImageReadError

MODALITY_TAG = "0008|0060"  # Modality: CT, MR, ...
GAP_FACTOR = 1.5  # a step this many times the smallest step is a missing slice
# a slice farther than this share of the slice step, and than GRID_FLOOR_MM, off the regular grid ITK
# assumes (first to last position in equal steps): uneven spacing, refused. The floor covers positions
# rounded to 0.1 mm in the headers (each off by up to 0.05 mm, the ends too), which misplace nothing
GRID_TOLERANCE = 0.05
GRID_FLOOR_MM = 0.2


def _series_ids(folder: str) -> tuple:
    """GDCM's series UIDs in ``folder`` without ITK's console warning for folders without DICOM."""
    previous = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        return tuple(sitk.ImageSeriesReader.GetGDCMSeriesIDs(folder) or ())
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(previous)


def list_series(folder) -> dict:
    """Series instance UID → file names in that folder (not sorted). Empty when there is no DICOM."""
    folder = str(folder)
    series = {}
    for uid in _series_ids(folder):
        series[uid] = list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder, uid))
    return series


def is_dicom_folder(folder) -> bool:
    folder = Path(folder)
    return folder.is_dir() and any(p.is_file() for p in folder.iterdir()) and bool(_series_ids(str(folder)))


def _tag(reader: sitk.ImageFileReader, tag: str) -> str:
    return reader.GetMetaData(tag).strip() if reader.HasMetaDataKey(tag) else ""


def _slice_header(file_name: str) -> tuple:
    """``(position (3,), orientation (6,), rescale "slope/intercept", pixel spacing "row\\column" or "")``
    of one slice file."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(file_name)
    reader.ReadImageInformation()
    frames = _tag(reader, "0028|0008")
    if frames not in ("", "1"):
        raise ImageReadError(
            file_name,
            f"an enhanced multi-frame DICOM object ({frames} frames) is not supported: convert it to NIfTI "
            "(e.g. with dcm2niix) or to single-frame slices",
        )
    try:
        position = [float(v) for v in reader.GetMetaData("0020|0032").split("\\")]
        orientation = [float(v) for v in reader.GetMetaData("0020|0037").split("\\")]
    except RuntimeError as exc:
        raise ImageReadError(file_name, "DICOM slice without ImagePositionPatient/ImageOrientationPatient") from exc
    rescale = f"{_tag(reader, '0028|1053')}/{_tag(reader, '0028|1052')}"
    return np.asarray(position), np.asarray(orientation), rescale, _tag(reader, "0028|0030")


def sorted_series_files(folder, series_uid: str | None = None) -> list:
    """The files of one series, ordered by position along the slice normal (inferior → superior
    for axial series). Raises :class:`ImageReadError` for no series, several series, mixed
    orientations, duplicate positions or gaps."""
    series = list_series(folder)
    if not series:
        raise ImageReadError(folder, "no DICOM series found in this folder")
    if series_uid is None:
        if len(series) > 1:
            listing = ", ".join(f"{uid} ({len(files)} files)" for uid, files in series.items())
            raise ImageReadError(
                folder,
                f"holds {len(series)} DICOM series ({listing}); put each series in its own folder "
                "(lw_predict reads one series per folder; in Python, read_dicom_series(folder, series_uid))",
            )
        series_uid = next(iter(series))
    if series_uid not in series:
        raise ImageReadError(folder, f"no series with UID {series_uid}")
    return sort_by_position(series[series_uid], folder)


def sort_by_position(files, where=None) -> list:
    """Order DICOM slice files by position along the slice normal; raise for mixed orientations,
    duplicate positions, gaps (a step over 1.5× the smallest step), uneven spacing, a gantry tilt or no
    pixel spacing. ``where`` names the series in errors."""
    return _ordered_series(files, where)[0]


def _ordered_series(files, where=None) -> tuple[list, bool]:
    """``(files ordered as by sort_by_position, whether RescaleSlope/Intercept differ between slices)``."""
    files = [str(f) for f in files]
    where = where or (Path(files[0]).parent if files else "")
    if not files:
        raise ImageReadError(where, "no DICOM slices")
    headers = [_slice_header(f) for f in files]
    if not headers[0][3]:
        raise ImageReadError(files[0], "no PixelSpacing (0028,0030): the voxel size is unknown")
    pixel = min(float(v) for v in headers[0][3].split("\\"))
    orientation = headers[0][1]
    if any(not np.allclose(h[1], orientation, atol=1e-3) for h in headers):
        raise ImageReadError(where, "slices of one series have different orientations")
    normal = np.cross(orientation[:3], orientation[3:])
    normal /= max(float(np.linalg.norm(normal)), 1e-12)  # cosines rounded in the header: not quite unit
    distance = np.array([h[0] @ normal for h in headers])
    order = np.argsort(distance, kind="stable")
    files = [files[i] for i in order]
    distance = distance[order]
    if len(files) > 1:
        steps = np.diff(distance)
        if np.any(steps < 1e-3):
            k = int(np.argmin(steps))
            raise ImageReadError(
                where,
                f"two slices share the position {distance[k]:.3f} mm "
                f"({Path(files[k]).name}, {Path(files[k + 1]).name})",
            )
        positions = np.array([headers[i][0] for i in order])
        along = positions[-1] - positions[0]
        sideways = float(np.linalg.norm(along - (along @ normal) * normal))
        if sideways > 0.5 * pixel:  # the last slice half a pixel or more off the stack: a tilt ITK would drop
            angle = float(np.degrees(np.arctan2(sideways, float(along @ normal))))
            raise ImageReadError(
                where,
                f"slices are not stacked along their normal (gantry tilt of about {angle:.1f}°); "
                "resample it to an orthogonal grid first (e.g. dcm2niix, which corrects tilt)",
            )
        regular = float(steps.min())
        if np.any(steps > GAP_FACTOR * regular):
            k = int(np.argmax(steps))
            raise ImageReadError(
                where,
                f"gap in the series: {steps[k]:.2f} mm between "
                f"{Path(files[k]).name} and {Path(files[k + 1]).name} "
                f"where {regular:.2f} mm is the slice step",
            )
        step = (distance[-1] - distance[0]) / (len(files) - 1)  # ITK's one spacing
        off = np.abs(distance - distance[0] - step * np.arange(len(files)))
        k = int(np.argmax(off))
        if off[k] > max(GRID_TOLERANCE * step, GRID_FLOOR_MM):
            raise ImageReadError(
                where,
                f"uneven slice spacing (steps from {steps.min():.2f} to {steps.max():.2f} mm): "
                f"{Path(files[k]).name} lies {off[k]:.2f} mm off a regular {step:.2f} mm grid; "
                "resample it to regular slices first",
            )
    return files, len({headers[i][2] for i in order}) > 1


def read_dicom_files(files, where=None) -> sitk.Image:
    """Read DICOM slice files (any order) as one 3D image, sorted by position; in float32 where the
    slices' RescaleSlope/Intercept differ (ITK would cast every slice to the first one's pixel type)."""
    ordered, rescale_varies = _ordered_series(files, where)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(ordered)
    if rescale_varies:
        reader.SetOutputPixelType(sitk.sitkFloat32)
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise ImageReadError(
            where or Path(ordered[0]).parent, f"DICOM series cannot be read: {_first_line(exc)}"
        ) from exc
    modality = dicom_tag(ordered[0], MODALITY_TAG)
    if modality:
        image.SetMetaData(MODALITY_TAG, modality)  # read_image's Volume.modality
    return image


def dicom_tag(file_name, tag: str, default=None):
    """One header value (e.g. '0018|0081' echo time) of a DICOM file, read without pixel data."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(file_name))
    reader.ReadImageInformation()
    return _tag(reader, tag) if reader.HasMetaDataKey(tag) else default


def read_dicom_series(folder, series_uid: str | None = None) -> sitk.Image:
    """Read one DICOM series folder as a 3D SimpleITK image with the scanner's geometry."""
    return read_dicom_files(sorted_series_files(folder, series_uid), folder)


def write_dicom_series(
    array: np.ndarray,
    geometry,
    folder,
    file_names=None,
    series_uid=None,
    modality: str = "CT",
    extra_tags: dict | None = None,
    compression: str | None = None,
) -> list:
    """Write an int16 ``(z, y, x)`` array as a DICOM series (one file per slice) with ``geometry``.

    For tests, examples and exports. ``file_names`` (one per slice, in array order) lets a caller
    scramble names to prove that readers order by position. ``compression``: 'JPEG2000' or 'JPEG'
    (lossless transfer syntaxes). Returns the written paths.
    """
    from .geometry import Geometry  # local: keeps the module import light

    assert isinstance(geometry, Geometry)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    image = sitk.GetImageFromArray(np.asarray(array).astype(np.int16))
    geometry.apply_to(image)
    series_uid = series_uid or "1.2.826.0.1.3680043.2.1125." + str(abs(hash(str(folder))) % 10**12)
    d = geometry.direction_matrix
    orientation = "\\".join(f"{v:.6f}" for v in (*d[:, 0], *d[:, 1]))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    writer.SetImageIO("GDCMImageIO")  # also for names without .dcm (IRCADb: image_0)
    if compression:  # 'JPEG2000' or 'JPEG' (lossless), as PACS exports may be
        writer.SetUseCompression(True)
        writer.SetCompressor(compression)
    paths = []
    for k in range(image.GetDepth()):
        piece = image[:, :, k]
        position = geometry.index_to_physical((0, 0, k))
        tags = {
            "0008|0060": modality,
            "0020|000e": series_uid,
            "0020|000d": series_uid + ".0.1",  # study; ".0." keeps it apart from the instances' UIDs
            "0020|0052": series_uid + ".0.2",  # frame of reference: a SEG of this series must name it
            "0008|0018": f"{series_uid}.{k + 1}",
            "0020|0013": str(k + 1),
            "0020|0032": "\\".join(f"{v:.6f}" for v in position),
            "0020|0037": orientation,
            "0018|0050": f"{geometry.spacing[2]:.6f}",
            "0028|1050": "40",
            "0028|1051": "400",
            "0028|1052": "0",
            "0028|1053": "1",
        }
        for key, value in {**tags, **(extra_tags or {})}.items():
            piece.SetMetaData(key, value)
        name = file_names[k] if file_names is not None else f"slice_{k:04d}.dcm"
        path = folder / name
        writer.SetFileName(str(path))
        writer.Execute(piece)
        paths.append(path)
    return paths


def _first_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    # ITK messages start with a file/line location; the description is usually the last line.
    return lines[-1] if lines else type(exc).__name__

"""Read scans and write masks with their geometry (SimpleITK underneath).

Supported inputs: NIfTI (``.nii``, ``.nii.gz``), NRRD (``.nrrd``, ``.nhdr``), MetaImage (``.mha``,
``.mhd``) and DICOM series folders. Every problem is raised as :class:`~liverwild.errors.ImageReadError`
whose message is one line naming the file and the problem.
"""

from __future__ import annotations

import gzip
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..atomic import atomic_path
from ..errors import ImageReadError
from .dicom import MODALITY_TAG, _first_line, is_dicom_folder, read_dicom_series
from .geometry import Geometry

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
WRITE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha")  # single-file formats: atomic rename works
DEFAULT_MAX_IMAGE_GB = 16.0  # LW_MAX_IMAGE_GB overrides


def max_image_bytes() -> float:
    return float(os.environ.get("LW_MAX_IMAGE_GB", DEFAULT_MAX_IMAGE_GB)) * 2**30


def _bytes_per_component(pixel_id) -> int:
    """'16-bit signed integer' → 2 (8 when the description names no width)."""
    text = sitk.GetPixelIDValueAsString(pixel_id)
    for bits in (8, 16, 32, 64):
        if f"{bits}-bit" in text:
            return bits // 8
    return 8


def check_header(path, size, spacing, direction, bytes_per_voxel: int) -> None:
    """Refuse, before any voxel is allocated, headers claiming an absurd size, non-positive or
    non-finite spacing, or direction cosines that are not orthonormal."""
    n = float(np.prod([float(v) for v in size]))
    if n * bytes_per_voxel > max_image_bytes():
        raise ImageReadError(
            path,
            f"header claims {'×'.join(str(int(v)) for v in size)} voxels "
            f"({n * bytes_per_voxel / 2**30:.0f} GiB), more than liverwild reads "
            f"({max_image_bytes() / 2**30:.0f} GiB; LW_MAX_IMAGE_GB raises it) — refused "
            "before allocating",
        )
    if any(v == 0 for v in size):
        raise ImageReadError(path, f"has an empty dimension (size {tuple(int(v) for v in size)})")
    if not all(np.isfinite(v) and v > 0 for v in spacing):
        raise ImageReadError(path, f"has non-positive or non-finite voxel spacing {tuple(spacing)}")
    d = int(round(len(direction) ** 0.5))
    matrix = np.asarray(direction, float).reshape(d, d)
    if not np.all(np.isfinite(matrix)) or not np.allclose(matrix @ matrix.T, np.eye(d), atol=1e-3):
        raise ImageReadError(
            path,
            "direction cosines are not orthonormal (sheared or degenerate orientation "
            f"{tuple(round(float(v), 4) for v in direction)})",
        )


@dataclass
class Volume:
    """A 3D scan: ``array`` is NumPy ``(z, y, x)``; ``geometry`` places it in patient space."""

    array: np.ndarray
    geometry: Geometry
    path: str = ""
    modality: str = ""  # a DICOM series' Modality (0008,0060), e.g. "CT" or "MR"; "" for other formats


def image_suffix(path) -> str:
    """The recognised suffix of ``path`` ('' when unsupported)."""
    name = str(path).lower()
    return next((s for s in IMAGE_SUFFIXES if name.endswith(s)), "")


def header_data_files(header) -> list[Path]:
    """The data files a detached header (``.mhd``: ``ElementDataFile = X``; ``.nhdr``: ``data file: X``)
    names beside itself; none for ``LOCAL`` data, file lists and patterns, or an unreadable header."""
    header = Path(header)
    if not header.name.lower().endswith((".mhd", ".nhdr")):
        return []
    try:
        with open(header, "rb") as f:
            text = f.read(65536).decode("latin-1")
    except OSError:
        return []
    found = []
    for line in text.splitlines():
        key, separator, value = line.partition("=" if header.suffix.lower() == ".mhd" else ":")
        key = key.strip().lower().replace(" ", "")
        if separator and key in ("elementdatafile", "datafile"):
            value = value.strip()
            if value and value.upper() not in ("LOCAL", "LIST") and "%" not in value and " " not in value:
                found.append(header.parent / value)
    return found


def is_supported(path) -> bool:
    path = Path(path)
    return (path.is_file() and bool(image_suffix(path))) or is_dicom_folder(path)


def checked_reader(path: Path) -> sitk.ImageFileReader:
    """A reader of ``path`` whose header has been read and checked (:func:`check_header`; NIfTI files
    also for completeness, which ITK would zero-fill silently) — no voxel is allocated yet."""
    if image_suffix(path) == ".nii.gz" and path.with_name(path.name[:-3]).exists():
        raise ImageReadError(
            path,
            f"{path.name[:-3]} lies beside it: ITK would read that file's voxels under this file's header "
            "(ITK issue 2243); move or rename one of them",
        )
    if image_suffix(path) in (".nii", ".nii.gz"):
        header = nifti_header(path)
        check_nifti_complete(path, header)
        check_nifti_sform(path, header)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise ImageReadError(path, f"cannot be read, corrupt or truncated ({_first_line(exc)})") from exc
    check_header(
        path,
        reader.GetSize(),
        reader.GetSpacing(),
        reader.GetDirection(),
        _bytes_per_component(reader.GetPixelID()) * reader.GetNumberOfComponents(),
    )
    return reader


def read_sitk(path, series_uid: str | None = None) -> sitk.Image:
    """Read ``path`` (file or DICOM folder) into a 3D scalar SimpleITK image, validating it."""
    path = Path(path)
    if not path.exists():
        raise ImageReadError(path, "does not exist")
    if path.is_dir():
        image = read_dicom_series(path, series_uid)
    else:
        if not image_suffix(path):
            raise ImageReadError(
                path, "unsupported file type (expected " + ", ".join(IMAGE_SUFFIXES) + " or a DICOM series folder)"
            )
        if path.stat().st_size == 0:
            raise ImageReadError(path, "is empty (0 bytes)")
        reader = checked_reader(path)
        try:
            image = reader.Execute()
        except RuntimeError as exc:
            raise ImageReadError(path, f"cannot be read, corrupt or truncated ({_first_line(exc)})") from exc
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise ImageReadError(
            path,
            f"has {image.GetNumberOfComponentsPerPixel()} components per voxel; a scalar (grey-value) volume is needed",
        )
    if image.GetDimension() != 3:
        raise ImageReadError(path, f"is {image.GetDimension()}D (size {image.GetSize()}); liverwild needs a 3D volume")
    return image


def nifti_header(path) -> dict | None:
    """:func:`_nifti_header_info` of a NIfTI file (None when its first bytes are no NIfTI header);
    :class:`ImageReadError` when it cannot be read."""
    path = Path(path)
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            return _nifti_header_info(f.read(540))
    except (OSError, EOFError) as exc:
        raise ImageReadError(path, f"cannot be read, corrupt or truncated ({exc})") from exc


def check_nifti_complete(path, info: dict | None) -> None:
    """Raise :class:`ImageReadError` when a NIfTI-1/2 file holds less voxel data than its header ``info``
    (:func:`nifti_header`) says.

    Uncompressed files are checked by size; gzipped ones by the gzip trailer (uncompressed size mod
    2³²), falling back to a full decompression only when the trailer disagrees.
    """
    path = Path(path)
    gz = path.name.lower().endswith(".gz")
    if info is None:
        return  # not a NIfTI header: let ITK report it
    expected = info["expected_bytes"]
    if not gz:
        actual = path.stat().st_size
    else:
        with open(path, "rb") as f:
            f.seek(-4, os.SEEK_END)
            trailer = struct.unpack("<I", f.read(4))[0]
        if trailer == expected % 2**32:
            return
        actual = 0
        try:
            with gzip.open(path, "rb") as f:
                while chunk := f.read(1 << 22):
                    actual += len(chunk)
        except (OSError, EOFError):
            pass  # a truncated stream: 'actual' is what could be read
    if actual < expected:
        raise ImageReadError(path, f"truncated: {actual} bytes of {expected} expected from its header")


def check_nifti_sform(path, info: dict | None) -> None:
    """Raise :class:`ImageReadError` for a NIfTI whose sform (``sform_code`` > 0 in its header ``info``,
    :func:`nifti_header`) is sheared: no rotation and voxel sizes describe it, so ITK falls back to the
    qform (or fails) while nibabel and FSL place the scan by the sform — a mask in ITK's geometry would sit
    elsewhere in those tools."""
    if info is None or info["sform_code"] <= 0:
        return
    affine = np.asarray(info["srow"], float).reshape(3, 4)[:, :3]
    sizes = np.linalg.norm(affine, axis=0)
    if not np.all(np.isfinite(affine)) or np.any(sizes <= 0):
        raise ImageReadError(path, "its sform (sform_code > 0) has a zero or non-finite voxel axis")
    cosines = affine / sizes
    if not np.allclose(cosines.T @ cosines, np.eye(3), atol=1e-3):
        raise ImageReadError(
            path,
            "its sform is sheared (not a rotation with voxel sizes): ITK would place the scan by its qform, "
            "other tools by the sform; resample it to an orthogonal grid or fix the header",
        )


def nifti_nonfinite_count(path) -> int:
    """Number of NaN/inf voxels in a floating-point NIfTI file (0 for integer data).

    ITK's NIfTI reader turns NaN into 0, so the raw data are scanned directly.
    """
    path = Path(path)
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as f:
        info = _nifti_header_info(f.read(540))
        if info is None or info["datatype"] not in (16, 64):
            return 0
        f.seek(info["offset"])
        dtype = np.dtype(info["endian"] + ("f4" if info["datatype"] == 16 else "f8"))
        count = 0
        while chunk := f.read(dtype.itemsize * (1 << 20)):
            count += int(np.count_nonzero(~np.isfinite(np.frombuffer(chunk, dtype))))
        return count


def _nifti_header_info(header: bytes):
    """Voxel-data offset, datatype code, byte order and total expected size, or None if not NIfTI."""
    if len(header) >= 348 and struct.unpack("<i", header[:4])[0] in (348, 540):
        endian = "<"
    elif len(header) >= 348 and struct.unpack(">i", header[:4])[0] in (348, 540):
        endian = ">"
    else:
        return None
    sizeof_header = struct.unpack(endian + "i", header[:4])[0]
    if sizeof_header == 348:  # NIfTI-1
        dims = struct.unpack(endian + "8h", header[40:56])
        bitpix = struct.unpack(endian + "h", header[72:74])[0]
        offset = struct.unpack(endian + "f", header[108:112])[0]
    else:  # NIfTI-2
        dims = struct.unpack(endian + "8q", header[16:80])
        bitpix = struct.unpack(endian + "h", header[14:16])[0]
        offset = struct.unpack(endian + "q", header[168:176])[0]
    datatype = struct.unpack(endian + "h", header[70:72] if sizeof_header == 348 else header[12:14])[0]
    n = int(np.prod([max(1, d) for d in dims[1 : 1 + max(0, min(int(dims[0]), 7))]]))
    if sizeof_header == 348:
        sform_code = struct.unpack(endian + "h", header[254:256])[0]
        srow = struct.unpack(endian + "12f", header[280:328])
    elif len(header) >= 496:
        sform_code = struct.unpack(endian + "i", header[348:352])[0]
        srow = struct.unpack(endian + "12d", header[400:496])
    else:
        sform_code, srow = 0, (0.0,) * 12
    return {
        "offset": int(offset),
        "datatype": int(datatype),
        "endian": endian,
        "expected_bytes": int(offset) + n * bitpix // 8,
        "sform_code": int(sform_code),
        "srow": srow,
    }


def read_geometry(path) -> Geometry:
    """Geometry of a scan file from its header alone (no pixel data is read); same checks on type,
    dimensionality, components and NIfTI completeness as :func:`read_sitk`."""
    path = Path(path)
    if not path.is_file() or not image_suffix(path):
        return Geometry.from_sitk(read_sitk(path))  # DICOM folders and errors: the full path
    reader = checked_reader(path)
    if reader.GetDimension() != 3:
        raise ImageReadError(
            path, f"is {reader.GetDimension()}D (size {reader.GetSize()}); liverwild needs a 3D volume"
        )
    if reader.GetNumberOfComponents() != 1:
        raise ImageReadError(
            path, f"has {reader.GetNumberOfComponents()} components per voxel; a scalar (grey-value) volume is needed"
        )
    return Geometry(
        tuple(int(v) for v in reader.GetSize()),
        tuple(float(v) for v in reader.GetSpacing()),
        tuple(float(v) for v in reader.GetOrigin()),
        tuple(float(v) for v in reader.GetDirection()),
    )


def read_image(path, dtype=np.float32, series_uid: str | None = None, allow_nan: bool = False) -> Volume:
    """Read a scan as ``Volume`` with a ``(z, y, x)`` array of ``dtype`` and its geometry.

    Non-finite voxels (NaN, ±inf) are an error unless ``allow_nan``.
    """
    image = read_sitk(path, series_uid)
    geometry = Geometry.from_sitk(image)
    modality = image.GetMetaData(MODALITY_TAG).strip() if image.HasMetaDataKey(MODALITY_TAG) else ""
    try:
        view = sitk.GetArrayViewFromImage(image)  # no copy yet
    except RuntimeError as exc:  # lazily read pixel data can still fail
        raise ImageReadError(path, f"pixel data cannot be read ({_first_line(exc)})") from exc
    array = view.astype(dtype if dtype is not None else view.dtype, copy=True)  # one copy, then free ITK's
    stored_as_float = view.dtype.kind == "f"  # integers stored hold no NaN or infinity: nothing to check
    del view, image
    if not allow_nan and stored_as_float:
        bad = int(np.count_nonzero(~np.isfinite(array)))
        if not bad and Path(path).is_file() and image_suffix(path) in (".nii", ".nii.gz"):
            bad = nifti_nonfinite_count(path)
        if bad:
            raise ImageReadError(path, f"contains {bad} NaN or infinite voxels")
    return Volume(array, geometry, str(path), modality)


def check_not_constant(volume: Volume) -> None:
    """A scan whose voxels all have one value holds nothing to segment: a one-line error naming it."""
    a = volume.array
    if a.size and float(a.min()) == float(a.max()):
        raise ImageReadError(
            volume.path or "image", f"is constant (every voxel is {float(a.min()):g}): nothing to segment"
        )


def read_label(path) -> Volume:
    """Read a label map as integers; non-integer values are an error naming the file."""
    volume = read_image(path, dtype=None)
    array = volume.array
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)) or not np.array_equal(array, np.round(array)):
            raise ImageReadError(path, "label map holds non-integer values")
        array = array.astype(np.int16)
    volume.array = array
    return volume


def read_aligned_label(path, image: Volume) -> Volume:
    """:func:`read_label`, refused (one line naming ``path``) unless its geometry is ``image``'s."""
    label = read_label(path)
    diffs = label.geometry.differences(image.geometry)
    if diffs:
        raise ImageReadError(path, "geometry differs from its image: " + "; ".join(diffs))
    return label


def write_volume(array: np.ndarray, geometry: Geometry, path, dtype=None, compress: bool = True) -> Path:
    """Write a ``(z, y, x)`` array with ``geometry`` to ``path`` atomically (temporary file, then rename).

    The format follows the suffix of ``path``. Returns the final path.
    """
    path = Path(path)
    suffix = image_suffix(path)
    if suffix not in WRITE_SUFFIXES:
        raise ValueError(
            f"{path}: unsupported output suffix (use one of {', '.join(WRITE_SUFFIXES)}; "
            "detached-header formats cannot be written atomically)"
        )
    array = np.asarray(array)
    if dtype is not None:
        array = array.astype(dtype, copy=False)
    if tuple(array.shape) != geometry.shape:
        raise ValueError(f"{path}: array shape {array.shape} does not match geometry shape {geometry.shape}")
    image = geometry.apply_to(sitk.GetImageFromArray(array))
    with atomic_path(path, suffix) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=compress)
        verify_written(tmp, path, image)
    return path


def verify_written(tmp: Path, path: Path, image: sitk.Image) -> None:
    """ITK can finish a write without error although the disk was full: check the file before it is
    renamed into place (NIfTI: voxel bytes against the header; other formats: read back)."""
    problem = None
    try:
        if image_suffix(tmp) in (".nii", ".nii.gz"):
            check_nifti_complete(tmp, nifti_header(tmp))
        elif sitk.ReadImage(str(tmp)).GetSize() != image.GetSize():
            problem = "the written file does not hold the whole image"
    except (ImageReadError, RuntimeError) as exc:
        problem = str(exc).split(": ", 1)[-1]
    if problem:
        raise ImageReadError(
            path,
            f"cannot be written — the file came out incomplete ({problem}); disk full or "
            "file-size limit? Nothing was kept",
        )


def write_mask(mask: np.ndarray, reference: Geometry, path) -> Path:
    """Write a binary/label ``(z, y, x)`` mask as uint8 with exactly the ``reference`` geometry."""
    return write_volume(mask, reference, path, dtype=np.uint8)

"""A corpus of bad and odd scans, generated (no binary blobs in the repository).

``write_corpus(folder)`` writes every case and returns ``{name: Case}``; ``Case.expect`` is ``None``
for inputs that must work, else a fragment of the one-line message that must name the file.
"""

from __future__ import annotations

import contextlib
import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from liverwild.io import Geometry, write_dicom_series, write_volume
from liverwild.phantoms import generate_case

LPS = (1, 0, 0, 0, 1, 0, 0, 0, 1)


@dataclass
class Case:
    path: Path
    expect: str | None  # None: must be segmented; else part of the error message
    what: str


def small_ct(seed: int = 0, slices: int = 10):
    image, label, _ = generate_case("PhantomPortalCT", seed=seed, case=0, n_slices=slices)
    small = image.array[:, ::4, ::4].astype(np.int16)
    nz, ny, nx = small.shape
    g = Geometry(
        (nx, ny, nz),
        (image.geometry.spacing[0] * 4, image.geometry.spacing[1] * 4, image.geometry.spacing[2]),
        (0.0, 0.0, 0.0),
        LPS,
    )
    return small, g


def _sitk(array, spacing=(2.0, 2.0, 3.0), direction=None):
    img = sitk.GetImageFromArray(array)
    img.SetSpacing(spacing)
    if direction is not None:
        img.SetDirection(direction)
    return img


def write_corpus(folder) -> dict:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ct, g = small_ct()
    cases = {}

    def add(name, expect, what, path=None):
        cases[name] = Case(path or folder / name, expect, what)

    # files that are not images, or not whole
    (folder / "zero.nii.gz").write_bytes(b"")
    add("zero.nii.gz", "empty (0 bytes)", "zero-byte NIfTI")
    (folder / "zero_nrrd.nrrd").write_bytes(b"")
    add("zero_nrrd.nrrd", "empty (0 bytes)", "zero-byte NRRD")
    good = write_volume(ct, g, folder / "whole.nii")
    (folder / "truncated_raw.nii").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    good.unlink()
    add("truncated_raw.nii", "truncated", "uncompressed NIfTI cut in half")
    gz = write_volume(ct, g, folder / "whole.nii.gz")
    raw = gzip.decompress(gz.read_bytes())
    (folder / "truncated.nii.gz").write_bytes(gzip.compress(raw[: len(raw) // 2]))
    gz.unlink()
    add("truncated.nii.gz", "truncated", "gzipped NIfTI whose data stops half way")
    nrrd = write_volume(ct, g, folder / "whole.nrrd")
    (folder / "truncated_nrrd.nrrd").write_bytes(nrrd.read_bytes()[: nrrd.stat().st_size - 500])
    nrrd.unlink()
    add("truncated_nrrd.nrrd", "cannot be read", "NRRD missing its last bytes")
    (folder / "text.nii.gz").write_text("this is not an image\n")
    add("text.nii.gz", "cannot be read", "a text file named .nii.gz")
    # wrong dimensionality
    sitk.WriteImage(_sitk(ct[3], (2.0, 2.0)), str(folder / "flat2d.nii.gz"))
    add("flat2d.nii.gz", "2D", "a 2D image")
    sitk.WriteImage(sitk.JoinSeries([_sitk(ct)]), str(folder / "single4d.nii.gz"))
    add("single4d.nii.gz", None, "4D with a single volume (must work)")
    sitk.WriteImage(sitk.JoinSeries([_sitk(ct), _sitk(ct)]), str(folder / "multi4d.nii.gz"))
    add("multi4d.nii.gz", "4D", "4D with two volumes")
    rgb = np.stack([ct, ct, ct], -1).astype(np.uint8)
    sitk.WriteImage(sitk.GetImageFromArray(rgb, isVector=True), str(folder / "rgb.nrrd"))
    add("rgb.nrrd", "components per voxel", "3 components per voxel")
    # values
    nan = ct.astype(np.float32)
    nan[5, 3, 3] = np.nan
    write_volume(nan, g, folder / "nan.nii.gz")
    add("nan.nii.gz", "NaN or infinite", "a NaN voxel")
    inf = ct.astype(np.float32)
    inf[5, 3, 3] = np.inf
    write_volume(inf, g, folder / "inf.nrrd")
    add("inf.nrrd", "NaN or infinite", "an infinite voxel")
    write_volume(np.zeros_like(ct), g, folder / "constant.nii.gz")
    add("constant.nii.gz", "constant", "every voxel the same")
    # headers
    (folder / "huge.nrrd").write_text(
        "NRRD0004\ntype: short\ndimension: 3\nsizes: 100000 100000 100000\n"
        "spacings: 1 1 1\nencoding: raw\nendian: little\n\n"
    )
    add("huge.nrrd", "refused before allocating", "a header claiming 100 000³ voxels")
    sitk.WriteImage(_sitk(ct, direction=(1, 0.5, 0, 0, 1, 0, 0, 0, 1)), str(folder / "sheared.nrrd"))
    add("sheared.nrrd", "not orthonormal", "non-orthogonal direction cosines")
    (folder / "zero_spacing.nrrd").write_bytes(_nrrd_with_spacing(ct, "0 2 3"))
    add("zero_spacing.nrrd", "spacing", "zero spacing")
    (folder / "negative_spacing.nrrd").write_bytes(_nrrd_with_spacing(ct, "2 -2 3"))
    add("negative_spacing.nrrd", "spacing", "negative spacing")
    # DICOM series
    write_dicom_series(ct, g, folder / "dicom_two_series", series_uid="1.2.3.1")
    write_dicom_series(
        ct,
        g,
        folder / "dicom_two_series",
        series_uid="1.2.3.2",
        file_names=[f"b_{k:03d}.dcm" for k in range(ct.shape[0])],
    )
    add("dicom_two_series", "series", "one folder with two DICOM series")
    paths = write_dicom_series(ct, g, folder / "dicom_missing_slice")
    paths[4].unlink()
    add("dicom_missing_slice", "gap", "a DICOM series with a slice missing")
    tilt = Geometry(g.size, g.spacing, g.origin, LPS)
    tilted = write_dicom_series(ct, tilt, folder / "dicom_gantry_tilt", extra_tags={"0018|1120": "15"})
    for k, path in enumerate(tilted):  # slices shifted in y: a 15° tilted stack
        _shift_position(path, dy=np.tan(np.radians(15)) * g.spacing[2] * k)
    add("dicom_gantry_tilt", "tilt", "a gantry-tilted DICOM series")
    mixed = write_dicom_series(ct, g, folder / "dicom_mixed_thickness")
    for k, path in enumerate(mixed[6:], start=6):  # the last slices 6 mm apart instead of 3
        _shift_position(path, dz=3.0 * (k - 5))
    add("dicom_mixed_thickness", "gap in the series", "a DICOM series with two slice spacings")
    write_dicom_series(ct, g, folder / "dicom_jpeg2000", compression="JPEG2000")
    add("dicom_jpeg2000", None, "JPEG 2000 (lossless) transfer syntax (must work)")
    write_dicom_series(ct, g, folder / "dicom_jpeg_lossless", compression="JPEG")
    add("dicom_jpeg_lossless", None, "JPEG lossless transfer syntax (must work)")
    # names
    write_volume(ct, g, folder / "with spaces_0000.nii.gz")
    add("with spaces_0000.nii.gz", None, "a file name with spaces (must work)")
    write_volume(ct, g, folder / "twin.nii.gz")
    write_volume(ct, g, folder / "twin.nrrd")
    add("twin.nii.gz", "same output twin.nii.gz as twin.nrrd", "two inputs that would write one mask")
    cases["twin.nrrd"] = Case(folder / "twin.nrrd", "same output twin.nii.gz as twin.nii.gz", "its twin")
    write_volume(ct, g, folder / "Leber-Zürich_ü.nii.gz")
    add("Leber-Zürich_ü.nii.gz", None, "a non-ASCII file name (must work)")
    os.symlink(folder / "loop_b", folder / "loop_a")
    os.symlink(folder / "loop_a", folder / "loop_b")
    add("loop_a", "symlink loop", "a symlink loop")
    cases["loop_b"] = Case(folder / "loop_b", "symlink loop", "the other end of the loop")
    return cases


def _nrrd_with_spacing(array: np.ndarray, spacings: str) -> bytes:
    nz, ny, nx = array.shape
    header = (
        f"NRRD0004\ntype: short\ndimension: 3\nsizes: {nx} {ny} {nz}\nspacings: {spacings}\n"
        "encoding: raw\nendian: little\n\n"
    )
    return header.encode() + array.astype("<i2").tobytes()


def _shift_position(path: Path, dx: float = 0.0, dy: float = 0.0, dz: float = 0.0) -> None:
    """Move a written DICOM slice's ImagePositionPatient."""
    import pydicom

    ds = pydicom.dcmread(path)
    x, y, z = (float(v) for v in ds.ImagePositionPatient)
    ds.ImagePositionPatient = [x + dx, y + dy, z + dz]
    ds.save_as(path)


def file_size_limit(limit: int):
    """``preexec_fn`` for a subprocess: writes beyond ``limit`` bytes fail with EFBIG (SIGXFSZ ignored),
    as on a full disk."""

    def apply():
        import resource
        import signal

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@contextlib.contextmanager
def lock_held_by_another_process(folder, command: str):
    """``folder``'s lock held by a live process (a sleeping child) running ``command``; yields its pid."""
    import json
    import socket
    import subprocess
    import sys

    from liverwild.locking import LOCK_NAME

    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / LOCK_NAME).write_text(
            json.dumps({"pid": holder.pid, "host": socket.gethostname(), "command": command, "since": "now"})
        )
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()

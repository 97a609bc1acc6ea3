"""Find the scans to segment: a file, a folder of files, DICOM series folders, or a folder of those."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import LiverwildError
from ..io import image_suffix
from ..io.dicom import is_dicom_folder
from ..io.image import header_data_files

PROBABILITY_SUFFIX = "_prob"  # <name>_prob.nii.gz: a scan's probability map (lw_evaluate skips these names)


def scan_name(path) -> str:
    """Output case name: file name without ending and without nnU-Net's '_0000'; folder name for DICOM."""
    path = Path(path)
    if path.is_dir():
        return Path(os.path.abspath(path)).name  # "." is the current folder's name, never ""
    name = path.name[: -len(image_suffix(path))] if image_suffix(path) else path.stem
    return name[:-5] if name.endswith("_0000") else name


def find_scans(source, exclude=None) -> tuple:
    """``([(name, path), ...], [(path, reason), ...])`` for a file or folder ``source``.

    A folder may hold image files and DICOM series folders (one level down); a folder that itself holds
    one DICOM series is one scan. Hidden files and the data files of ``.mhd``/``.nhdr`` headers are
    ignored; other files are reported as unsupported, and inputs that would write the same output name,
    or a name ending in ``_prob`` (a probability map's), are all reported and skipped.
    ``exclude``: the output folder when it lies inside the input: it and the folders holding it are not
    inputs (unless one is a DICOM series: the caller refuses an output inside a scan).
    """
    source = Path(source)
    if not source.exists():
        raise LiverwildError(f"{source}: input does not exist")
    if source.is_file() or is_dicom_folder(source):
        if source.is_file() and not image_suffix(source):
            return [], [(source, "unsupported file type")]
        return _without_reserved_names([(scan_name(source), source)], [])
    scans, rejected = [], []
    exclude = Path(exclude).resolve() if exclude else None
    entries = sorted(source.iterdir())
    data_files = {data.name for path in entries for data in header_data_files(path) if data.parent == source}
    for path in entries:
        if path.name.startswith(".") or path.name in data_files:
            continue
        if path.is_symlink() and not path.exists():
            rejected.append((path, "broken symbolic link or symlink loop"))
            continue
        if exclude and exclude.is_relative_to(path.resolve()) and not is_dicom_folder(path):
            continue  # the output folder, or a folder on the way to it
        if path.is_dir():
            if is_dicom_folder(path):
                scans.append((scan_name(path), path))
            else:
                rejected.append((path, "folder without a DICOM series"))
        elif image_suffix(path):
            scans.append((scan_name(path), path))
        else:
            rejected.append((path, "unsupported file type"))
    scans, rejected = _without_reserved_names(scans, rejected)
    names = [n for n, _ in scans]
    dupes = {n for n in names if names.count(n) > 1}
    for name in sorted(dupes):  # never let one input overwrite another's mask: skip them all
        clash = [p for n, p in scans if n == name]
        for path in clash:
            others = ", ".join(q.name for q in clash if q != path)
            rejected.append((path, f"would write the same output {name}.nii.gz as {others}; rename one of them"))
    return [(n, p) for n, p in scans if n not in dupes], rejected


def _without_reserved_names(scans: list, rejected: list) -> tuple:
    """``(scans, rejected)`` with the scans whose output name ends in ``_prob`` moved to ``rejected``: their
    mask would be named like another scan's probability map (and ``lw_evaluate`` skips such names)."""
    reserved = [(name, path) for name, path in scans if name.endswith(PROBABILITY_SUFFIX)]
    message = "its output {}.nii.gz would read as a probability map (names ending in {} are theirs); rename it"
    return (
        [(name, path) for name, path in scans if not name.endswith(PROBABILITY_SUFFIX)],
        [*rejected, *((path, message.format(name, PROBABILITY_SUFFIX)) for name, path in reserved)],
    )

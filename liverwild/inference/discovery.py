"""Find the scans to segment: a file, a folder of files, DICOM series folders, or a folder of those."""

from __future__ import annotations

from pathlib import Path

from ..errors import LiverwildError
from ..io import image_suffix
from ..io.dicom import is_dicom_folder


def scan_name(path) -> str:
    """Output case name: file name without ending and without nnU-Net's '_0000'; folder name for DICOM."""
    path = Path(path)
    if path.is_dir():
        return path.name
    name = path.name[: -len(image_suffix(path))] if image_suffix(path) else path.stem
    return name[:-5] if name.endswith("_0000") else name


def find_scans(source, exclude=None) -> tuple:
    """``([(name, path), ...], [(path, reason), ...])`` for a file or folder ``source``.

    A folder may hold image files and DICOM series folders (one level down); a folder that itself holds
    one DICOM series is one scan. Hidden files are ignored; other files are reported as unsupported, and
    inputs that would write the same output name are all reported and skipped.
    ``exclude``: a folder to skip (the output folder when it lies inside the input).
    """
    source = Path(source)
    if not source.exists():
        raise LiverwildError(f"{source}: input does not exist")
    if source.is_file():
        return (
            ([(scan_name(source), source)], []) if image_suffix(source) else ([], [(source, "unsupported file type")])
        )
    if is_dicom_folder(source):
        return [(scan_name(source), source)], []
    scans, rejected = [], []
    exclude = Path(exclude).resolve() if exclude else None
    for path in sorted(source.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_symlink() and not path.exists():
            rejected.append((path, "broken symbolic link or symlink loop"))
            continue
        if exclude and path.resolve() == exclude:
            continue
        if path.is_dir():
            if is_dicom_folder(path):
                scans.append((scan_name(path), path))
            else:
                rejected.append((path, "folder without a DICOM series"))
        elif image_suffix(path):
            scans.append((scan_name(path), path))
        else:
            rejected.append((path, "unsupported file type"))
    names = [n for n, _ in scans]
    dupes = {n for n in names if names.count(n) > 1}
    for name in sorted(dupes):  # never let one input overwrite another's mask: skip them all
        clash = [p for n, p in scans if n == name]
        for path in clash:
            others = ", ".join(q.name for q in clash if q != path)
            rejected.append((path, f"would write the same output {name}.nii.gz as {others}; rename one of them"))
    return [(n, p) for n, p in scans if n not in dupes], rejected

"""Atomic file writing: write to a temporary file beside the target, then rename over it.

A reader (or a resumed run) therefore sees either the old complete file or the new complete file,
never a half-written one.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from pathlib import Path

_UMASK = os.umask(0)
os.umask(_UMASK)


TEMPORARY_MARK = ".lw.tmp"  # in the name of every temporary file of an atomic write


@contextlib.contextmanager
def atomic_path(path, suffix: str = ""):
    """Yield a temporary path in ``path``'s folder; on success rename it to ``path``.

    ``suffix`` keeps the extension that format-sniffing writers need (e.g. '.nii.gz'). The final
    file gets the usual permissions (0666 minus the umask), not mkstemp's 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stem = path.name[: len(path.name) - len(suffix)] if suffix and path.name.endswith(suffix) else path.name
    fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=TEMPORARY_MARK + suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def is_temporary(name: str) -> bool:
    """Whether a file ``name`` is an :func:`atomic_path` temporary: with liverwild's mark, or unmarked as
    earlier versions named them (``.<name>.<8 random characters of mkstemp>.tmp<suffix>``) for a file
    of a kind liverwild writes (:data:`WRITTEN_EXTENSIONS`), so that a user's ``.session.20240101.tmp``
    or ``.thesis.chapter1.tmp.docx`` is not taken for one."""
    if not name.startswith("."):
        return False
    if TEMPORARY_MARK in name:
        return True
    unmarked = UNMARKED.fullmatch(name)
    return unmarked is not None and (unmarked["name"] + (unmarked["suffix"] or "")).lower().endswith(WRITTEN_EXTENSIONS)


UNMARKED = re.compile(r"\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp(?P<suffix>\..+)?")
# what atomic_path wrote before its temporaries were marked: images, reports, tables, pictures, models
WRITTEN_EXTENSIONS = (".nii.gz", ".nii", ".nrrd", ".mha", ".dcm", ".json", ".csv", ".html", ".png", ".pth", ".onnx")


def remove_stale_temporaries(folder) -> list:
    """Delete the temporary files :func:`atomic_path` leaves in ``folder`` when its process is killed
    mid-write (:func:`is_temporary`: hidden, with liverwild's mark or mkstemp's random part, so that a
    user's own ``.notes.tmp`` stays); returns them. Call it only while holding the folder's lock, so that no live
    writer's temporary is taken."""
    stale = [p for p in Path(folder).glob(".*.tmp*") if p.is_file() and is_temporary(p.name)]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def write_json_atomic(path, content) -> Path:
    """Write ``content`` as indented, human-readable JSON."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
    return Path(path)


def write_text_atomic(path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)

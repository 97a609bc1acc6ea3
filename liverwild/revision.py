"""liverwild's version and the running source tree's git revision, for ``--version`` and provenance records."""

from __future__ import annotations

import platform
from pathlib import Path

from . import __version__


def git_revision() -> str | None:
    """The source tree's git commit (``+dirty`` with uncommitted changes), or None outside a git checkout."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def version_line() -> str:
    """What every command's ``--version`` prints: ``liverwild X.Y.Z (git <revision>)``, without the
    parenthesis outside a git checkout (an installed wheel)."""
    revision = git_revision()
    return f"liverwild {__version__}" + (f" (git {revision})" if revision else "")


def provenance_fields(**libraries: str) -> dict:
    """The fields every report and model folder records, to be merged into it: ``git_revision`` (None
    outside a git checkout) and ``versions`` — liverwild's, Python's, then ``libraries`` (name → version).
    Versions are plain ``str`` (``torch.__version__`` is a subclass that checkpoints read with
    ``weights_only=True`` refuse)."""
    return {
        "git_revision": git_revision(),
        "versions": {
            "liverwild": __version__,
            "python": platform.python_version(),
            **{name: str(version) for name, version in libraries.items()},
        },
    }

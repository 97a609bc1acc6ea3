"""A trainer's output folder ``$LW_results/<fold>/<trainer>__<plans id>/`` on disk: held by one process
at a time (its lock), written atomically (a killed run leaves no partial file, and what an earlier kill
left is cleared when the lock is taken), and refusing to mix two configurations.

Files: ``config.json`` (resolved configuration, fold, plans, job), ``checkpoint_latest.pth`` (every
epoch), ``checkpoint_best.pth`` (best validation Dice), ``checkpoint_final.pth``, ``log.json`` /
``log.csv`` (one row per epoch) and ``progress.png``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import torch

from ..atomic import atomic_path, remove_stale_temporaries, write_json_atomic
from ..checkpoints import load_checkpoint
from ..errors import LiverwildError
from ..locking import folder_lock
from .config import EXECUTION_FIELDS, flat_settings
from .logging import plot_progress, write_log


class RunFolder:
    """One training run's folder (``path``)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    @property
    def latest(self) -> Path:
        return self.path / "checkpoint_latest.pth"

    @property
    def final(self) -> Path:
        return self.path / "checkpoint_final.pth"

    @contextlib.contextmanager
    def held(self, command: str) -> Iterator[None]:
        """The folder's lock for the block (a second command on it fails at once, naming the holder);
        temporaries a killed writer left are removed once it is held."""
        self.path.mkdir(parents=True, exist_ok=True)
        with folder_lock(self.path, command):
            remove_stale_temporaries(self.path)
            yield

    def write_config(self, description: dict) -> None:
        write_json_atomic(self.path / "config.json", description)

    def write_log(self, history: list[dict]) -> None:
        """``log.json``, ``log.csv`` and ``progress.png`` of the epochs so far."""
        write_log(history, self.path)
        plot_progress(history, self.path / "progress.png")

    def save(self, state: dict, name: str) -> None:
        """Atomic save; a write that fails (disk full) leaves the previous checkpoint, never a partial one."""
        path = self.path / name
        try:
            with atomic_path(path, ".pth") as tmp:
                torch.save(state, tmp)
        except RuntimeError as exc:  # torch's zip writer reports a full disk this way
            raise LiverwildError(
                f"{path}: cannot be written — {str(exc).splitlines()[0]} (disk full or file-size "
                "limit?); the previous checkpoint is kept"
            ) from exc

    def check_same_run(self, config: dict, read: frozenset[str], data: dict) -> None:
        """Refuse to continue the latest checkpoint (a re-run or ``--continue``) with ``config`` (a
        configuration's JSON) when a field of ``read`` (the trainer's fields) differs — a run may extend
        ``epochs`` or change how it runs (:data:`~.config.EXECUTION_FIELDS`), any other change needs a new
        folder — or on other ``data`` (:meth:`~.base.TrainerBase.data_record`: a source's cache or the
        fold's cases changed since, e.g. re-planned with another seed)."""
        checkpoint = load_checkpoint(self.latest)
        previous = flat_settings(checkpoint.get("config", {}))
        compared = read - {"epochs", *EXECUTION_FIELDS}
        changed = sorted(k for k, v in flat_settings(config).items() if k in compared and previous.get(k, v) != v)
        if changed:
            raise LiverwildError(
                f"{self.path} holds a run trained with another configuration ({', '.join(changed)} "
                "differ): remove the folder, or change the seed, to train this one"
            )
        before = checkpoint.get("data")
        if before is None:  # written before runs recorded their data: nothing to compare
            return
        caches = before.get("caches", {})
        moved = [f"the cache of {s}" for s in sorted(data["caches"]) if caches.get(s) != data["caches"][s]]
        if before.get("fold") != data["fold"]:
            moved.append("the fold's cases (splits.json)")
        if moved:
            raise LiverwildError(
                f"{self.path} holds a run trained on other data ({', '.join(moved)} changed since): remove the "
                "folder, or change the seed, to train on the new data"
            )

"""Reading checkpoints without trusting them.

liverwild saves checkpoints as tensors and plain data (dicts, lists, strings, numbers), so they load
with ``torch.load(..., weights_only=True)``, which never executes code. A file that needs more — a
crafted pickle, or a checkpoint of another program holding arbitrary objects — is refused with a
one-line message instead of being unpickled.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from .errors import LiverwildError


def load_checkpoint(path, map_location="cpu") -> dict:
    """The dict stored in ``path``, loaded with ``weights_only=True``."""
    path = Path(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LiverwildError(
            f"{path}: refused — not a checkpoint of tensors and plain data, so loading it could run "
            f"code ({first[:160]})"
        ) from exc
    except (EOFError, OSError) as exc:
        raise LiverwildError(f"{path}: cannot be read as a checkpoint ({exc})") from exc
    if not isinstance(state, dict):
        raise LiverwildError(f"{path}: holds a {type(state).__name__}, not a liverwild checkpoint")
    return state

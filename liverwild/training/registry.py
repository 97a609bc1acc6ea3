"""The trainers by name (``lw_train FOLD -tr NAME``), and which configuration fields each one reads.

Trainers register with :func:`register_trainer` when their module is imported (``liverwild.training``
imports them all). :func:`check_changes` refuses a configuration change the chosen trainer would not act
on, naming the trainers that would.
"""

from __future__ import annotations

import json

from ..errors import ConfigurationError, LiverwildError
from .base import TrainerBase
from .config import setting_names

TRAINERS: dict[str, type[TrainerBase]] = {}


def register_trainer(cls):
    TRAINERS[cls.__name__] = cls
    return cls


def get_trainer(name: str) -> type[TrainerBase]:
    if name not in TRAINERS:
        raise LiverwildError(f"unknown trainer {name!r}; available: {', '.join(sorted(TRAINERS))}")
    return TRAINERS[name]


def check_changes(cls: type[TrainerBase], changes: dict) -> None:
    """Refuse configuration changes (``--set`` and the command's options) trainer ``cls`` would not act on:
    a field it does not read (another family's, e.g. a 3d trainer's ``unet3d_depth`` for a 2D trainer, or
    one its variant leaves alone), and a value its ``overrides`` would replace. One line naming the
    trainer and the fields."""
    unread = [name for name in setting_names(changes) if name not in cls.config_fields()]
    if unread:

        def readers(name: str) -> str:
            names = sorted(t for t, c in TRAINERS.items() if name in c.config_fields())
            shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
            return f"{name} (read by {shown or 'no trainer'})"

        them = "it" if len(unread) == 1 else "them"
        raise ConfigurationError(
            f"{cls.name()} does not read {', '.join(readers(n) for n in unread)}: setting {them} would "
            f"change nothing; drop {them} or choose a trainer that reads {them}"
        )
    clashes = []
    for key, value in changes.items():
        if key not in cls.overrides:
            continue
        fixed = cls.overrides[key]
        if isinstance(fixed, dict) and isinstance(value, dict):
            clashes += [f"{key}.{k} = {json.dumps(fixed[k])}" for k in value if k in fixed and value[k] != fixed[k]]
        elif value != fixed:
            clashes.append(f"{key} = {json.dumps(fixed)}")
    if clashes:
        parent = next((b.__name__ for b in cls.__mro__[1:] if b.__name__ in TRAINERS), "another trainer")
        raise ConfigurationError(
            f"{cls.name()} always sets {', '.join(clashes)} (what makes it this variant): drop that setting, "
            f"or train {parent}"
        )

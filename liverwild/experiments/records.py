"""A run's configuration record: everything that decides its numbers, and the hash that says whether a
finished run (its ``run.json``) is the one a request asks for.

The record (``run.json``'s ``configuration``, hashed into ``configuration_hash``):

- what decides the model — ``liverwild_version``, ``trainer``, ``fold``, ``fold_definition`` (sources,
  target, training and validation cases), ``seed``, ``config`` (the trainer configuration as resolved:
  the trainer's own, the experiment's settings, ``--quick``'s values and the trainer's ``overrides``;
  without :data:`~liverwild.training.config.EXECUTION_FIELDS`, which change how, not what, is trained),
  ``quick``, ``plans`` (the model's plans identifier) and ``data`` (each source's cache identifier);
- what decides the measurement only (:data:`MEASUREMENT_FIELDS`) — ``evaluation_protocol`` and its
  ``evaluation_inplane_size``, ``measure`` (liver or organs), ``liver_only``, ``postprocessing`` (the
  steps), ``references`` (the target's reference folder) and ``target_scans`` (the scans predicted).

The device is not part of it (the same numbers up to floating point); ``run.json`` keeps it elsewhere.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

MEASUREMENT_FIELDS = frozenset(
    {
        "evaluation_protocol",
        "evaluation_inplane_size",
        "measure",
        "liver_only",
        "postprocessing",
        "references",
        "target_scans",
    }
)


def canonical(record: dict) -> dict:
    """The record as it reads back from JSON (tuples become lists), so that stored and new ones compare."""
    return json.loads(json.dumps(record))


def configuration_hash(record: dict) -> str:
    """sha256 (first 16 hex digits) of the record's canonical JSON (sorted keys)."""
    text = json.dumps(canonical(record), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """The dotted names of the fields that differ between two records (nested dictionaries descended)."""
    changed = []
    for key in sorted(set(old) | set(new), key=str):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changed += differences(a, b, f"{prefix}{key}.")
        elif a != b:
            changed.append(f"{prefix}{key}")
    return changed


def named(fields: list[str], at_most: int = 8) -> str:
    """``a, b, c`` — or the first ``at_most`` and how many more."""
    shown = ", ".join(fields[:at_most])
    return shown + (f" and {len(fields) - at_most} more" if len(fields) > at_most else "")


def read_run(folder: Path) -> dict | None:
    """A run folder's ``run.json`` (``{}`` when unreadable), or None when there is none: not finished."""
    path = Path(folder) / "run.json"
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def mismatch(meta: dict | None, record: dict) -> tuple[str, list[str] | None] | None:
    """Why a finished run (``meta``: its ``run.json``) is not the one ``record`` asks for — ``(reason,
    the fields that differ, or None when it has no record to compare)`` — or None when it is."""
    if meta is None:
        return "not run", None
    if not meta:
        return "cannot be read", None
    stored, digest = meta.get("configuration"), meta.get("configuration_hash")
    if not digest or not isinstance(stored, dict):
        return "has no configuration record (made by an older liverwild)", None
    if digest == configuration_hash(record):
        return None
    changed = differences(stored, canonical(record))
    if not changed:  # the same fields, hashed otherwise: the record was edited
        return "has a configuration hash that does not match its record", None
    return f"was made with another configuration ({named(changed)} differ)", changed


def only_measurement(changed: list[str] | None) -> bool:
    """Whether the fields that differ leave the model as it is (evaluation, post-processing, references)."""
    return bool(changed) and all(c.split(".")[0] in MEASUREMENT_FIELDS for c in changed or [])

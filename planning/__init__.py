"""Planning: measure datasets (fingerprint) and decide how to preprocess them (plans).

The names below are imported on first use (PEP 562), so that ``planning.plans`` — which prediction reads —
does not import the planner's teacher registry (torch) with it."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .fingerprint import extract_case_fingerprint, extract_fingerprint, load_fingerprint
    from .planner import plan_dataset
    from .plans import Plans, default_augmentation, load_plans, save_plans

_HOMES = {
    "extract_case_fingerprint": "fingerprint",
    "extract_fingerprint": "fingerprint",
    "load_fingerprint": "fingerprint",
    "plan_dataset": "planner",
    "Plans": "plans",
    "default_augmentation": "plans",
    "load_plans": "plans",
    "save_plans": "plans",
}

__all__ = [
    "extract_case_fingerprint",
    "extract_fingerprint",
    "load_fingerprint",
    "plan_dataset",
    "Plans",
    "default_augmentation",
    "load_plans",
    "save_plans",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_HOMES[name]}", __name__), name)

"""Preprocessing: normalised 224×224 slices, augmented views, frozen-backbone features, splits.

The names below are imported on first use (PEP 562): prediction's torch-free path reads
``preprocessing.transform`` and ``preprocessing.lean`` without the feature extractor (torch)."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .cache import CachedCase, list_cases
    from .features import FeatureExtractor, slice_batches
    from .pipeline import plan_and_preprocess, preprocess_dataset
    from .splits import get_fold, load_splits
    from .transform import prepare_slices

_HOMES = {
    "CachedCase": "cache",
    "list_cases": "cache",
    "FeatureExtractor": "features",
    "slice_batches": "features",
    "plan_and_preprocess": "pipeline",
    "preprocess_dataset": "pipeline",
    "prepare_slices": "transform",
    "get_fold": "splits",
    "load_splits": "splits",
}

__all__ = [
    "CachedCase",
    "list_cases",
    "FeatureExtractor",
    "slice_batches",
    "plan_and_preprocess",
    "preprocess_dataset",
    "prepare_slices",
    "get_fold",
    "load_splits",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_HOMES[name]}", __name__), name)

"""Preprocessing: normalised 224×224 slices, augmented views, frozen-backbone features, splits."""

from .cache import CachedCase, list_cases
from .features import FeatureExtractor, slice_batches
from .pipeline import plan_and_preprocess, preprocess_dataset
from .splits import get_fold, load_splits
from .transform import prepare_slices

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

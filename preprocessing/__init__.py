"""Preprocessing: normalised 224×224 slices, augmented views, frozen-backbone features, splits."""

from .cache import CachedCase, list_cases
from .pipeline import FeatureExtractor, plan_and_preprocess, prepare_slices, preprocess_dataset
from .splits import get_fold, load_splits

__all__ = [
    "CachedCase",
    "list_cases",
    "FeatureExtractor",
    "plan_and_preprocess",
    "preprocess_dataset",
    "prepare_slices",
    "get_fold",
    "load_splits",
]

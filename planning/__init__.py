"""Planning: measure datasets (fingerprint) and decide how to preprocess them (plans)."""

from .fingerprint import extract_case_fingerprint, extract_fingerprint, load_fingerprint
from .planner import plan_dataset
from .plans import Plans, default_augmentation, load_plans, save_plans

__all__ = [
    "extract_case_fingerprint",
    "extract_fingerprint",
    "load_fingerprint",
    "Plans",
    "load_plans",
    "save_plans",
    "plan_dataset",
    "default_augmentation",
]

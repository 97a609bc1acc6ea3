"""Metrics (Dice, IoU, RAVD, ASSD, MSSD, HD95) and folder evaluation (binary or per organ) with paired
comparisons."""

from .evaluate import compare_evaluations, evaluate_case, evaluate_case_organs, evaluate_folders
from .metrics import (
    METRICS,
    all_metrics,
    dice,
    iou,
    ravd,
    summarize,
    surface,
    surface_distances,
    surface_metrics,
)
from .organs import match_classes

__all__ = [
    "METRICS",
    "all_metrics",
    "dice",
    "iou",
    "ravd",
    "summarize",
    "surface",
    "surface_distances",
    "surface_metrics",
    "evaluate_case",
    "evaluate_case_organs",
    "match_classes",
    "evaluate_folders",
    "compare_evaluations",
]

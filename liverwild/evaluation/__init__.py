"""Metrics (Dice, IoU, RAVD, ASSD, MSSD, HD95) and folder evaluation with paired comparisons."""

from .evaluate import compare_evaluations, evaluate_case, evaluate_folders
from .metrics import (
    METRICS,
    SegmentationMetrics,
    all_metrics,
    dice,
    iou,
    ravd,
    summarize,
    surface,
    surface_distances,
    surface_metrics,
)

__all__ = [
    "METRICS",
    "SegmentationMetrics",
    "all_metrics",
    "dice",
    "iou",
    "ravd",
    "summarize",
    "surface",
    "surface_distances",
    "surface_metrics",
    "evaluate_case",
    "evaluate_folders",
    "compare_evaluations",
]

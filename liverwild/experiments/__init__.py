"""``lw_experiment``: the paper's experiments as named protocols (folds × trainers × seeds → report)."""

from .protocols import ABLATION_TRAINERS, ORGAN_TRAINERS, PROTOCOLS, REFERENCE_TRAINER, Plan, Run, make_plan
from .runner import run_experiment

__all__ = [
    "ABLATION_TRAINERS",
    "ORGAN_TRAINERS",
    "PROTOCOLS",
    "REFERENCE_TRAINER",
    "Plan",
    "Run",
    "make_plan",
    "run_experiment",
]

"""``lw_experiment``: the paper's experiments as named protocols (folds × trainers × seeds → report)."""

from .protocols import ABLATION_TRAINERS, REFERENCE_TRAINER, Plan, Run, make_plan
from .runner import run_experiment

__all__ = ["ABLATION_TRAINERS", "REFERENCE_TRAINER", "Plan", "Run", "make_plan", "run_experiment"]

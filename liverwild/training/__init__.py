"""Training: cached-feature datasets, the base trainer with hooks, the registered variants and the
domain-generalisation baselines."""

from . import baselines  # noqa: F401 — importing it registers the baseline trainers
from .base import Trainer, read_config
from .config import TrainerConfig
from .data import SliceDataset
from .run import train_fold
from .trainers import TRAINERS, ContrastiveDistillationTrainer, get_trainer, register_trainer

__all__ = [
    "Trainer",
    "TrainerConfig",
    "SliceDataset",
    "train_fold",
    "TRAINERS",
    "ContrastiveDistillationTrainer",
    "get_trainer",
    "register_trainer",
    "read_config",
]

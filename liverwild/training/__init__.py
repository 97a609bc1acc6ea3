"""Training: cached-feature datasets, the base trainer with hooks, the registered variants, the
domain-generalisation baselines, the organ-competition trainer and the ``3d`` configuration's
multi-organ 3D U-Net trainers."""

from . import (
    baselines,  # noqa: F401 — importing it registers the baseline trainers
    organs,  # noqa: F401 — importing it registers OrganCompetitionTrainer
    volumetric,  # noqa: F401 — importing it registers the 3d configuration's trainers
)
from .base import Trainer
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
]

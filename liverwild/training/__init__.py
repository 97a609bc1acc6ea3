"""Training: the base trainer (:mod:`.base`), its two families — ``2d`` slices on teacher features
(:mod:`.slices`) and ``3d`` volumes (:mod:`.volumetric`) — each with its typed configuration
(:mod:`.config`), and the registered trainers: the paper's and its variants, the domain-generalisation
baselines, the organ-competition trainer and the multi-organ 3D rows."""

from . import (
    baselines,  # noqa: F401 — importing it registers the baseline trainers
    organs,  # noqa: F401 — importing it registers OrganCompetitionTrainer
    siamese3d,  # noqa: F401 — importing it registers the 3d representation-learning rows
)
from .base import TrainerBase
from .config import SliceTrainerConfig, TrainerConfig, VolumeTrainerConfig, parse_settings
from .data import SliceDataset
from .registry import TRAINERS, get_trainer, register_trainer
from .run import train_fold
from .slices import SliceTrainer
from .trainers import ContrastiveDistillationTrainer
from .volumetric import VolumeTrainer

__all__ = [
    "TrainerBase",
    "SliceTrainer",
    "VolumeTrainer",
    "TrainerConfig",
    "SliceTrainerConfig",
    "VolumeTrainerConfig",
    "parse_settings",
    "SliceDataset",
    "train_fold",
    "TRAINERS",
    "ContrastiveDistillationTrainer",
    "get_trainer",
    "register_trainer",
]

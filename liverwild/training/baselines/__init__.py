"""The domain-generalisation baselines the paper compares with, as trainers on the same caches and
folds: ``SupervisedUNetTrainer`` (deep-all), ``MASFTrainer``, ``TaskAugTrainer``, ``DualNormTrainer``
and ``DomainRandomizationTrainer``. Importing this package registers them."""

from .dualnorm import DualNormTrainer
from .masf import MASFTrainer
from .randomization import DomainRandomizationTrainer
from .supervised import SupervisedUNetTrainer
from .taskaug import TaskAugTrainer

BASELINE_TRAINERS = (
    "SupervisedUNetTrainer",
    "MASFTrainer",
    "TaskAugTrainer",
    "DualNormTrainer",
    "DomainRandomizationTrainer",
)

__all__ = [
    "SupervisedUNetTrainer",
    "MASFTrainer",
    "TaskAugTrainer",
    "DualNormTrainer",
    "DomainRandomizationTrainer",
    "BASELINE_TRAINERS",
]

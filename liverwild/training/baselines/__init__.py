"""The domain-generalisation baselines the paper compares with, as trainers on the same caches and
folds: ``SupervisedUNetTrainer`` (deep-all), ``MASFTrainer``, ``TaskAugTrainer``, ``DualNormTrainer``
and ``DomainRandomizationTrainer``; and, for labelled multi-site and multi-modal training with a BatchNorm
per domain, ``MultiSiteNormTrainer`` (MS-Net) and ``MultiModalKDTrainer`` (unpaired CT/MR with knowledge
distillation). Importing this package registers them."""

from .dualnorm import DualNormTrainer
from .masf import MASFTrainer
from .multisite import MultiModalKDTrainer, MultiSiteNormTrainer
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
    "MultiSiteNormTrainer",
    "MultiModalKDTrainer",
    "BASELINE_TRAINERS",
]

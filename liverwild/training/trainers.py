"""The paper's trainer and its ablation variants (Tables 3–4), each a subclass that changes one thing.

Trainers are registered by class name (:mod:`.registry`); ``lw_train FOLD -tr NAME`` picks one.
"""

from __future__ import annotations

from .registry import register_trainer
from .slices import SliceTrainer


@register_trainer
class ContrastiveDistillationTrainer(SliceTrainer):
    """The paper's recipe: RAdam (lr 1e-4, weight decay 1e-5), batch 8, reduce-on-plateau on validation
    Dice (patience 10), 150 epochs, contrastive distillation + focal + Tversky + −log IoU + entropy."""


# Table 4: each loss term removed
@register_trainer
class NoDistillationTrainer(ContrastiveDistillationTrainer):
    overrides = {"loss_weights": {"distillation": 0.0}}


@register_trainer
class NoFocalTrainer(ContrastiveDistillationTrainer):
    overrides = {"loss_weights": {"focal": 0.0}}


@register_trainer
class NoTverskyTrainer(ContrastiveDistillationTrainer):
    overrides = {"loss_weights": {"tversky": 0.0}}


@register_trainer
class NoLogIoUTrainer(ContrastiveDistillationTrainer):
    overrides = {"loss_weights": {"log_iou": 0.0}}


@register_trainer
class NoEntropyTrainer(ContrastiveDistillationTrainer):
    overrides = {"loss_weights": {"entropy": 0.0}}


# Table 3: sampling strategies
@register_trainer
class Positives2ApartTrainer(ContrastiveDistillationTrainer):
    """Positives i±2 instead of i±1."""

    overrides = {"sampling": "neighbours2"}


@register_trainer
class TwoNegativesTrainer(ContrastiveDistillationTrainer):
    """Negatives i+|I|/2 and i+|I|/2+1."""

    overrides = {"sampling": "two_negatives"}


# Table 4: training-set size
@register_trainer
class Scans5PerSourceTrainer(ContrastiveDistillationTrainer):
    overrides = {"max_scans_per_source": 5}


@register_trainer
class Scans10PerSourceTrainer(ContrastiveDistillationTrainer):
    overrides = {"max_scans_per_source": 10}


@register_trainer
class Scans15PerSourceTrainer(ContrastiveDistillationTrainer):
    overrides = {"max_scans_per_source": 15}


# Augmentation as the paper trains
@register_trainer
class OnlineAugmentationTrainer(ContrastiveDistillationTrainer):
    """Augments the normalised slices on the fly and runs the frozen teacher in the loop (as the paper),
    instead of drawing one of the K views cached at preprocessing. Practical on a GPU, slow on CPU."""

    overrides = {"augmentation": "online"}
    config_groups = ContrastiveDistillationTrainer.config_groups - {"cached_views"}  # every item augmented afresh

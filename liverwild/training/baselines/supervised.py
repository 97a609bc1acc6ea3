"""The "deep-all" baseline trainer: a plain 2D U-Net on the pooled sources' slices (see its docstring)."""

from __future__ import annotations

import torch

from ...device import autocast
from ...nets import UNet2d
from ..images import ImageSliceDataset
from ..registry import register_trainer
from ..slices import SliceTrainer


@register_trainer
class SupervisedUNetTrainer(SliceTrainer):
    """The "deep-all" baseline: a plain 2D U-Net trained on the normalised slices of every source pooled.

    Trained on a target's own training split (a fold whose sources include the target) it is the
    in-domain upper bound. Same data, optimiser, learning rate, epochs and segmentation losses (focal,
    Tversky, −log IoU, entropy) as the contrastive-distillation trainer; only the model differs: a U-Net
    learns from pixels instead of a head and decoder on frozen-teacher features.
    """

    dataset_class: type[ImageSliceDataset] = ImageSliceDataset  # the training items (a variant may change it)
    network: UNet2d
    train_set: ImageSliceDataset
    # the method's schedule, augmentation and segmentation losses, with the 2D U-Net instead of the
    # network on teacher features (no distillation)
    config_groups = frozenset({"loop", "plateau", "segmentation", "augmentation", "cached_views", "unet"})

    def make_dataset(self, cases: list, domains: list):
        """The training set over the fold's cases (``domains``: source index per case)."""
        return self.dataset_class(
            cases,
            domains,
            self.config.seed,
            self.config.use_augmented_views,
            self.config.augmentation,
            self.teacher_plans.augmentation,
        )

    def build_datasets(self):
        train, domains, self.val_cases = self.fold_cases()
        self.sources = list(self.fold["sources"])
        self.train_set = self.make_dataset(train, domains)

    def build_network(self) -> torch.nn.Module:
        from ...nets import UNet2d

        c = self.config
        return UNet2d(1, c.unet_channels, c.unet_depth, c.unet_dropout)

    def build_losses(self) -> dict:
        return self.segmentation_losses()

    def prepare_batch(self, batch: dict) -> dict:
        return batch

    def train_step(self, batch: dict) -> dict:
        with autocast(self.device, self.config.amp):
            logits = self.model(batch["slice"])
            terms = self.segmentation_terms(logits, batch["label"])
            total = sum(self.config.loss_weights[k] * v for k, v in terms.items())
        self.optimize(total)
        return self.loss_stats(total, terms)

    def validation_logits(self, case, start: int, stop: int, slices: torch.Tensor) -> torch.Tensor:
        return self.network(slices)

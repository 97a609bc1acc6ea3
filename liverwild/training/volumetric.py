"""The ``3d`` family: :class:`VolumeTrainer`, multi-organ 3D U-Nets on whole resized volumes (Lee et al.,
*Voxel-level Siamese representation learning for abdominal multi-organ segmentation*), and its plain
row :class:`UNet3DTrainer` (multi-label soft Dice alone). The representation-learning rows add voxel
feature layers (:mod:`.siamese3d`).

The family's recipe is the paper's (:class:`~.config.VolumeTrainerConfig`): Adam, lr 1e-3, weight decay
1e-5, polynomial decay (power 0.9, per epoch), batch 4, 500 epochs; training-only modules are kept in the
checkpoints' ``auxiliary``, inference runs the plain 3D U-Net.

A fold's classes are the organs every source labels (:func:`liverwild.datasets.organs.common_classes`),
so a voxel of an organ that one source leaves unlabelled is background in all of them. Validation:
mean Dice over the fold's classes on each held-out source volume (at the cache's 64 × 128 × 128),
averaged over volumes; per-organ means are logged too.
"""

from __future__ import annotations

import functools
import hashlib
import json

import numpy as np
import torch

from planning.plans import Plans
from preprocessing.cache import CachedVolume, list_cases

from ..datasets.organs import common_classes
from ..device import autocast
from ..errors import LiverwildError
from ..log import get_logger
from ..losses.voxel import soft_dice_loss
from .base import TrainerBase
from .batches import epoch_generator, shuffled_batches
from .config import VolumeTrainerConfig
from .registry import register_trainer
from .volumes import VolumeDataset, volume_dice

logger = get_logger(__name__)


class VolumeTrainer(TrainerBase[VolumeTrainerConfig]):
    """Trains one fold on the ``3d`` caches (see the module docstring): a 3D U-Net (``unet3d_channels``,
    ``unet3d_depth``), multi-label soft Dice plus the terms of :meth:`feature_terms`, Adam with polynomial
    decay per epoch. Deviations from the paper: InstanceNorm and LeakyReLU (nnU-Net's choice for batches
    of a few volumes; the paper does not say), and no augmentation (the paper names none). Not under
    torchrun yet: its soft-Dice counts would be per process."""

    config_class = VolumeTrainerConfig
    quick = {"epochs": 2, "steps_per_epoch": 2, "batch_size": 2}
    configuration = "3d"
    item_name = "volumes"
    supports_distributed = False
    config_groups = frozenset({"loop", "unet3d"})  # Adam, polynomial decay, soft Dice: no 2D loss or schedule

    # ---- sources and data --------------------------------------------------------------------------

    def check_sources(self, plans: dict[str, Plans]) -> None:
        """Every source has a ``3d`` plan, all with one volume size, and they share at least one organ."""
        unplanned = [s for s, p in plans.items() if p.config_3d is None]
        if unplanned:
            raise LiverwildError(
                f"{', '.join(unplanned)}: plans.json has no 3d configuration; run lw_plan_and_preprocess -d "
                + " ".join(unplanned)
                + " -c 3d"
            )
        sizes = {s: tuple(p.planned_3d().volume_size) for s, p in plans.items()}
        if len(set(sizes.values())) > 1:
            raise LiverwildError(
                "the fold's sources have different 3d volume sizes ("
                + ", ".join(f"{s}: {'×'.join(map(str, v))}" for s, v in sizes.items())
                + "); make plans.json 3d.volume_size agree and re-run lw_plan_and_preprocess -c 3d --preprocess-only"
            )
        if not common_classes([p.planned_3d().classes for p in plans.values()]):
            raise LiverwildError(
                "the fold's sources share no organ class ("
                + "; ".join(f"{s}: {', '.join(p.planned_3d().classes)}" for s, p in plans.items())
                + "): a 3d model needs at least one organ every source labels"
            )

    @functools.cached_property
    def classes(self) -> list[str]:
        """The fold's organs: those every source labels, in the paper's order."""
        return common_classes([p.planned_3d().classes for p in self.plans.values()])

    @property
    def volume_size(self) -> list[int]:
        """``(z, y, x)`` voxels of the volumes (the same for every source)."""
        return list(next(iter(self.plans.values())).planned_3d().volume_size)

    def plans_identifier(self) -> str:
        """``lw3dPlans_<z>x<y>x<x>_<number of classes>c_<hash of the classes>``."""
        size = "x".join(str(v) for v in self.volume_size)
        digest = hashlib.sha256(json.dumps(self.classes).encode()).hexdigest()[:6]
        return f"lw3dPlans_{size}_{len(self.classes)}c_{digest}"

    def data_identifier(self, source: str) -> str:
        return self.plans[source].data_identifier_3d()

    def fold_cases(self) -> tuple:
        """``(training volumes, their source index, {source: validation volumes})`` from the ``3d`` caches.
        A case that is in the fold but not in its source's cache (its 3d preprocessing failed) is left out
        with a warning and a note in ``config.json``; a source without any cached case is an error."""
        train, domains, val = [], [], {}
        for index, source in enumerate(self.fold["sources"]):
            folder = self.preprocessed_root / source / self.data_identifier(source)
            cached = set(list_cases(folder))
            if not cached:
                raise LiverwildError(f"no 3d cache {folder}: run lw_plan_and_preprocess -d {source} -c 3d")
            wanted = {
                "train": self.select_training_cases(source, list(self.fold["train"].get(source, []))),
                "val": list(self.fold["val"].get(source, [])),
            }
            missing = sorted(c for names in wanted.values() for c in names if c not in cached)
            if missing:
                note = f"{source}: {len(missing)} case(s) of the fold are not in its 3d cache and are left out: " + (
                    ", ".join(missing)
                )
                self.notes.append(note)
                logger.warning(f"NOTE: {note}")
            cases = [CachedVolume(folder / c) for c in wanted["train"] if c in cached]
            train += cases
            domains += [index] * len(cases)
            val[source] = [CachedVolume(folder / c) for c in wanted["val"] if c in cached]
        if not train:
            raise LiverwildError(f"fold {self.fold_name} has no training volumes")
        return train, domains, val

    def build_datasets(self):
        train, _, self.val_cases = self.fold_cases()
        self.train_set = VolumeDataset(train, self.classes)

    def batch_sampler(self, epoch: int):
        """Shuffled volumes: ``steps_per_epoch`` batches, or one pass (the last batch may be smaller)."""
        generator = epoch_generator(self.config.seed, epoch)
        return shuffled_batches(
            self.train_set, self.global_batch_size, self.config.steps_per_epoch, generator, keep_last=True
        )

    # ---- model ---------------------------------------------------------------------------------------

    def build_network(self) -> torch.nn.Module:
        from ..nets import UNet3d

        c = self.config
        size = self.volume_size
        if any(v % 2**c.unet3d_depth for v in size):
            raise LiverwildError(
                f"volume size {size} is not divisible by 2**unet3d_depth = {2**c.unet3d_depth}: change "
                "plans.json 3d.volume_size or unet3d_depth"
            )
        return UNet3d(1, len(self.classes) + 1, c.unet3d_channels, c.unet3d_depth)

    def build_optimizer(self, network):
        parameters = [*network.parameters(), *self.auxiliary.parameters()]
        return torch.optim.Adam(parameters, lr=self.config.lr, weight_decay=self.config.weight_decay)

    def poly_factor(self, epoch: int) -> float:
        """The learning rate of ``epoch`` over the initial one: ``(1 − epoch / epochs) ** poly_power``."""
        return max(0.0, 1 - epoch / self.config.epochs) ** self.config.poly_power

    def build_scheduler(self, optimizer):
        return torch.optim.lr_scheduler.LambdaLR(optimizer, self.poly_factor)

    def step_scheduler(self, val_dice: float) -> None:
        self.scheduler.step()  # polynomial decay: by epoch, not by validation

    def load_checkpoint(self, path):
        """Resume; the learning rate follows this run's schedule (a re-run may raise ``epochs``, and the
        decay then continues towards the new end, not the old one)."""
        super().load_checkpoint(path)
        for group, base in zip(self.optimizer.param_groups, self.scheduler.base_lrs):
            group["lr"] = base * self.poly_factor(self.start_epoch)

    def model_description(self) -> dict:
        return {
            "configuration": "3d",
            "classes": list(self.classes),
            "volume_size": self.volume_size,
            "backbone_weights": None,
            "teacher": "none (3d configuration: a 3D U-Net on the resized volumes)",
        }

    # ---- one step ------------------------------------------------------------------------------------

    def feature_terms(self, hidden: dict, logits: torch.Tensor, labels: torch.Tensor) -> dict:
        """The representation-learning terms on the U-Net's hidden layers (``hidden``: ``{"encoder": [...],
        "decoder": [...]}``, :class:`~liverwild.nets.UNet3d`'s); none for the plain U-Net."""
        return {}

    def train_step(self, batch: dict) -> dict:
        volumes, labels = batch["volume"], batch["labels"]
        with autocast(self.device, self.config.amp):
            logits, hidden = self.model(volumes, return_hidden=True)
            terms = {"dice": soft_dice_loss(logits, labels)}
            terms.update(self.feature_terms(hidden, logits, labels))
            total = terms["dice"]
            if "feature" in terms:  # the representation-learning rows: Dice + λ · feature loss
                total = total + self.config.feature_weight * terms["feature"]
        self.optimize(total)
        return self.loss_stats(total, terms)

    # ---- validation ----------------------------------------------------------------------------------

    @torch.no_grad()
    def validate(self) -> dict:
        """Mean Dice over the fold's classes per held-out volume (classes absent from both prediction and
        reference are left out), averaged over volumes; ``log`` holds the mean per organ."""
        self.network.eval()
        n_classes = len(self.classes) + 1
        per_case: dict[str, float] = {}
        per_class: dict[int, list[float]] = {k: [] for k in range(1, n_classes)}
        for source, cases in self.val_cases.items():
            for case in cases:
                volume = torch.from_numpy(np.asarray(case.volume, np.float32))[None, None].to(self.device)
                with autocast(self.device, self.config.amp):
                    logits = self.network(volume)
                prediction = logits.float().max(1).indices[0].cpu().numpy()  # argmax, faster on CPU
                reference = VolumeDataset.lookup(case.classes, self.classes)[np.asarray(case.labels)]
                dices = volume_dice(prediction, reference, n_classes)
                for k, value in dices.items():
                    per_class[k].append(value)
                per_case[f"{source}/{case.name}"] = float(np.mean(list(dices.values()))) if dices else 1.0
        self.network.train()
        log = {f"val_dice_{self.classes[k - 1]}": float(np.mean(v)) for k, v in per_class.items() if v}
        mean = float(np.mean(list(per_case.values()))) if per_case else float("nan")
        return {"val_dice": mean, "val_cases": per_case, "log": log}


@register_trainer
class UNet3DTrainer(VolumeTrainer):
    """The source paper's "3D U-Net" row: the family's 3D U-Net (``unet3d_channels`` 16, ``unet3d_depth``
    4: 5.6 M parameters; the paper's had 16.3 M) with multi-label soft Dice alone."""

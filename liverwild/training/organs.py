"""Competing organs in 2D: the paper's trainer with a decoder that tells the liver from its neighbours.

See :class:`OrganCompetitionTrainer`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..datasets import load_dataset_json
from ..datasets.organs import COMPETING_CLASSES, competing_class_values
from ..errors import LiverwildError
from ..losses.classes import LIVER, NOT_LIVER
from ..nets import liver_logits
from .data import OrganSliceDataset
from .registry import register_trainer
from .trainers import ContrastiveDistillationTrainer


@register_trainer
class OrganCompetitionTrainer(ContrastiveDistillationTrainer):
    """The paper's trainer whose decoder predicts organ classes with a softmax — background, the liver,
    then the competing organs of :data:`~liverwild.datasets.organs.COMPETING_CLASSES` (stomach, bowel =
    duodenum + colon + small bowel, kidney, spleen, pancreas, gallbladder) that every source's organ
    maps name, or ``config.organ_classes`` — while the model's output stays a liver mask: prediction and
    validation use the softmax liver probability (:func:`~liverwild.nets.liver_logits`), so validation
    Dice is the liver Dice of the binary trainers.

    Losses: the paper's, generalised per class (:mod:`liverwild.losses.classes`: softmax focal, Tversky
    and −log IoU averaged over the liver and the classes present in the batch, softmax entropy; each
    equals its binary form with the liver alone). The organ map is cached for the original view only: on
    an augmented view it is deformed with the view's elastic deformation, re-drawn from the cache's
    augmentation seed (:class:`~.data.OrganSliceDataset`). Pixels the organ map calls liver but the liver
    label does not (border pixels: the two maps are resized differently) are "not liver, class unknown".
    Organ names come from the sources' raw ``dataset.json`` (``organ_labels``), found through their
    ``dataset_fingerprint.json``. A source without organ maps is refused (no binary fallback), and so is
    online augmentation (the augmentation would need to carry the organ map).
    """

    config_groups = ContrastiveDistillationTrainer.config_groups | {"organ_classes"}

    def organ_class_values(self, source: str) -> dict[str, list[int]]:
        """``{class: organ-map values}`` of ``source``, from its raw ``dataset.json``'s ``organ_labels``."""
        fingerprint = self.preprocessed_root / source / "dataset_fingerprint.json"
        raw = json.loads(fingerprint.read_text(encoding="utf-8")).get("raw_folder") if fingerprint.is_file() else None
        if raw is None or not (Path(raw) / "dataset.json").is_file():
            raise LiverwildError(
                f"{source}: {self.name()} reads the organ-map names from the raw dataset's dataset.json, "
                f"which is not at {raw} (the raw folder of {fingerprint}); re-run lw_plan_and_preprocess -d {source}"
            )
        return competing_class_values(load_dataset_json(raw).extra.get("organ_labels"))

    def choose_classes(self, values: dict[str, dict[str, list[int]]]) -> list[str]:
        """The liver first, then ``config.organ_classes`` or every class all sources name."""
        shared = [c for c in COMPETING_CLASSES if c != "liver" and all(c in v for v in values.values())]
        chosen = self.config.organ_classes
        if chosen is None:
            return ["liver", *shared]
        unknown = [c for c in chosen if c != "liver" and c not in shared]
        if not chosen or chosen[0] != "liver" or unknown or len(set(chosen)) != len(chosen):
            raise LiverwildError(
                f"organ_classes {chosen}: must be 'liver' then distinct classes every source names "
                f"({', '.join(shared) or 'none'})"
            )
        return list(chosen)

    def build_datasets(self):
        if self.config.augmentation != "cached":
            raise LiverwildError(f"{self.name()} trains on the cached views only (augmentation 'cached')")
        train, domains, self.val_cases = self.fold_cases()
        values = {}
        for index, source in enumerate(self.fold["sources"]):
            values[source] = self.organ_class_values(source)
            lacking = sum(1 for c, d in zip(train, domains) if d == index and c.organs is None)
            if lacking or not values[source]:
                raise LiverwildError(
                    f"{source}: no organ maps (labelsTr_organs/ named by dataset.json's organ_labels) for "
                    f"{lacking or 'its'} training case(s); {self.name()} needs them: leave {source} out of "
                    "the fold or train with ContrastiveDistillationTrainer"
                )
        self.classes = self.choose_classes(values)
        self.class_values = {s: {c: v[c] for c in self.classes if c in v} for s, v in values.items()}
        tables = {}
        for source, by_class in self.class_values.items():
            table = np.zeros(256, np.uint8)  # organ-map value → class index (cached values are 0..255)
            for index, cls in enumerate(self.classes[1:], start=LIVER + 1):
                table[[v for v in by_class[cls] if 0 <= v < 256]] = index
            table[[v for v in by_class.get("liver", []) if 0 <= v < 256]] = NOT_LIVER  # liver: from the label
            tables[source] = table
        sources = self.fold["sources"]
        self.train_set = OrganSliceDataset(
            train,
            [tables[sources[d]] for d in domains],
            [self.plans[sources[d]].augmentation for d in domains],
            self.config.sampling,
            self.config.seed,
            self.config.use_augmented_views,
            self.config.positive_pairs,
        )
        self.feature_channels = int(train[0].features.shape[2])

    def output_classes(self) -> list[str]:
        return self.classes

    def segmentation_losses(self) -> dict:
        """The binary losses' softmax generalisations per class."""
        from .. import losses as L

        c, over_ranks = self.config, self.distributed.enabled
        return {
            "focal": L.SoftmaxFocalLoss(c.focal_alpha, c.focal_gamma),
            "tversky": L.ClassTverskyLoss(c.tversky_alpha, c.tversky_beta, over_ranks=over_ranks),
            "log_iou": L.ClassLogIoULoss(over_ranks=over_ranks),
            "entropy": L.SoftmaxEntropyLoss(c.entropy_form),
        }

    def validation_logits(self, case, start: int, stop: int, slices: torch.Tensor) -> torch.Tensor:
        """The liver logit ``(n, 1, H, W)`` of the softmax: validation Dice is the liver Dice."""
        return liver_logits(super().validation_logits(case, start, stop, slices))

    def model_description(self) -> dict:
        """The base description plus the classes of the softmax and each source's organ-map values of them
        (``classes`` stays the output's: the liver)."""
        return {**super().model_description(), "organ_classes": self.classes, "organ_class_values": self.class_values}

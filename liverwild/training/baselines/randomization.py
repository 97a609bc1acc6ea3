"""Domain randomisation, SynthSeg-style (Billot et al., MedIA 2023) (follows / deviates: the trainer's docstring)."""

from __future__ import annotations

import numpy as np
import torch

from ...log import get_logger
from ..images import ImageSliceDataset
from ..registry import register_trainer
from .supervised import SupervisedUNetTrainer
from .synthesis import synthesize

logger = get_logger(__name__)


class SynthesisDataset(ImageSliceDataset):
    """Items: ``slice`` synthesised from the label map of the original slice (view 0), its ``label``
    (liver, moved with the same random affine) and ``domain``."""

    def __init__(self, cases, domains, seed: int = 0, background_classes: int = 4):
        super().__init__(cases, domains, seed, use_views=False)
        self.background_classes = background_classes

    def __getitem__(self, k: int) -> dict:
        ci, si = self.index[k]
        case = self.cases[ci]
        liver = np.asarray(case.labels[0, si], np.uint8)
        labels = np.asarray(case.organs[si], np.uint8) if case.organs is not None else liver
        image, label = synthesize(
            labels, liver, np.asarray(case.slices[0, si], np.float32), self.rng(k), self.background_classes
        )
        return {
            "slice": torch.from_numpy(image)[None],
            "label": torch.from_numpy(label.astype(np.float32))[None],
            "domain": torch.tensor(self.domains[k]),
        }


@register_trainer
class DomainRandomizationTrainer(SupervisedUNetTrainer):
    """Domain randomisation (SynthSeg-style; Billot et al., MedIA 2023): the U-Net never sees a real image.
    Every training slice is synthesised afresh from a label map (:mod:`.synthesis`) with random contrast
    per class, resolution, blur, bias field, gamma and noise, so no intensity profile can be learnt.

    Label maps: the multi-organ maps cached from ``labelsTr_organs/`` (the phantoms' full tissue maps;
    the converters' organ maps for BTCV, AMOS, AbdomenCT-1K, CHAOS MR). A source without organ maps
    falls back to its liver label; in both cases the unlabelled background is split into intensity
    classes of the real slice. The fallback is logged and written to ``config.json`` (``notes``).
    Validation runs on the real (cached) slices of the sources.
    """

    # every item is synthesised from view 0's label map: no cached views, no online augmentation
    config_groups = SupervisedUNetTrainer.config_groups - {"augmentation", "cached_views"} | {"synthesis"}

    def make_dataset(self, cases: list, domains: list):
        self.notes = []
        for index, source in enumerate(self.sources):
            lacking = sum(1 for c, d in zip(cases, domains) if d == index and c.organs is None)
            if lacking:
                note = (
                    f"{source}: {lacking} training case(s) have no organ map (labelsTr_organs/); their images are "
                    "synthesised from the liver label and intensity classes of the background"
                )
                self.notes.append(note)
                logger.warning(f"NOTE: {note}")
        return SynthesisDataset(cases, domains, self.config.seed, self.config.background_classes)

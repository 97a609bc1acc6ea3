"""Domain randomisation, SynthSeg-style (Billot et al., MedIA 2023) (follows / deviates: the trainer's docstring)."""

from __future__ import annotations

import numpy as np
import torch

from ...errors import ConfigurationError
from ...log import get_logger
from ..images import ImageSliceDataset
from ..registry import register_trainer
from .supervised import SupervisedUNetTrainer
from .synthesis import synthesize, through_plane_half_width

logger = get_logger(__name__)


def slice_spacing_mm(case) -> float:
    """Distance between a cached case's slices in mm (the canonical volume's z spacing)."""
    return float(case.properties["canonical_geometry"]["spacing"][2])


class SynthesisDataset(ImageSliceDataset):
    """Items: ``slice`` synthesised from the label maps of the original slice (view 0) and of its
    neighbours in the cached volume (for thick slices up to ``max_slice_thickness_mm``; the volume's
    end slices repeated past its ends), its ``label`` (the slice's liver, moved with the same spatial
    map) and ``domain``. ``deformation_sd_px``: the nonlinear deformation's largest s.d. (pixels)."""

    def __init__(
        self,
        cases,
        domains,
        seed: int = 0,
        background_classes: int = 4,
        max_slice_thickness_mm: float = 8.0,
        deformation_sd_px: float = 3.5,
    ):
        super().__init__(cases, domains, seed, use_views=False)
        self.background_classes, self.deformation_sd_px = background_classes, deformation_sd_px
        self.max_thickness = [max_slice_thickness_mm / slice_spacing_mm(c) for c in self.cases]

    def __getitem__(self, k: int) -> dict:
        ci, si = self.index[k]
        case = self.cases[ci]
        half = through_plane_half_width(self.max_thickness[ci])
        around = np.clip(np.arange(si - half, si + half + 1), 0, case.n_slices - 1)
        liver = np.asarray(case.labels[0, si], np.uint8)
        labels = case.organs[around] if case.organs is not None else case.labels[0][around]
        image, label = synthesize(
            np.asarray(labels, np.uint8),
            liver,
            np.asarray(case.slices[0][around], np.float32),
            self.rng(k),
            self.background_classes,
            self.max_thickness[ci],
            self.deformation_sd_px,
        )
        return {
            "slice": torch.from_numpy(image)[None],
            "label": torch.from_numpy(label.astype(np.float32))[None],
            "domain": torch.tensor(self.domains[k]),
        }


@register_trainer
class DomainRandomizationTrainer(SupervisedUNetTrainer):
    """Domain randomisation (SynthSeg-style; Billot et al., MedIA 2023): the U-Net never sees a real image.
    Every training slice is synthesised afresh from a label map (:mod:`.synthesis`) with a random
    nonlinear deformation and affine, random contrast per class, resolution (thick slices through the
    plane, from the cached neighbours, or along an in-plane axis), blur, bias field, gamma and noise, so
    no intensity profile can be learnt.

    Label maps: the multi-organ maps cached from ``labelsTr_organs/`` (the phantoms' full tissue maps;
    the converters' organ maps for BTCV, AMOS, AbdomenCT-1K, CHAOS MR). A source without organ maps
    falls back to its liver label; in both cases the unlabelled background is split into intensity
    classes of the real slice. The fallback is logged and written to ``config.json`` (``notes``).
    Validation runs on the real (cached) slices of the sources.
    """

    # every item is synthesised from view 0's label map: no cached views, no online augmentation
    config_groups = SupervisedUNetTrainer.config_groups - {"augmentation", "cached_views"} | {"synthesis"}

    def make_dataset(self, cases: list, domains: list):
        config = self.config
        for name in ("max_slice_thickness_mm", "deformation_sd_px"):
            if getattr(config, name) < 0:
                raise ConfigurationError(f"{name} must be ≥ 0 (0 turns the step off), not {getattr(config, name)}")
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
        return SynthesisDataset(
            cases,
            domains,
            config.seed,
            config.background_classes,
            config.max_slice_thickness_mm,
            config.deformation_sd_px,
        )

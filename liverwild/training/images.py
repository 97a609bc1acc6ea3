"""Training data for the image baselines: cached normalised slices (no teacher features) with their
source-domain index, and a sampler that draws the same number of slices from every source.

The slices are those of the preprocessing cache — the same normalisation, 224² grid and cached
augmented views as the distillation trainer — so baselines and method see identical inputs.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Sampler

from planning.sections import Augmentation

from .data import TrainingSet


class ImageSliceDataset(TrainingSet):
    """Slices of cached cases. Item ``k`` of epoch ``e`` (seeded by (seed, e, k)) is one view of a slice:
    a cached view drawn at random (``augmentation="cached"``), or the original slice augmented afresh
    with the plans' Table A1 parameters (``augmentation="online"``).

    Items: ``slice`` ``(1, H, W)`` float32, ``label`` ``(1, H, W)`` float32 (liver 0/1), ``domain`` int64
    (index of the case's source in ``sources``).
    """

    def __init__(
        self,
        cases: list,
        domains: list,
        seed: int = 0,
        use_views: bool = True,
        augmentation: str = "cached",
        augmentation_params: Augmentation | None = None,
    ):
        if len(cases) != len(domains):
            raise ValueError("one domain index per case")
        if augmentation not in ("cached", "online"):
            raise ValueError(f"augmentation must be 'cached' or 'online', not {augmentation!r}")
        self.cases, self.case_domains = list(cases), [int(d) for d in domains]
        self.index = [(ci, si) for ci, c in enumerate(self.cases) for si in range(c.n_slices)]
        self.domains = np.array([self.case_domains[ci] for ci, _ in self.index], dtype=np.int64)
        self.seed, self.use_views, self.epoch = seed, use_views, 0
        self.augmentation, self.augmentation_params = augmentation, augmentation_params
        if augmentation == "online" and augmentation_params is None:
            raise ValueError("online augmentation needs the plans' augmentation parameters")

    def __len__(self) -> int:
        return len(self.index)

    def rng(self, k: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, k])

    def view(self, k: int, rng: np.random.Generator) -> tuple:
        """``(slice (H, W) float32, label (H, W) uint8)`` of item ``k``."""
        ci, si = self.index[k]
        case = self.cases[ci]
        if self.augmentation == "online":
            from preprocessing.augmentation import augment_stack

            assert self.augmentation_params is not None  # checked in __init__
            s, m = augment_stack(
                np.asarray(case.slices[0, si : si + 1], np.float32),
                np.asarray(case.labels[0, si : si + 1], np.uint8),
                self.augmentation_params,
                int(rng.integers(2**31)),
            )
            return s[0], m[0]
        view = int(rng.integers(case.n_views)) if self.use_views else 0
        return np.asarray(case.slices[view, si], np.float32), np.asarray(case.labels[view, si], np.uint8)

    def __getitem__(self, k: int) -> dict:
        image, label = self.view(k, self.rng(k))
        return {
            "slice": torch.from_numpy(np.ascontiguousarray(image))[None],
            "label": torch.from_numpy(label.astype(np.float32))[None],
            "domain": torch.tensor(self.domains[k]),
        }


class DomainBalancedBatchSampler(Sampler):
    """Batches of ``per_domain`` items from every domain (grouped by domain, in domain order), for the
    episodic baselines. ``n_batches`` per epoch; the draw depends only on (seed, epoch), so a resumed run
    continues exactly. A domain with fewer items than ``per_domain`` is drawn with replacement."""

    def __init__(self, domains: np.ndarray, per_domain: int, n_batches: int, seed: int = 0):
        self.groups = [np.flatnonzero(domains == d) for d in np.unique(domains)]
        self.per_domain, self.n_batches, self.seed, self.epoch = per_domain, n_batches, seed, 0

    def __len__(self) -> int:
        return self.n_batches

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch, 7919])
        for _ in range(self.n_batches):
            batch = []
            for items in self.groups:
                batch += rng.choice(items, self.per_domain, replace=len(items) < self.per_domain).tolist()
            yield batch

"""Training data from the preprocessing cache: random slices with their contrastive partners.

``SliceDataset`` indexes every slice of the given cached cases. Item ``k`` of epoch ``e`` draws, from
a generator seeded by (seed, e, k), the view (original or augmented); its partners
(:func:`liverwild.losses.contrastive_partners`) come from the same view of the same scan: every positive
(``positive_pairs="all"``, the paper's i−1 and i+1; at a scan's end the one that exists, twice, so that
items stack) or one drawn among them (``"one"``, the earlier behaviour), and the negatives. The draw
does not depend on worker processes, so a run is reproducible and a resumed run continues exactly.
``OrganSliceDataset`` gives class-index targets (background, liver, competing organs) from the cached
organ maps instead of the liver mask.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from planning.sections import Augmentation
from preprocessing.augmentation import elastic_displacements, warp_label_map
from preprocessing.cache import CachedCase
from preprocessing.cases import view_seed

from ..errors import ConfigurationError
from ..losses import contrastive_partners
from ..losses.classes import LIVER
from ..losses.sampling import SAMPLING_STRATEGIES


class TrainingSet(Dataset):
    """What a trainer's training set offers: its cached ``cases``, the ``epoch`` its draws depend on (the
    trainer sets it before each epoch), a length, and items (dicts of tensors) by index."""

    cases: list
    epoch: int = 0

    def __len__(self) -> int:
        raise NotImplementedError


class SliceDataset(TrainingSet):
    """Items: ``features`` ``(C, h, w)`` of the slice, ``slice`` and ``label`` ``(1, H, W)``, ``positives``
    ``(P, C, h, w)`` and ``negatives`` ``(N, C, h, w)`` (teacher features of the partners)."""

    def __init__(
        self,
        cases: list,
        strategy: str = "neighbours",
        seed: int = 0,
        use_views: bool = True,
        positive_pairs: str = "all",
    ):
        self.cases = [c if isinstance(c, CachedCase) else CachedCase(Path(c)) for c in cases]
        self.index = [(ci, si) for ci, c in enumerate(self.cases) for si in range(c.n_slices)]
        self.strategy, self.seed, self.use_views = strategy, seed, use_views
        if positive_pairs not in ("all", "one"):
            raise ConfigurationError(f"positive_pairs must be 'all' or 'one', not {positive_pairs!r}")
        self.positive_pairs = positive_pairs
        self.epoch = 0

    def partners(self, si: int, n_slices: int, rng: np.random.Generator) -> tuple[list[int], list[int]]:
        """``(positives, negatives)`` of slice ``si``: every positive offset of the strategy, those outside
        the scan replaced by the ones inside (always as many: items stack), or one drawn at random."""
        positives, negatives = contrastive_partners(si, n_slices, self.strategy)
        if self.positive_pairs == "one":
            return [int(positives[rng.integers(len(positives))])], [int(i) for i in negatives]
        wanted = len(SAMPLING_STRATEGIES[self.strategy]["positive_offsets"])
        return [int(positives[j % len(positives)]) for j in range(wanted)], [int(i) for i in negatives]

    def __len__(self):
        return len(self.index)

    def __getitem__(self, k: int) -> dict:
        ci, si = self.index[k]
        case = self.cases[ci]
        rng = np.random.default_rng([self.seed, self.epoch, k])
        view = int(rng.integers(case.n_views)) if self.use_views else 0
        positives, negatives = self.partners(si, case.n_slices, rng)

        def f(i):
            # a copy: a float32 cache (feature_dtype) is memory-mapped read-only, and asarray would not copy it
            return torch.from_numpy(np.array(case.features[view, i], dtype=np.float32))

        return {
            "features": f(si),
            "slice": torch.from_numpy(np.asarray(case.slices[view, si], dtype=np.float32))[None],
            "label": self.target(ci, view, si),
            "positives": torch.stack([f(i) for i in positives]),
            "negatives": torch.stack([f(i) for i in negatives]),
        }

    def target(self, ci: int, view: int, si: int) -> torch.Tensor:
        """The training target of slice ``si`` of view ``view`` of case ``ci``: the liver mask ``(1, H, W)``."""
        return torch.from_numpy(np.asarray(self.cases[ci].labels[view, si], dtype=np.float32))[None]


class OrganSliceDataset(SliceDataset):
    """Like :class:`SliceDataset`, with class-index targets ``(1, H, W)`` uint8 for a softmax over
    background (0), the liver (1) and competing organs (2, …): ``tables[ci]`` maps case ``ci``'s cached
    organ-map values (``organs.npy``, cached for view 0) to class indices, its liver values to
    :data:`~liverwild.losses.NOT_LIVER`; the liver label (``labels.npy``) then marks the liver, so the
    liver class is exactly the binary trainer's. On an augmented view the organ map is deformed with the
    view's own elastic deformation, re-drawn from the augmentation's seed (``augmentations[ci]``: the
    case's plans' augmentation parameters; :func:`preprocessing.augmentation.elastic_displacements`)."""

    def __init__(
        self,
        cases: list,
        tables: list,
        augmentations: list,
        strategy: str = "neighbours",
        seed: int = 0,
        use_views: bool = True,
        positive_pairs: str = "all",
    ):
        super().__init__(cases, strategy, seed, use_views, positive_pairs)
        self.tables, self.augmentations = tables, augmentations
        self._displacements: dict = {}  # (case, view) → {slice: coarse displacements}

    def displacements(self, ci: int, view: int) -> dict:
        """The elastic displacements of view ``view`` (≥ 1) of case ``ci``, as preprocessing drew them."""
        if (ci, view) not in self._displacements:
            params = self.augmentations[ci]
            seed = view_seed(params.seed, self.cases[ci].name, view)
            self._displacements[ci, view] = elastic_displacements(self.cases[ci].n_slices, params, seed)
        return self._displacements[ci, view]

    def target(self, ci: int, view: int, si: int) -> torch.Tensor:
        case = self.cases[ci]
        if case.organs is None:
            raise ConfigurationError(
                f"{case.folder}: no organ maps cached (organs.npy); re-run lw_plan_and_preprocess on a dataset "
                "with labelsTr_organs for an organ-competition trainer"
            )
        organs = np.asarray(case.organs[si])
        coarse = self.displacements(ci, view).get(si) if view else None
        if coarse is not None:
            organs = warp_label_map(organs, coarse)
        classes = self.tables[ci][organs]
        classes[np.asarray(case.labels[view, si]) > 0] = LIVER
        return torch.from_numpy(classes)[None]


def load_cases(preprocessed_root, dataset: str, data_identifier: str, names: list) -> list:
    """CachedCase objects, with a message naming the command to run when something is missing."""
    from ..errors import LiverwildError

    folder = Path(preprocessed_root) / dataset / data_identifier
    if not folder.is_dir():
        raise LiverwildError(
            f"no cache {folder}: run lw_plan_and_preprocess -d {dataset} (or --preprocess-only "
            f"after editing plans.json)"
        )
    cases = []
    for name in names:
        case_dir = folder / name
        if not (case_dir / "properties.json").is_file():
            raise LiverwildError(
                f"case {name} of {dataset} is not in the cache {folder}: run lw_plan_and_preprocess -d {dataset}"
            )
        cases.append(CachedCase(case_dir))
    return cases


class OnlineAugmentedSliceDataset(SliceDataset):
    """Like :class:`SliceDataset`, but augments on the fly, as the paper trains: every item takes the
    original (view 0) normalised slices of the anchor and its partners, augments them afresh (Table A1
    parameters from the plans, seeded by (seed, epoch, item)) and returns *slices*; the trainer runs the
    frozen teacher on them. Items: ``slice``, ``label`` ``(1, H, W)``, ``positive_slices`` ``(P, 1, H, W)``,
    ``negative_slices`` ``(N, 1, H, W)``."""

    def __init__(
        self,
        cases: list,
        augmentation: Augmentation,
        strategy: str = "neighbours",
        seed: int = 0,
        positive_pairs: str = "all",
    ):
        super().__init__(cases, strategy, seed, use_views=False, positive_pairs=positive_pairs)
        self.augmentation = augmentation

    def __getitem__(self, k: int) -> dict:
        from preprocessing.augmentation import augment_stack

        ci, si = self.index[k]
        case = self.cases[ci]
        rng = np.random.default_rng([self.seed, self.epoch, k])
        positives, negatives = self.partners(si, case.n_slices, rng)
        order = [si, *positives, *negatives]
        slices = np.asarray(case.slices[0, order], dtype=np.float32)
        labels = np.asarray(case.labels[0, order], dtype=np.uint8)
        slices, labels = augment_stack(slices, labels, self.augmentation, int(rng.integers(2**31)))
        t = torch.from_numpy(slices)[:, None]
        return {
            "slice": t[0],
            "label": torch.from_numpy(labels[0].astype(np.float32))[None],
            "positive_slices": t[1 : 1 + len(positives)],
            "negative_slices": t[1 + len(positives) :],
        }

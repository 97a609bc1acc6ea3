"""Training data from the preprocessing cache: random slices with their contrastive partners.

``SliceDataset`` indexes every slice of the given cached cases. Item ``k`` of epoch ``e`` draws, from
a generator seeded by (seed, e, k), the view (original or augmented), one positive among the slice's
positives and the slice's negatives (:func:`liverwild.losses.contrastive_partners`); the partners come
from the same view of the same scan. The draw does not depend on worker processes, so a run is
reproducible and a resumed run continues exactly.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from preprocessing.cache import CachedCase

from ..losses import contrastive_partners


class SliceDataset(Dataset):
    def __init__(self, cases: list, strategy: str = "neighbours", seed: int = 0, use_views: bool = True):
        self.cases = [c if isinstance(c, CachedCase) else CachedCase(Path(c)) for c in cases]
        self.index = [(ci, si) for ci, c in enumerate(self.cases) for si in range(c.n_slices)]
        self.strategy, self.seed, self.use_views = strategy, seed, use_views
        self.epoch = 0

    def __len__(self):
        return len(self.index)

    def __getitem__(self, k: int) -> dict:
        ci, si = self.index[k]
        case = self.cases[ci]
        rng = np.random.default_rng([self.seed, self.epoch, k])
        view = int(rng.integers(case.n_views)) if self.use_views else 0
        positives, negatives = contrastive_partners(si, case.n_slices, self.strategy)
        pos = int(positives[rng.integers(len(positives))])

        def f(i):
            return torch.from_numpy(np.asarray(case.features[view, i], dtype=np.float32))
        return {
            "features": f(si),
            "slice": torch.from_numpy(np.asarray(case.slices[view, si], dtype=np.float32))[None],
            "label": torch.from_numpy(np.asarray(case.labels[view, si], dtype=np.float32))[None],
            "positive": f(pos),
            "negatives": torch.stack([f(i) for i in negatives]),
        }


def load_cases(preprocessed_root, dataset: str, data_identifier: str, names: list) -> list:
    """CachedCase objects, with a message naming the command to run when something is missing."""
    from ..errors import LiverwildError
    folder = Path(preprocessed_root) / dataset / data_identifier
    if not folder.is_dir():
        raise LiverwildError(f"no cache {folder}: run lw_plan_and_preprocess -d {dataset} (or --preprocess-only "
                             f"after editing plans.json)")
    cases = []
    for name in names:
        case_dir = folder / name
        if not (case_dir / "properties.json").is_file():
            raise LiverwildError(f"case {name} of {dataset} is not in the cache {folder}: "
                                 f"run lw_plan_and_preprocess -d {dataset}")
        cases.append(CachedCase(case_dir))
    return cases

"""The ``3d`` family's training data: cached volumes with their labels mapped onto a fold's classes, and
the per-class Dice its validation reports."""

from __future__ import annotations

import numpy as np
import torch

from preprocessing.cache import CachedVolume

from ..evaluation.metrics import dice
from .data import TrainingSet


class VolumeDataset(TrainingSet):
    """Cached volumes with their labels on the fold's classes. Item: ``volume`` ``(1, D, H, W)`` float32,
    ``labels`` ``(D, H, W)`` int64 (0 background, ``k + 1``: ``classes[k]``)."""

    def __init__(self, cases: list[CachedVolume], classes: list[str]):
        self.cases, self.classes = list(cases), list(classes)
        self.lookups = [self.lookup(case.classes, classes) for case in self.cases]
        self.epoch = 0

    @staticmethod
    def lookup(case_classes: list[str], classes: list[str]) -> np.ndarray:
        """Label index of a case's classes → index of ``classes`` (0 for the organs the fold leaves out)."""
        table = np.zeros(len(case_classes) + 1, np.int64)
        for k, organ in enumerate(case_classes, start=1):
            table[k] = classes.index(organ) + 1 if organ in classes else 0
        return table

    def __len__(self) -> int:
        return len(self.cases)

    def labels(self, k: int) -> np.ndarray:
        return self.lookups[k][np.asarray(self.cases[k].labels)]

    def __getitem__(self, k: int) -> dict:
        volume = torch.from_numpy(np.asarray(self.cases[k].volume, np.float32))[None]
        return {"volume": volume, "labels": torch.from_numpy(self.labels(k))}


def volume_dice(prediction: np.ndarray, reference: np.ndarray, n_classes: int) -> dict[int, float]:
    """Dice of every class ``1 … n_classes − 1`` present in the prediction or the reference."""
    out = {}
    for k in range(1, n_classes):
        p, r = prediction == k, reference == k
        if p.any() or r.any():
            out[k] = dice(p, r)
    return out

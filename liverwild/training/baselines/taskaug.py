"""TaskAug (Li et al., Comput Biol Med 2022) as a segmentation trainer (follows / deviates: its docstring)."""

from __future__ import annotations

import numpy as np
import torch

from ...device import autocast
from ...losses.alignment import centroid_cosine_alignment, class_centroids, class_soft_labels, symmetric_kl_alignment
from ..registry import register_trainer
from .episodic import EpisodicTrainer, first_order_step, forward_with, members, mixture_indices, split_episode


def halves(domains: torch.Tensor) -> tuple:
    """``(first, second)`` boolean masks: each domain's items split into their first and second half."""
    first = torch.zeros_like(domains, dtype=torch.bool)
    for domain in torch.unique(domains):
        items = torch.nonzero(domains == domain).flatten()
        first[items[: max(1, len(items) // 2)]] = True
    return first, ~first


@register_trainer
class TaskAugTrainer(EpisodicTrainer):
    """TaskAug — episodic training with task augmentation (Li et al., Comput Biol Med 2022), for segmentation.

    Each step's batch holds ``batch_size`` slices of every source; each domain's slices are halved into
    a meta-train pool and a meta-test pool. Meta-train: the first halves of a random split of the
    domains (all but one). Meta-test — the task augmentation: ``batch_size`` slices drawn from the
    second halves of *all* sources with random fractions (Dirichlet(1)), a new virtual domain every step,
    so the few real sources yield many distinct tasks. After the first-order inner step on the meta-train
    loss, at ``θ'``:

    - the meta-test segmentation loss (episodic training: generalise from the inner step);
    - **masked KL** — symmetric KL between the soft class labels (class-mean predictions, temperature
      τ, classes masked per pixel) of meta-train and meta-test (weight ``global_weight``);
    - **centroid-cosine alignment** — ``1 − cos`` between the per-class centroids of the unit embeddings
      of meta-train and meta-test pixels (weight ``local_weight``).

    Deviations: the paper classifies images; here the alignment terms are per pixel class of a
    segmentation, on the U-Net's last decoder features, and the inner step is first-order.
    """

    def train_step(self, batch: dict) -> dict:
        c = self.config
        x, y, d = batch["slice"], batch["label"], batch["domain"]
        train_ids, _ = split_episode(d, self.episodes)
        first, second = halves(d)
        train_mask = first & members(d, train_ids)
        pool = torch.nonzero(second).flatten()
        seed = int(torch.randint(2**31, (1,), generator=self.episodes))
        test_items = pool[mixture_indices(d[pool].cpu(), np.random.default_rng(seed), c.batch_size)].to(x.device)
        with autocast(self.device, c.amp):
            task = self.segmentation_loss(self.network(x[train_mask]), y[train_mask])
            fast = first_order_step(self.network, task, self.inner_lr, c.inner_clip)
            train_logits, train_features = forward_with(self.network, fast, x[train_mask])
            test_logits, test_features = forward_with(self.network, fast, x[test_items])
            meta_task = self.segmentation_loss(test_logits, y[test_items])
            kl = symmetric_kl_alignment(
                class_soft_labels(train_logits, y[train_mask], c.temperature),
                class_soft_labels(test_logits, y[test_items], c.temperature),
            )
            centroids = [
                class_centroids(*self.pixels(f, t))
                for f, t in ((train_features, y[train_mask]), (test_features, y[test_items]))
            ]
            cosine = centroid_cosine_alignment(*centroids)
            total = task + meta_task + c.global_weight * kl + c.local_weight * cosine
        self.optimize(total)
        return self.loss_stats(total, {"task": task, "meta_test": meta_task, "kl": kl, "centroid": cosine})

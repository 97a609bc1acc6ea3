"""MASF (Dou et al., NeurIPS 2019) as a segmentation trainer (what it follows and where it deviates: its docstring)."""

from __future__ import annotations

import torch

from ...device import autocast
from ...losses.alignment import batch_hard_triplet_loss, class_soft_labels, symmetric_kl_alignment
from ..registry import register_trainer
from .episodic import EpisodicTrainer, first_order_step, forward_with, members, split_episode


@register_trainer
class MASFTrainer(EpisodicTrainer):
    """MASF — model-agnostic learning of semantic features (Dou et al., NeurIPS 2019), for segmentation.

    Per step (one episode): the sources in the batch are split at random into meta-train (all but one)
    and meta-test (one). The task loss on meta-train at ``θ`` gives the first-order fast weights ``θ'``
    (inner step ``inner_lr``, gradient clipped to ``inner_clip``). At ``θ'``:

    - **global class alignment** — per meta-train domain ``i`` and the meta-test domain ``j``, the
      temperature-softened (τ = ``temperature``) soft labels of each class's mean feature, aligned by
      symmetric KL (``½ [KL(s_i‖s_j) + KL(s_j‖s_i)]``), classes masked per pixel by the ground truth;
    - **local sample clustering** — a batch-hard triplet loss (margin ``triplet_margin``) on unit-length
      embeddings ``M_φ`` of the last decoder features, over at most ``pixels_per_class`` pixels per class
      of every domain, so pixels of one class cluster across domains.

    Objective ``L_task(θ) + β1 L_global(θ') + β2 L_local(θ', φ)`` (β1 = ``global_weight``,
    β2 = ``local_weight``). Deviations: the inner step is first-order (the issue's choice, also the usual
    way MASF is run on large networks); the task loss is the method's segmentation loss; the embedding
    network works per pixel on the U-Net's last decoder features (MASF's was on image-level features for
    classification).
    """

    config_groups = EpisodicTrainer.config_groups | {"triplet"}

    def train_step(self, batch: dict) -> dict:
        c = self.config
        x, y, d = batch["slice"], batch["label"], batch["domain"]
        train_ids, test_ids = split_episode(d, self.episodes)
        with autocast(self.device, c.amp):
            train_mask = members(d, train_ids)
            task = self.segmentation_loss(self.network(x[train_mask]), y[train_mask])
            fast = first_order_step(self.network, task, self.inner_lr, c.inner_clip)
            outputs = {k: forward_with(self.network, fast, x[d == k]) for k in train_ids + test_ids}
            soft = {k: class_soft_labels(outputs[k][0], y[d == k], c.temperature) for k in outputs}
            global_loss = torch.stack(
                [symmetric_kl_alignment(soft[i], soft[j]) for i in train_ids for j in test_ids]
            ).mean()
            pixels = [self.pixels(outputs[k][1], y[d == k]) for k in outputs]
            local_loss = batch_hard_triplet_loss(
                torch.cat([p[0] for p in pixels]), torch.cat([p[1] for p in pixels]), c.triplet_margin
            )
            total = task + c.global_weight * global_loss + c.local_weight * local_loss
        self.optimize(total)
        return self.loss_stats(total, {"task": task, "global": global_loss, "local": local_loss})

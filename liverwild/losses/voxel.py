"""Voxel-level representation losses of the ``3d`` configuration (Siamese / SCL rows of the source paper).

A *voxel feature layer* (:class:`VoxelFeatureLayer`) maps sampled voxel features ``(n, C)`` of one
hidden layer of the 3D U-Net (encoder or decoder) through a projection MLP ``g`` (``z = g(f)``) and a
prediction MLP ``h`` (``p = h(z)``). The losses compare voxels of the same class, within and across
the volumes of a batch:

- :func:`simsiam_voxel_loss` — no negatives: ``−cos(p_i, stopgrad(z_j))`` averaged over ordered pairs
  ``i ≠ j`` of one class, each present class weighted equally (class weights against imbalance);
- :func:`supervised_contrastive_voxel_loss` — the SCL row: Khosla et al.'s supervised contrastive loss
  on ``z`` with the other classes' voxels as negatives.

:func:`sample_voxels` picks which voxels enter (at most ``max_samples`` per layer, false negatives of
the current prediction first, at most ``max_false_negatives`` of them, classes balanced), and
:func:`multi_resolution_loss` sums a loss over several hidden layers (multi-resolution context
aggregation) with labels and predictions brought to each layer's grid by majority (:func:`to_grid`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn


def _balanced_pick(candidates: torch.Tensor, classes: torch.Tensor, budget: int, generator) -> torch.Tensor:
    """Up to ``budget`` of ``candidates`` (voxel indices), shared as evenly as possible among their
    classes: a class with fewer voxels than its share gives the rest to the others."""
    if budget <= 0 or candidates.numel() == 0:
        return candidates[:0]
    groups = [candidates[classes == c] for c in torch.unique(classes)]
    groups = [g[torch.randperm(g.numel(), generator=generator, device=g.device)] for g in groups]
    sizes = sorted((g.numel(), k) for k, g in enumerate(groups))
    take, left = {}, budget
    for rank, (size, k) in enumerate(sizes):
        share = left // (len(sizes) - rank)
        take[k] = min(size, share)
        left -= take[k]
    return torch.cat([g[: take[k]] for k, g in enumerate(groups)])


def sample_voxels(
    labels: torch.Tensor,
    predictions: torch.Tensor,
    max_samples: int = 1700,
    max_false_negatives: int = 1000,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Indices of the voxels a feature loss uses, from flat ``labels`` and ``predictions`` ``(N,)``.

    False negatives (``prediction ≠ label``, the voxels the network still gets wrong) come first, up
    to ``max_false_negatives``; correctly predicted voxels fill the rest up to ``max_samples``. Within
    each group the classes are balanced (see :func:`_balanced_pick`), so small organs are sampled as
    often as the liver or the background.
    """
    labels, predictions = labels.reshape(-1), predictions.reshape(-1)
    wrong = predictions != labels
    indices = torch.arange(labels.numel(), device=labels.device)
    false_negatives = _balanced_pick(indices[wrong], labels[wrong], min(max_false_negatives, max_samples), generator)
    right = _balanced_pick(indices[~wrong], labels[~wrong], max_samples - false_negatives.numel(), generator)
    return torch.cat([false_negatives, right])


def _class_pair_mean(similarity: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean over present classes of the mean ``similarity[i, j]`` over ordered pairs ``i ≠ j`` of that
    class (classes with one voxel have no pair and are left out)."""
    same = labels[:, None] == labels[None, :]
    same.fill_diagonal_(False)
    terms = []
    for c in torch.unique(labels):
        rows = labels == c
        pairs = same & rows[:, None]
        if pairs.any():
            terms.append(similarity[pairs].mean())
    return torch.stack(terms).mean() if terms else similarity.sum() * 0.0


def simsiam_voxel_loss(p: torch.Tensor, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``−cos(p_i, stopgrad(z_j))`` over same-class ordered pairs ``i ≠ j`` (both directions of each pair
    appear, as SimSiam's symmetric loss), each class weighted equally. ``p``, ``z``: ``(n, d)``;
    ``labels``: ``(n,)``. −1 when every class's voxels agree perfectly."""
    cosine = F.normalize(p, dim=1) @ F.normalize(z.detach(), dim=1).T
    return -_class_pair_mean(cosine, labels)


def supervised_contrastive_voxel_loss(z: torch.Tensor, labels: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al.) on voxel embeddings ``z`` ``(n, d)``: for each anchor,
    ``−mean over its positives of log softmax`` over all other voxels (the other classes are the
    negatives). Anchors without a positive are left out."""
    zn = F.normalize(z, dim=1)
    logits = zn @ zn.T / temperature
    eye = torch.eye(len(z), dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(eye, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positives = (labels[:, None] == labels[None, :]) & ~eye
    counts = positives.sum(dim=1)
    anchors = counts > 0
    if not anchors.any():
        return z.sum() * 0.0
    per_anchor = -(log_prob.masked_fill(~positives, 0.0).sum(dim=1)[anchors] / counts[anchors])
    return per_anchor.mean()


class VoxelFeatureLayer(nn.Module):
    """Projection MLP ``g`` (Linear–BN–ReLU–Linear–BN) and prediction MLP ``h`` (Linear–BN–ReLU–Linear),
    as SimSiam's heads, on voxel feature vectors ``(n, C)`` → ``(p, z)`` each ``(n, hidden)``. Training
    only: inference uses the plain U-Net.

    As in SimSiam, the projection's last BatchNorm has no affine parameters: ``z`` keeps unit variance
    per dimension over the sampled voxels, so the loss cannot be met by sending every voxel to one
    point (with a learnable scale that could shrink to zero, it can)."""

    def __init__(self, in_channels: int, hidden: int = 256):
        super().__init__()
        self.projection = nn.Sequential(
            nn.Linear(in_channels, hidden, bias=False),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden, bias=False),
            nn.BatchNorm1d(hidden, affine=False),
        )
        self.prediction = nn.Sequential(
            nn.Linear(hidden, hidden, bias=False),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden),
        )

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.projection(features)
        return self.prediction(z), z


def to_grid(volume: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Integer volumes ``(B, D, H, W)`` (labels, predicted classes) on a coarser grid ``size`` that divides
    them: each coarse voxel takes the class most of its block holds (ties: the lowest class), so that at
    the bottleneck (blocks of 16³ at depth 4) a voxel is labelled by its block, not by the block's corner
    voxel as nearest-neighbour sampling would. Another grid: nearest neighbour."""
    size = tuple(size)
    if size == tuple(volume.shape[1:]):
        return volume.long()
    if any(v % s for v, s in zip(volume.shape[1:], size)):
        return F.interpolate(volume[:, None].float(), size=size, mode="nearest")[:, 0].long()
    block = tuple(v // s for v, s in zip(volume.shape[1:], size))
    values = volume.unique()  # sorted: ties go to the lowest class
    counts = torch.stack([F.avg_pool3d((volume[:, None] == v).float(), block)[:, 0] for v in values])
    return values[counts.argmax(0)].long()


def multi_resolution_loss(
    hidden: Sequence[torch.Tensor],
    layers: Sequence[nn.Module],  # the VoxelFeatureLayer of each resolution
    labels: torch.Tensor,
    predictions: torch.Tensor,
    loss: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
    weights: Sequence[float] | None = None,
    max_samples: int = 1700,
    max_false_negatives: int = 1000,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """``Σ_l w_l · loss_l`` over hidden layers ``(B, C_l, D_l, H_l, W_l)`` with their feature layers.

    ``labels`` and ``predictions`` ``(B, D, H, W)`` (class indices at full resolution) are brought to each
    layer's grid (:func:`to_grid`); voxels are sampled over the whole batch (pairs within and across
    volumes), at most as many as the grid holds (a 4 × 8 × 8 bottleneck of a batch of 4: 1 024);
    ``loss(p, z, labels)`` scores each layer. Returns ``(total, per-layer losses)``.
    """
    weights = list(weights) if weights is not None else [1.0] * len(hidden)
    if not (len(hidden) == len(layers) == len(weights)):
        raise ValueError(f"{len(hidden)} hidden layers, {len(layers)} feature layers, {len(weights)} weights")
    per_layer = []
    for features, layer in zip(hidden, layers):
        grid = features.shape[2:]
        y, pred = to_grid(labels, grid).reshape(-1), to_grid(predictions, grid).reshape(-1)
        chosen = sample_voxels(y, pred, max_samples, max_false_negatives, generator)
        if chosen.numel() < 2:  # a grid of one voxel: no pair (and BatchNorm needs two samples)
            per_layer.append(features.sum() * 0.0)
            continue
        per_volume = y.numel() // features.shape[0]  # voxels of one volume on this grid
        flat = features.flatten(2)  # (B, C, voxels): a view, no copy of the full-resolution map
        vectors = flat[chosen // per_volume, :, chosen % per_volume]  # (n, C): the chosen voxels only
        p, z = layer(vectors)
        per_layer.append(loss(p, z, y[chosen]))
    total = sum((w * term for w, term in zip(weights, per_layer)), torch.zeros((), device=labels.device))
    return total, per_layer


def soft_dice_loss(logits: torch.Tensor, labels: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Multi-label soft Dice: ``1 − mean over foreground classes of 2|P∩T| / (|P| + |T|)``, with the
    softmax ``P`` of ``logits`` ``(B, K, D, H, W)`` and the one-hot ``T`` of ``labels`` ``(B, D, H, W)``,
    counted over the whole batch (``smooth`` keeps an absent class at Dice 1 when it is not predicted)."""
    probs = torch.softmax(logits.float(), dim=1)
    target = F.one_hot(labels.long(), logits.shape[1]).permute(0, 4, 1, 2, 3).float()
    dims = (0, 2, 3, 4)
    intersection = (probs * target).sum(dims)
    dice = (2 * intersection + smooth) / (probs.sum(dims) + target.sum(dims) + smooth)
    return 1 - dice[1:].mean()

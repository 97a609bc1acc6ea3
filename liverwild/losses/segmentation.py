"""Supervised and regularising segmentation losses on logits ``(B, 1, H, W)`` and binary targets.

- focal (α = 0.5, γ = 3): ``−α_t (1 − p_t)^γ log p_t``, mean over pixels;
- Tversky (α, β = 0.5, 0.5 by default — the paper gives none): ``1 − TP / (TP + α FP + β FN)``;
- −log IoU (soft IoU over the whole batch);
- entropy of the prediction (unsupervised regulariser), mean over pixels of a per-pixel penalty:
  ``form="charbonnier"`` (the trainers' default) FDA's robust entropy ``((H / log 2)² + ε)^η`` with
  ε = 1e-8, η = 2 (Yang & Soatto, CVPR 2020: their code's values), ``form="plain"`` the entropy
  ``H = −p log p − (1−p) log(1−p)`` itself (nats).

Soft counts use a smoothing term ``smooth`` (1 pixel), so empty target and empty prediction give a
loss of 0 instead of NaN. With ``over_ranks=True`` (distributed training) the soft counts are summed
over all processes, so the batch-level ratios are those of the global batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

ENTROPY_FORMS = ("charbonnier", "plain")
CHARBONNIER_EPS = 1e-8  # FDA's code adds 1e-8 to the squared normalised entropy
CHARBONNIER_ETA = 2.0  # FDA's η (``--ita``, default 2.0 in its training options)


def focal_loss(logits, target, alpha: float = 0.5, gamma: float = 3.0):
    target = target.float()
    logits = logits.float()
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p = torch.sigmoid(logits)
    p_t = p * target + (1 - p) * (1 - target)
    alpha_t = alpha * target + (1 - alpha) * (1 - target)
    return (alpha_t * (1 - p_t) ** gamma * bce).mean()


def _soft_counts(logits, target, over_ranks: bool = False):
    p = torch.sigmoid(logits.float())
    t = target.float()
    counts = torch.stack([(p * t).sum(), (p * (1 - t)).sum(), ((1 - p) * t).sum()])
    if over_ranks:
        from ..distributed import global_sum

        counts = global_sum(counts)
    return counts.unbind()


def tversky_loss(logits, target, alpha: float = 0.5, beta: float = 0.5, smooth: float = 1.0, over_ranks=False):
    tp, fp, fn = _soft_counts(logits, target, over_ranks)
    return 1 - (tp + smooth) / (tp + alpha * fp + beta * fn + smooth)


def log_iou_loss(logits, target, smooth: float = 1.0, over_ranks: bool = False):
    tp, fp, fn = _soft_counts(logits, target, over_ranks)
    return -torch.log((tp + smooth) / (tp + fp + fn + smooth))


def entropy_penalty(entropy: torch.Tensor, n_classes: int, form: str = "plain") -> torch.Tensor:
    """Per-pixel penalty of an entropy map (nats) over ``n_classes`` classes: ``plain`` the entropy itself,
    ``charbonnier`` ``((H / log n_classes)² + ε)^η`` (FDA's robust entropy, in ``[ε^η, (1 + ε)^η]``)."""
    if form == "plain":
        return entropy
    if form == "charbonnier":
        return ((entropy / math.log(n_classes)) ** 2 + CHARBONNIER_EPS) ** CHARBONNIER_ETA
    raise ValueError(f"entropy form must be one of {', '.join(ENTROPY_FORMS)}, not {form!r}")


def entropy_loss(logits, form: str = "plain"):
    """Mean over pixels of :func:`entropy_penalty` of the sigmoid's binary entropy; logits ``(B, 1, H, W)``."""
    logits = logits.float()
    p = torch.sigmoid(logits)
    # −p log p − (1−p) log(1−p), written with log-sigmoids for stability
    entropy = -(p * F.logsigmoid(logits) + (1 - p) * F.logsigmoid(-logits))
    return entropy_penalty(entropy, 2, form).mean()


class FocalLoss(nn.Module):
    def __init__(self, alpha: float = 0.5, gamma: float = 3.0):
        super().__init__()
        self.alpha, self.gamma = alpha, gamma

    def forward(self, logits, target):
        return focal_loss(logits, target, self.alpha, self.gamma)


class TverskyLoss(nn.Module):
    def __init__(self, alpha: float = 0.5, beta: float = 0.5, smooth: float = 1.0, over_ranks: bool = False):
        super().__init__()
        self.alpha, self.beta, self.smooth, self.over_ranks = alpha, beta, smooth, over_ranks

    def forward(self, logits, target):
        return tversky_loss(logits, target, self.alpha, self.beta, self.smooth, self.over_ranks)


class LogIoULoss(nn.Module):
    def __init__(self, smooth: float = 1.0, over_ranks: bool = False):
        super().__init__()
        self.smooth, self.over_ranks = smooth, over_ranks

    def forward(self, logits, target):
        return log_iou_loss(logits, target, self.smooth, self.over_ranks)


class EntropyLoss(nn.Module):
    def __init__(self, form: str = "plain"):
        super().__init__()
        entropy_penalty(torch.zeros(1), 2, form)  # refuses an unknown form now, not at the first step
        self.form = form

    def forward(self, logits, target=None):
        return entropy_loss(logits, self.form)

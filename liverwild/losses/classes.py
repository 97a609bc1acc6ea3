"""The segmentation losses generalised to a softmax over classes (background + organs), for
:class:`~liverwild.training.organs.OrganCompetitionTrainer`.

Logits ``(B, K, H, W)``: channel 0 is background, channel 1 the liver, channels 2… the competing organs.
Targets ``(B, 1, H, W)`` or ``(B, H, W)`` of class indices ``0 … K−1``, or :data:`NOT_LIVER` for a pixel
known not to be liver whose class is otherwise unknown (pixels the organ map calls liver and the liver
label does not). Every loss reduces exactly to its binary twin in :mod:`.segmentation` when ``K = 2``
(the liver logit is then ``z₁ − z₀``):

- focal: ``−α_t (1 − p_t)^γ log p_t`` with ``p_t`` the softmax probability of the pixel's class — of the
  set of classes it may be (``1 − p_liver`` for :data:`NOT_LIVER`) — and ``α_t = α`` for an organ,
  ``1 − α`` for background and :data:`NOT_LIVER`; mean over pixels;
- Tversky and −log IoU: the binary ratio per foreground class from soft counts over the batch (pixels
  of unknown class for that class left out), averaged over the liver — always, as the binary loss — and
  the competing classes present in the batch's targets (a class absent from the batch adds nothing,
  and a class present only as false positives is left to the focal term);
- entropy: ``−Σ_k p_k log p_k`` per pixel, penalised as the binary form says (``charbonnier``: normalised
  by log K), mean over pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .segmentation import entropy_penalty

NOT_LIVER = 255  # target value: not the liver (class 1); which other class is unknown
LIVER = 1  # the liver's class index (channel)


def allowed_classes(target: torch.Tensor, n_classes: int) -> torch.Tensor:
    """``(B, K, H, W)`` bool: the classes each pixel may be — one for a known class, every class but the
    liver for :data:`NOT_LIVER`."""
    t = (target[:, 0] if target.dim() == 4 else target).long()
    unknown = t == NOT_LIVER
    allowed = F.one_hot(torch.where(unknown, 0, t), n_classes).permute(0, 3, 1, 2).bool()
    others = torch.ones(n_classes, dtype=torch.bool, device=t.device)
    others[LIVER] = False
    return torch.where(unknown[:, None], others.view(1, -1, 1, 1), allowed)


def softmax_focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.5, gamma: float = 3.0):
    """Focal loss of the softmax over the classes (see the module docstring); a scalar."""
    logits = logits.float()
    allowed = allowed_classes(target, logits.shape[1])
    log_norm = torch.logsumexp(logits, dim=1)
    log_p_t = torch.logsumexp(logits.masked_fill(~allowed, float("-inf")), dim=1) - log_norm
    negative = allowed[:, 0]  # background, or the set that contains it (NOT_LIVER)
    alpha_t = torch.where(negative, 1 - alpha, alpha)
    return (-alpha_t * (1 - log_p_t.exp()) ** gamma * log_p_t).mean()


def class_counts(logits: torch.Tensor, target: torch.Tensor, over_ranks: bool = False) -> torch.Tensor:
    """Soft ``(TP, FP, FN)`` per foreground class, ``(3, K − 1)``, over the pixels whose membership of the
    class is known (summed over processes with ``over_ranks``)."""
    p = torch.softmax(logits.float(), dim=1)[:, 1:]
    allowed = allowed_classes(target, logits.shape[1])
    single = allowed.sum(dim=1, keepdim=True) == 1
    t = (allowed & single)[:, 1:].float()
    known = (~allowed | single)[:, 1:].float()
    counts = torch.stack(
        [(known * p * t).sum((0, 2, 3)), (known * p * (1 - t)).sum((0, 2, 3)), (known * (1 - p) * t).sum((0, 2, 3))]
    )
    if over_ranks:
        from ..distributed import global_sum

        counts = global_sum(counts)
    return counts


def _mean_over_classes(per_class: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Mean of a per-foreground-class loss over the liver and the classes present in the targets."""
    tp, _, fn = counts.unbind()
    used = (tp + fn) > 0
    used[LIVER - 1] = True
    return per_class[used].mean()


def class_tversky_loss(
    logits, target, alpha: float = 0.5, beta: float = 0.5, smooth: float = 1.0, over_ranks: bool = False
):
    """``1 − TP / (TP + α FP + β FN)`` per class, averaged (see the module docstring); a scalar."""
    counts = class_counts(logits, target, over_ranks)
    tp, fp, fn = counts.unbind()
    return _mean_over_classes(1 - (tp + smooth) / (tp + alpha * fp + beta * fn + smooth), counts)


def class_log_iou_loss(logits, target, smooth: float = 1.0, over_ranks: bool = False):
    """``−log(TP / (TP + FP + FN))`` per class, averaged (see the module docstring); a scalar."""
    counts = class_counts(logits, target, over_ranks)
    tp, fp, fn = counts.unbind()
    return _mean_over_classes(-torch.log((tp + smooth) / (tp + fp + fn + smooth)), counts)


def softmax_entropy_loss(logits, form: str = "plain"):
    """Mean over pixels of the softmax entropy ``−Σ_k p_k log p_k`` under
    :func:`~liverwild.losses.segmentation.entropy_penalty` (``charbonnier``: normalised by log K, K the
    channels of ``logits`` ``(B, K, H, W)``); a scalar."""
    log_p = torch.log_softmax(logits.float(), dim=1)
    return entropy_penalty(-(log_p.exp() * log_p).sum(dim=1), logits.shape[1], form).mean()


class SoftmaxFocalLoss(nn.Module):
    def __init__(self, alpha: float = 0.5, gamma: float = 3.0):
        super().__init__()
        self.alpha, self.gamma = alpha, gamma

    def forward(self, logits, target):
        return softmax_focal_loss(logits, target, self.alpha, self.gamma)


class ClassTverskyLoss(nn.Module):
    def __init__(self, alpha: float = 0.5, beta: float = 0.5, smooth: float = 1.0, over_ranks: bool = False):
        super().__init__()
        self.alpha, self.beta, self.smooth, self.over_ranks = alpha, beta, smooth, over_ranks

    def forward(self, logits, target):
        return class_tversky_loss(logits, target, self.alpha, self.beta, self.smooth, self.over_ranks)


class ClassLogIoULoss(nn.Module):
    def __init__(self, smooth: float = 1.0, over_ranks: bool = False):
        super().__init__()
        self.smooth, self.over_ranks = smooth, over_ranks

    def forward(self, logits, target):
        return class_log_iou_loss(logits, target, self.smooth, self.over_ranks)


class SoftmaxEntropyLoss(nn.Module):
    def __init__(self, form: str = "plain"):
        super().__init__()
        entropy_penalty(torch.zeros(1), 2, form)  # refuses an unknown form now
        self.form = form

    def forward(self, logits, target=None):
        return softmax_entropy_loss(logits, self.form)

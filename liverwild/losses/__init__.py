"""Losses of the method: contrastive correlation (distillation) and the supervised/regularising terms.

Each loss is a plain function (``focal_loss`` ...) with a ``torch.nn.Module`` twin (``FocalLoss`` ...),
in MONAI's style. Segmentation losses take logits ``(B, 1, H, W)`` and binary targets of the same shape;
their softmax generalisations (:mod:`.classes`) take logits ``(B, K, H, W)`` and class-index targets.
"""

from .classes import (
    NOT_LIVER,
    ClassLogIoULoss,
    ClassTverskyLoss,
    SoftmaxEntropyLoss,
    SoftmaxFocalLoss,
    class_log_iou_loss,
    class_tversky_loss,
    softmax_entropy_loss,
    softmax_focal_loss,
)
from .contrastive import ContrastiveDistillationLoss, contrastive_correlation_loss, tensor_correlation
from .sampling import SAMPLING_STRATEGIES, contrastive_partners
from .segmentation import (
    ENTROPY_FORMS,
    EntropyLoss,
    FocalLoss,
    LogIoULoss,
    TverskyLoss,
    entropy_loss,
    entropy_penalty,
    focal_loss,
    log_iou_loss,
    tversky_loss,
)

__all__ = [
    "ContrastiveDistillationLoss",
    "contrastive_correlation_loss",
    "tensor_correlation",
    "SAMPLING_STRATEGIES",
    "contrastive_partners",
    "FocalLoss",
    "TverskyLoss",
    "LogIoULoss",
    "EntropyLoss",
    "focal_loss",
    "tversky_loss",
    "log_iou_loss",
    "entropy_loss",
    "entropy_penalty",
    "ENTROPY_FORMS",
    "NOT_LIVER",
    "SoftmaxFocalLoss",
    "ClassTverskyLoss",
    "ClassLogIoULoss",
    "SoftmaxEntropyLoss",
    "softmax_focal_loss",
    "class_tversky_loss",
    "class_log_iou_loss",
    "softmax_entropy_loss",
]

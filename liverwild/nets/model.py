"""The trainable model (head + decoder) and the inference pipeline (frozen backbone + model)."""

from __future__ import annotations

import torch
from torch import nn

from .decoder import UpsamplingDecoder
from .head import DistillationHead


def count_trainable(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def liver_logits(logits: torch.Tensor) -> torch.Tensor:
    """The liver logit ``(B, 1, H, W)`` of a network's output: a binary net's ``(B, 1, H, W)`` as it is; for
    a net with classes ``(B, K, H, W)`` (channel 0 background, 1 liver) ``log p_liver − log(1 − p_liver)``
    of the softmax, so that its sigmoid is the softmax probability of the liver."""
    if logits.shape[1] == 1:
        return logits
    others = torch.cat([logits[:, :1], logits[:, 2:]], dim=1)
    return logits[:, 1:2] - torch.logsumexp(others, dim=1, keepdim=True)


class ContrastiveDistillationNet(nn.Module):
    """Head C and decoder D. ``forward(features, slices)`` → ``(logits, code)``.

    ``features``: cached backbone maps ``(B, C, h, w)``; ``slices``: the normalised input slices
    ``(B, 1, 224, 224)`` for the skip connection. ``logits`` ``(B, 1, 224, 224)`` — or, with ``classes``
    (organ names, the liver first), ``(B, 1 + len(classes), 224, 224)`` with background in channel 0;
    :func:`liver_logits` gives the liver logit of either. ``code`` ``(B, 70, h, w)``.
    """

    def __init__(
        self,
        in_channels: int = 384,
        code_channels: int = 70,
        head_dropout: float = 0.1,
        decoder_channels=(70, 40, 20, 10, 5),
        decoder_dropout: float = 0.3,
        out_size: int = 224,
        classes: list[str] | None = None,
    ):
        super().__init__()
        if classes is not None and (not classes or classes[0] != "liver"):
            raise ValueError(f"classes must start with 'liver', not {classes!r}")
        self.config = {
            "in_channels": in_channels,
            "code_channels": code_channels,
            "head_dropout": head_dropout,
            "decoder_channels": list(decoder_channels),
            "decoder_dropout": decoder_dropout,
            "out_size": out_size,
            **({"classes": list(classes)} if classes is not None else {}),
        }
        self.head = DistillationHead(in_channels, code_channels, head_dropout)
        out_channels = 1 if classes is None else 1 + len(classes)
        self.decoder = UpsamplingDecoder(code_channels, decoder_channels, out_size, decoder_dropout, 1, out_channels)

    def forward(self, features: torch.Tensor, slices: torch.Tensor):
        code = self.head(features)
        return self.decoder(code, slices), code


class SegmentationPipeline(nn.Module):
    """Inference from raw normalised slices: frozen backbone → head → decoder → liver probabilities.

    Gives the same result as the trained model on cached features of the same slice (up to the float16
    rounding of the cache).
    """

    def __init__(self, backbone: nn.Module, net: ContrastiveDistillationNet):
        super().__init__()
        self.backbone, self.net = backbone, net

    @torch.no_grad()
    def forward(self, slices: torch.Tensor) -> torch.Tensor:
        features = self.backbone(slices)  # (B, 1 or 3, H, W): the slice, or with its neighbours
        logits, _ = self.net(features.float(), slices[:, slices.shape[1] // 2 :][:, :1])
        return torch.sigmoid(liver_logits(logits.float()))

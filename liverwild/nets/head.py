"""Non-linear distillation head C: backbone maps F(x) ``(B, C_in, h, w)`` → code ``(B, 70, h, w)``."""

from __future__ import annotations

from torch import nn


class DistillationHead(nn.Module):
    """Dropout on the backbone features, then two 1×1 convolutions with a ReLU (and dropout) between.

    The hidden width equals the input width, as in STEGO's non-linear projection; with ViT-S/16
    (384 channels) and 70 code channels the head has 174 790 parameters.
    """

    def __init__(self, in_channels: int = 384, code_channels: int = 70, dropout: float = 0.1):
        super().__init__()
        self.net = nn.Sequential(
            nn.Dropout2d(dropout),
            nn.Conv2d(in_channels, in_channels, 1),
            nn.ReLU(inplace=True),
            nn.Dropout2d(dropout),
            nn.Conv2d(in_channels, code_channels, 1),
        )

    def forward(self, features):
        return self.net(features)

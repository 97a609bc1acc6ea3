"""A 3D U-Net for multi-organ segmentation of whole resampled volumes (the ``3d`` configuration).

``UNet3d(volumes)`` → logits ``(B, classes, D, H, W)`` from volumes ``(B, 1, D, H, W)``; ``D``, ``H``
and ``W`` must be divisible by ``2**depth`` (64 × 128 × 128 with the default depth 4).
``forward(x, return_hidden=True)`` also returns the hidden feature maps, each list in the order the
network computes them: ``{"encoder": [...], "decoder": [...]}`` — the encoder's levels finest first, ending
at the bottleneck (``(B, base·2^l, D/2^l, H/2^l, W/2^l)`` for l = 0 … depth; the last ``n`` are the source
paper's f^n … f^1, the layers its voxel-level loss works on), and the decoder's levels coarsest first
(l = depth−1 … 0). Each level has two 3×3×3 convolution – InstanceNorm – LeakyReLU layers (nnU-Net's
choice for batches of a few volumes).
"""

from __future__ import annotations

import torch
from torch import nn


class ConvBlock3d(nn.Sequential):
    """Two 3×3×3 convolution – InstanceNorm – LeakyReLU layers."""

    def __init__(self, cin: int, cout: int):
        super().__init__(
            nn.Conv3d(cin, cout, 3, padding=1, bias=False),
            nn.InstanceNorm3d(cout, affine=True),
            nn.LeakyReLU(0.01, inplace=True),
            nn.Conv3d(cout, cout, 3, padding=1, bias=False),
            nn.InstanceNorm3d(cout, affine=True),
            nn.LeakyReLU(0.01, inplace=True),
        )


class UNet3d(nn.Module):
    """Encoder of ``depth + 1`` levels with ``base · 2^l`` channels (2×2×2 max-pooling between), decoder of
    transposed 2×2×2 convolutions and skip concatenation, and a 1×1×1 convolution to ``classes`` logits
    (background included)."""

    architecture = "unet3d"

    def __init__(self, in_channels: int = 1, classes: int = 2, base_channels: int = 16, depth: int = 4):
        super().__init__()
        self.config = {
            "architecture": self.architecture,
            "in_channels": in_channels,
            "classes": classes,
            "base_channels": base_channels,
            "depth": depth,
        }
        widths = [base_channels * 2**level for level in range(depth + 1)]
        self.encoder = nn.ModuleList(
            [ConvBlock3d(in_channels, widths[0])] + [ConvBlock3d(widths[i - 1], widths[i]) for i in range(1, depth + 1)]
        )
        self.pool = nn.MaxPool3d(2)
        self.up = nn.ModuleList(nn.ConvTranspose3d(widths[i], widths[i - 1], 2, stride=2) for i in range(depth, 0, -1))
        self.decoder = nn.ModuleList(ConvBlock3d(2 * widths[i - 1], widths[i - 1]) for i in range(depth, 0, -1))
        self.output = nn.Conv3d(widths[0], classes, 1)
        # the widths of forward's hidden layers, in the same order
        self.hidden_channels = {"encoder": widths, "decoder": [widths[i - 1] for i in range(depth, 0, -1)]}

    def forward(self, x: torch.Tensor, return_hidden: bool = False):
        skips = []
        for level, block in enumerate(self.encoder):
            x = block(x if level == 0 else self.pool(x))
            skips.append(x)
        encoder = list(skips)  # f^(depth+1) … f^1 (the bottleneck)
        x = skips.pop()
        decoder = []
        for up, block in zip(self.up, self.decoder):
            x = block(torch.cat([up(x), skips.pop()], dim=1))
            decoder.append(x)
        logits = self.output(x)
        return (logits, {"encoder": encoder, "decoder": decoder}) if return_hidden else logits

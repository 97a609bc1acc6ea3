"""Learnable upsampling: code ``(B, 70, h, w)`` + input slice ``(B, 1, 224, 224)`` → logits
``(B, out_channels, 224, 224)`` (one liver logit, or one logit per class)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import ChannelsLastConv2d, UniformMaskDropout


def conv_block(cin: int, cout: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        ChannelsLastConv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        UniformMaskDropout(dropout),
    )  # element-wise: whole-channel dropout of 5 maps is too harsh


class UpsamplingDecoder(nn.Module):
    """Five upsample-then-convolve stages with output channels (70, 40, 20, 10, 5), a skip connection
    that concatenates the input slice, and three 3×3 convolutions down to ``out_channels`` (1: the liver
    logit; more: one logit per class, for a softmax).

    The paper lists the channels "(70), 40, 20, 10, 5" and reaches 224×224; it does not say how the
    ×16 (ViT-*/16) or ×8 (ViT-*/8) upsampling is split over five stages. Here stage ``s`` resizes
    (bilinearly) to ``round(h · (224/h)^(s/5))``, a geometric progression that ends exactly at the output
    size for any patch size. Each convolution is followed by BatchNorm, ReLU and dropout (0.3); the
    last one gives logits (the sigmoid, or softmax over classes, is applied by the losses and at
    prediction).
    """

    def __init__(
        self,
        code_channels: int = 70,
        channels=(70, 40, 20, 10, 5),
        out_size: int = 224,
        dropout: float = 0.3,
        skip_channels: int = 1,
        out_channels: int = 1,
    ):
        super().__init__()
        self.out_size = out_size
        chans = [code_channels, *channels]
        self.stages = nn.ModuleList(conv_block(a, b, dropout) for a, b in zip(chans[:-1], chans[1:]))
        last = channels[-1]
        self.fuse = nn.Sequential(
            conv_block(last + skip_channels, last, dropout),
            conv_block(last, last, dropout),
            ChannelsLastConv2d(last, out_channels, 3, padding=1),
        )

    def stage_sizes(self, h: int) -> list:
        n = len(self.stages)
        return [int(round(h * (self.out_size / h) ** ((s + 1) / n))) for s in range(n - 1)] + [self.out_size]

    def forward(self, code: torch.Tensor, slices: torch.Tensor) -> torch.Tensor:
        x = code
        for stage, size in zip(self.stages, self.stage_sizes(int(code.shape[-1]))):
            x = stage(F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False))
        if slices.shape[-1] != self.out_size:
            slices = F.interpolate(slices, size=(self.out_size, self.out_size), mode="bilinear", align_corners=False)
        return self.fuse(torch.cat([x, slices.to(x.dtype)], dim=1))

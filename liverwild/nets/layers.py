"""Drop-in layers that compute exactly what their torch namesakes compute, faster on CPU.

Measured on a 2-core CPU (``benchmarks/bench_training.py``): the decoder's few-channel 3×3
convolutions at up to 224×224 run 4–5× faster (forward and backward) in channels-last memory layout,
and a dropout mask drawn as ``uniform < keep`` costs a third of ``bernoulli_``. Both only change how
the same numbers are computed or drawn; on GPU the layers behave exactly as their parents.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn


class ChannelsLastConv2d(nn.Conv2d):
    """``nn.Conv2d`` that, on CPU, convolves in channels-last layout and returns an NCHW tensor, so the
    BatchNorm and element-wise layers after it keep their fast NCHW kernels (BatchNorm over 5 channels
    is ~7× slower in channels-last on CPU). Same parameters and state-dict keys."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu":
            return super().forward(x)
        return super().forward(x.contiguous(memory_format=torch.channels_last)).contiguous()


class UniformMaskDropout(nn.Dropout):
    """Element-wise dropout with the same distribution as ``nn.Dropout``: each element is kept with
    probability ``1 − p`` and scaled by ``1 / (1 − p)``. On CPU the mask is ``uniform[0, 1) < 1 − p`` in
    float32 (torch's ``bernoulli_`` draws the same Bernoulli variable about 3× slower there); on
    GPU it is torch's fused dropout kernel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or x.device.type != "cpu":
            return F.dropout(x, self.p, self.training, self.inplace)
        keep = 1.0 - self.p
        if keep <= 0:
            return torch.zeros_like(x)
        mask = torch.rand(x.shape, dtype=x.dtype, device=x.device).lt_(keep).mul_(1.0 / keep)
        return x.mul_(mask) if self.inplace else x * mask


def use_reference_layers(module: nn.Module) -> nn.Module:
    """Swap, in place, every :class:`ChannelsLastConv2d` for ``nn.Conv2d`` and every
    :class:`UniformMaskDropout` for ``nn.Dropout`` (same weights): the plain torch model, for
    benchmarks (before/after) and equivalence tests. Returns ``module``."""
    for parent in list(module.modules()):
        for name, child in parent.named_children():
            if type(child) is ChannelsLastConv2d:
                pair = tuple[int, int]
                plain = nn.Conv2d(
                    child.in_channels,
                    child.out_channels,
                    cast(pair, child.kernel_size),
                    cast(pair, child.stride),
                    cast(pair, child.padding),
                    cast(pair, child.dilation),
                    child.groups,
                    child.bias is not None,
                    child.padding_mode,
                ).to(child.weight.device)
                plain.load_state_dict(child.state_dict())
                setattr(parent, name, plain.train(child.training))
            elif type(child) is UniformMaskDropout:
                setattr(parent, name, nn.Dropout(child.p, child.inplace).train(child.training))
    return module

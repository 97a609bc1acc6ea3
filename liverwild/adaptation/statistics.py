"""Re-estimate BatchNorm statistics on target data (AdaBN, Li et al. 2018), exactly.

Each layer's running mean and variance become the population mean and (biased) variance of its input
over *all* target slices, computed with every earlier layer already re-estimated: layer by layer, in the
order the forward pass reaches them, each pass stopping at the layer it measures. The common shortcut —
one pass in training mode with cumulative averaging — averages per-batch variances and so misses the
spread of the batch means; this gives the statistics the adapted network will meet at prediction.
"""

from __future__ import annotations

import torch
from torch import nn

from .forward import batches, network_logits
from .target import AdaptationData


class _Reached(Exception):
    """Raised by a hook to end a forward pass at the layer being measured."""


def execution_order(net: nn.Module, norms: list[nn.BatchNorm2d], data: AdaptationData, device) -> list:
    """``norms`` in the order one forward pass calls them."""
    order: list = []
    hooks = [m.register_forward_pre_hook(lambda m, _: order.append(m) if m not in order else None) for m in norms]
    try:
        features, centre = next(batches(data, 2, device))
        network_logits(net, features, centre)
    finally:
        for h in hooks:
            h.remove()
    return order + [m for m in norms if m not in order]


class _Moments:
    """Per-channel sums of ``x`` and ``x²`` (float64) over every pixel of every slice."""

    def __init__(self) -> None:
        self.n, self.s1, self.s2 = 0, None, None

    def __call__(self, module, inputs) -> None:
        x = inputs[0].detach().double().transpose(0, 1).reshape(inputs[0].shape[1], -1)
        s1, s2 = x.sum(dim=1), (x * x).sum(dim=1)
        self.s1 = s1 if self.s1 is None else self.s1 + s1
        self.s2 = s2 if self.s2 is None else self.s2 + s2
        self.n += x.shape[1]
        raise _Reached

    def mean_var(self) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.s1 is not None and self.s2 is not None
        mean = self.s1 / self.n
        return mean, (self.s2 / self.n - mean * mean).clamp_min(0.0)


@torch.no_grad()
def reestimate_batch_norms(net: nn.Module, norms: list[nn.BatchNorm2d], data: AdaptationData, batch_size: int, device):
    """Set every layer of ``norms`` to its input's statistics on ``data`` (``net`` in eval mode).
    Returns ``{layer index: mean |Δ running mean|}`` of the change, for the report."""
    net.eval()
    changes = {}
    for k, layer in enumerate(execution_order(net, norms, data, device)):
        moments = _Moments()
        hook = layer.register_forward_pre_hook(moments)
        try:
            for features, centre in batches(data, batch_size, device):
                try:
                    network_logits(net, features, centre)
                except _Reached:
                    pass
        finally:
            hook.remove()
        mean, var = moments.mean_var()
        assert layer.running_mean is not None and layer.running_var is not None
        changes[k] = float((layer.running_mean - mean.to(layer.running_mean)).abs().mean())
        layer.running_mean.copy_(mean.to(layer.running_mean))
        layer.running_var.copy_(var.to(layer.running_var))
    return changes

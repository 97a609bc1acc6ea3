"""The frozen teacher over stacks of slices, in batches: one loop for caching (``FeatureExtractor``)
and prediction (``slice_batches``), mixed precision on GPU."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from liverwild.backbones import MISSING_WEIGHTS, FrozenBackbone
from liverwild.device import autocast, resolve_device
from liverwild.errors import ConfigurationError
from planning.plans import Plans


def slice_batches(slices: np.ndarray, batch_size: int, device: torch.device) -> Iterator[tuple[int, int, torch.Tensor]]:
    """``(start, stop, x)`` over a ``(Z, H, W)`` stack: ``x`` is ``(stop − start, 1, H, W)`` float32 on ``device``.

    Slices travel in their stored precision (float16 caches move half the bytes) and become float32 on
    the device."""
    for start in range(0, slices.shape[0], batch_size):
        stop = min(start + batch_size, slices.shape[0])
        x = torch.from_numpy(np.ascontiguousarray(slices[start:stop]))[:, None]
        yield start, stop, x.to(device, non_blocking=True).float()


class FeatureExtractor:
    """Batched frozen-backbone inference: float16 slices ``(N, h, w)`` → float16 maps ``(N, C, h', w')``."""

    def __init__(self, backbone: FrozenBackbone, device="auto", batch_size: int = 32, amp: bool = True):
        self.device = resolve_device(device) if not isinstance(device, torch.device) else device
        self.backbone = backbone.to(self.device)
        self.batch_size, self.amp = batch_size, amp

    @torch.inference_mode()
    def __call__(self, slices: np.ndarray) -> np.ndarray:
        out = np.empty((slices.shape[0], self.backbone.feature_channels, *self.backbone.feature_size), np.float16)
        for start, stop, x in slice_batches(slices, self.batch_size, self.device):
            with autocast(self.device, self.amp):
                f = self.backbone(x)
            out[start:stop] = f.half().cpu().numpy()  # rounded to float16 on the device: half the bytes back
        return out


def build_backbone(plans: Plans) -> FrozenBackbone:
    if plans.backbone.get("weights") is None:
        raise ConfigurationError(MISSING_WEIGHTS.format(name=plans.backbone.get("teacher") or plans.backbone["name"]))
    return FrozenBackbone.from_config(plans.backbone, plans.slice_size[0])

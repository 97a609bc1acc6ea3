"""The frozen teacher over stacks of slices, in batches: one loop for caching (``FeatureExtractor``)
and prediction (``slice_batches``), mixed precision on GPU."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from liverwild.backbones import MISSING_WEIGHTS, FrozenBackbone, slice_context, unchanged_weights
from liverwild.device import autocast, resolve_device
from liverwild.errors import ConfigurationError
from planning.plans import FEATURE_DTYPES, Plans

from .lean import context_slices

__all__ = ["context_slices", "slice_batches", "FeatureExtractor", "build_backbone"]


def slice_batches(
    slices: np.ndarray, batch_size: int, device: torch.device, context: str = "slice"
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """``(start, stop, x)`` over a ``(Z, H, W)`` stack: ``x`` is ``(stop − start, C, H, W)`` float32 on
    ``device`` (:func:`context_slices`: ``C`` = 1, or 3 with the ``neighbours`` context).

    Slices travel in their stored precision (float16 caches move half the bytes) and become float32 on
    the device."""
    for start in range(0, slices.shape[0], batch_size):
        stop = min(start + batch_size, slices.shape[0])
        x = torch.from_numpy(context_slices(slices, start, stop, context))
        yield start, stop, x.to(device, non_blocking=True).float()


class FeatureExtractor:
    """Batched frozen-backbone inference: a float16 stack of slices ``(Z, h, w)`` (one case, in order:
    the ``neighbours`` context takes each slice's neighbours from it) → maps ``(Z, C, h', w')`` in
    ``dtype`` (the plans' ``feature_dtype``: float16, the default, or float32)."""

    def __init__(self, backbone: FrozenBackbone, device="auto", batch_size: int = 32, amp: bool = True):
        self.device = resolve_device(device) if not isinstance(device, torch.device) else device
        self.backbone = backbone.to(self.device)
        self.batch_size, self.amp = batch_size, amp
        self.context = slice_context(backbone.config)

    @torch.inference_mode()
    def __call__(self, slices: np.ndarray, dtype: str = "float16") -> np.ndarray:
        if dtype not in FEATURE_DTYPES:
            raise ConfigurationError(f"feature_dtype {dtype!r}: use one of {', '.join(FEATURE_DTYPES)}")
        shape = (slices.shape[0], self.backbone.feature_channels, *self.backbone.feature_size)
        out = np.empty(shape, np.dtype(dtype))
        for start, stop, x in slice_batches(slices, self.batch_size, self.device, self.context):
            with autocast(self.device, self.amp):
                f = self.backbone(x)
            # rounded on the device (float16: half the bytes back); float32 keeps the teacher's output as it is
            out[start:stop] = (f.half() if dtype == "float16" else f.float()).cpu().numpy()
        return out


def build_backbone(plans: Plans) -> FrozenBackbone:
    """The frozen teacher that ``plans`` name (refused when they name none, its weights are undecided, or
    its weights file changed since the plans were made)."""
    teacher = plans.teacher()
    if teacher.weights is None:
        raise ConfigurationError(MISSING_WEIGHTS.format(name=teacher.teacher or teacher.name))
    return FrozenBackbone.from_config(unchanged_weights(teacher), plans.slice_size[0])

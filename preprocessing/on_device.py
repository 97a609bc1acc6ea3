"""The per-case transform of 2D caching as torch operations on the teacher's device (issue 28).

When the teacher runs on a GPU, the CPU stage (reading, normalising, resizing, augmenting; 38.6 slices/s
per worker where the teacher takes 4 098) would need dozens of workers to keep it busy. With
``lw_plan_and_preprocess --transforms-on device`` (the default where the device is not the CPU) the
workers only read and check the files, and this module does the rest where the teacher runs:

- :func:`normalize_on_device`: :func:`.normalization.normalize_scan` — window, the scan's percentiles
  (NumPy's linear interpolation, on the same 1/8 subsample), rescale, z-score;
- the 224² resize: :func:`.slices.resize_stack`'s ``F.interpolate`` on the device;
- :func:`augment_on_device`: :func:`.augmentation.augment_stack`'s view — the same random numbers from the
  same generators in the same order (the seeded ``default_rng`` for the elastic grids and the dropout,
  NumPy's global generator for batchgenerators' noise, blur and gamma), applied with torch on the device.

The random numbers are drawn on the CPU so that a view is the one the CPU path caches: the cache equals
the CPU path's within float16 rounding (tests/test_preprocessing_on_device.py runs both on the CPU).
Only the MR body median (a connected-component mask, SciPy) stays on the CPU.
"""

from __future__ import annotations

import math
import random

import numpy as np
import torch
import torch.nn.functional as F

from planning.sections import Augmentation, Normalization

from .normalization import EPS


def percentiles(values: torch.Tensor, qs) -> list[float]:
    """NumPy's ``percentile(values, qs)`` (method ``linear``) of a 1-D tensor, for any size (torch's
    ``quantile`` stops at 2²⁴ values)."""
    n = values.numel()
    out = []
    for q in qs:
        position = float(q) / 100.0 * (n - 1)
        below, above = math.floor(position), math.ceil(position)
        low = values.kthvalue(below + 1).values.double()
        high = low if above == below else values.kthvalue(above + 1).values.double()
        out.append(float(low + (high - low) * (position - below)))
    return out


def normalize_on_device(
    canonical: torch.Tensor, normalization: Normalization, body_median: float | None = None
) -> tuple[torch.Tensor, dict]:
    """:func:`.normalization.normalize_scan` of a float32 volume on its device; returns ``(volume, stats)``."""
    x = canonical.to(torch.float32)
    stats: dict = {}
    if normalization.relative_to_body_median:
        if body_median is None or not np.isfinite(body_median) or body_median <= 0:
            raise ValueError("relative_to_body_median needs a positive body median")
        x = x / float(np.float32(body_median))  # the CPU path divides by the float32 median
        stats["body_median"] = float(body_median)
    lo, hi = normalization.window
    x = x.clamp(lo, hi)
    if normalization.clip_percentiles is not None:
        p_lo, p_hi = percentiles(x[::2, ::2, ::2].reshape(-1), normalization.clip_percentiles)
        x = x.clamp(p_lo, p_hi)
    else:
        p_lo, p_hi = float(lo), float(hi)
    stats.update({"window": [lo, hi], "clip_values": [p_lo, p_hi]})
    if normalization.rescale:
        x = (x - p_lo) / max(p_hi - p_lo, EPS)
    if normalization.zscore:
        mean, std = float(x.mean()), float(x.std(correction=0))
        x = (x - mean) / max(std, EPS)
        stats.update({"zscore_mean": mean, "zscore_std": std})
    return x, stats


def resize_on_device(stack: torch.Tensor, size, mode: str = "bilinear") -> torch.Tensor:
    """:func:`.slices.resize_stack` of a ``(Z, H, W)`` tensor on its device (float32 out)."""
    size = tuple(int(s) for s in size)
    stack = stack.to(torch.float32)
    if tuple(stack.shape[1:]) == size:
        return stack
    antialias = mode == "bilinear" and (stack.shape[1] > size[0] or stack.shape[2] > size[1])
    align = None if mode.startswith("nearest") else False
    return F.interpolate(stack[:, None], size=size, mode=mode, align_corners=align, antialias=antialias)[:, 0]


def _gaussian_kernel(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """SciPy's ``gaussian_filter`` kernel of order 0 (radius ``int(truncate·σ + 0.5)``)."""
    radius = int(truncate * float(sigma) + 0.5)
    x = np.arange(-radius, radius + 1)
    phi = np.exp(-0.5 / (float(sigma) ** 2) * x**2)
    return phi / phi.sum()


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """SciPy's ``gaussian_filter(image, sigma)`` of a float32 ``(H, W)`` tensor: one axis after the other in
    double precision, rounded to float32 between them as SciPy stores it, border mode ``reflect``."""
    kernel = torch.from_numpy(_gaussian_kernel(sigma)).to(image.device)
    radius = (kernel.numel() - 1) // 2
    out = image
    for axis in (0, 1):
        x = out.double().movedim(axis, -1)  # (..., n): filter along the last axis
        n = x.shape[-1]
        index = torch.arange(-radius, n + radius, device=image.device)
        index = torch.where(index < 0, -index - 1, index)  # reflect: d c b a | a b c d | d c b a
        index = torch.where(index >= n, 2 * n - index - 1, index).clamp(0, n - 1)
        padded = x.index_select(-1, index)
        filtered = padded.unfold(-1, kernel.numel(), 1) @ kernel
        out = filtered.to(torch.float32).movedim(-1, axis)
    return out


def augment_on_device(slices: torch.Tensor, masks: torch.Tensor, params: Augmentation, seed: int) -> tuple:
    """:func:`.augmentation.augment_stack` of a ``(Z, H, W)`` float32 stack and its uint8 masks on their
    device: ``(slices float32, masks uint8)`` tensors."""
    from .augmentation import elastic_grid

    rng = np.random.default_rng(seed)
    np.random.seed(seed % 2**32)  # batchgenerators' generators, seeded as the CPU path seeds them
    random.seed(seed)
    out = slices.to(torch.float32).clone()
    out_masks = masks.to(torch.uint8).clone()
    z, h, w = out.shape
    device = out.device
    el = params.elastic
    idx = np.flatnonzero(np.less(rng.random(z), el.p))
    if idx.size:
        coarse = rng.normal(0.0, el.sigma_px, size=(idx.size, 2, el.control_points, el.control_points))
        grid = elastic_grid(torch.from_numpy(coarse.astype(np.float32)).to(device), h, w)
        chosen = torch.from_numpy(idx).to(device)
        image = F.grid_sample(out[chosen][:, None], grid, mode="bilinear", padding_mode="border", align_corners=True)
        label = F.grid_sample(
            out_masks[chosen][:, None].float(), grid, mode="bilinear", padding_mode="zeros", align_corners=True
        )
        out[chosen] = image[:, 0]
        out_masks[chosen] = (label[:, 0] >= 0.5).to(torch.uint8)
    # batchgenerators' Compose: noise over every slice, then blur, then gamma (per_sample draws, one channel)
    noise, blur, gamma = params.noise, params.blur, params.gamma
    for b in range(z):
        if np.random.uniform() < noise.p:
            np.random.uniform()  # p_per_channel's draw
            field = torch.from_numpy(np.random.normal(0.0, noise.sigma, size=(h, w))).to(device)
            out[b] = (out[b].double() + field).to(torch.float32)
    for b in range(z):
        if np.random.uniform() < blur.p:
            np.random.uniform()  # p_per_channel's draw
            out[b] = gaussian_blur(out[b], blur.sigma_px)
    low, high = gamma.range
    for b in range(z):
        if np.random.uniform() < gamma.p:
            x = out[b]
            mean, std = x.mean(), x.std(correction=0)
            if np.random.random() < 0.5 and low < 1:
                value = np.random.uniform(low, 1)
            else:
                value = np.random.uniform(max(low, 1), high)
            minimum = x.min()
            spread = x.max() - minimum
            x = torch.pow((x - minimum) / (float(spread) + 1e-7), value) * spread + minimum
            if gamma.retain_stats:
                x = x - x.mean()
                x = x / (x.std(correction=0) + 1e-8) * std + mean
            out[b] = x
    drop = params.dropout
    for k in np.flatnonzero(np.less(rng.random(z), drop.p)):
        dropped = torch.from_numpy(rng.random((h, w)) < drop.fraction).to(device)
        out[int(k)][dropped] = 0.0
    return out, out_masks

"""Augmented views of slices (Table A1): elastic, Gaussian noise, blur, gamma, pixel dropout.

Noise, blur and gamma come from batchgenerators; the elastic deformation follows the paper's
parameterisation (a grid of ``control_points``² random displacements with s.d. ``sigma_px`` pixels,
smoothly interpolated — the scheme of the ``elasticdeform`` package) and is applied identically to the
slice and its mask. Everything is seeded: the same seed gives the same views.
"""

from __future__ import annotations

import random

import numpy as np


def elastic_deform(
    slices: np.ndarray,
    masks: np.ndarray,
    rng: np.random.Generator,
    sigma_px: float,
    control_points: int,
    chosen: np.ndarray,
):
    """Deform the ``chosen`` slices of ``(Z, H, W)`` stacks with their own random control-point grids.

    Displacements (s.d. ``sigma_px`` pixels on a ``control_points``² grid) are upsampled bicubically
    and applied with bilinear sampling (masks re-thresholded at 0.5), batched in torch.
    """
    import torch
    import torch.nn.functional as F

    idx = np.flatnonzero(chosen)
    if idx.size == 0:
        return slices, masks
    _, h, w = slices.shape
    coarse = torch.from_numpy(
        rng.normal(0.0, sigma_px, size=(idx.size, 2, control_points, control_points)).astype(np.float32)
    )
    dense = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True)  # pixels (dy, dx)
    ys = torch.linspace(-1, 1, h)
    xs = torch.linspace(-1, 1, w)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    grid = torch.stack([gx + dense[:, 1] * 2 / max(w - 1, 1), gy + dense[:, 0] * 2 / max(h - 1, 1)], dim=-1)
    with torch.inference_mode():
        img = F.grid_sample(
            torch.from_numpy(slices[idx])[:, None], grid, mode="bilinear", padding_mode="border", align_corners=True
        )[:, 0]
        lab = F.grid_sample(
            torch.from_numpy(masks[idx].astype(np.float32))[:, None],
            grid,
            mode="bilinear",
            padding_mode="zeros",
            align_corners=True,
        )[:, 0]
    slices[idx] = img.numpy()
    masks[idx] = (lab.numpy() >= 0.5).astype(np.uint8)
    return slices, masks


def augment_stack(slices: np.ndarray, masks: np.ndarray, params: dict, seed: int):
    """One augmented view of a ``(Z, H, W)`` stack and its masks. Returns float32 slices, uint8 masks."""
    from batchgenerators.transforms.abstract_transforms import Compose
    from batchgenerators.transforms.color_transforms import GammaTransform
    from batchgenerators.transforms.noise_transforms import GaussianBlurTransform, GaussianNoiseTransform

    rng = np.random.default_rng(seed)
    np.random.seed(seed % 2**32)  # batchgenerators draws from the global generators
    random.seed(seed)
    out_slices = slices.astype(np.float32, copy=True)
    out_masks = masks.astype(np.uint8, copy=True)
    el = params["elastic"]
    out_slices, out_masks = elastic_deform(
        out_slices, out_masks, rng, el["sigma_px"], el["control_points"], rng.random(slices.shape[0]) < el["p"]
    )
    noise, blur, gamma = params["noise"], params["blur"], params["gamma"]
    transforms = Compose(
        [
            GaussianNoiseTransform(noise_variance=(noise["sigma"], noise["sigma"]), p_per_sample=noise["p"]),
            GaussianBlurTransform(blur_sigma=(blur["sigma_px"], blur["sigma_px"]), p_per_sample=blur["p"]),
            GammaTransform(
                gamma_range=tuple(gamma["range"]), retain_stats=gamma["retain_stats"], p_per_sample=gamma["p"]
            ),
        ]
    )
    out_slices = transforms(data=out_slices[:, None])["data"][:, 0].astype(np.float32)
    drop = params["dropout"]
    for k in np.flatnonzero(rng.random(slices.shape[0]) < drop["p"]):
        out_slices[k][rng.random(out_slices.shape[1:]) < drop["fraction"]] = 0.0
    return out_slices, out_masks

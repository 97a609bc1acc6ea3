"""Augmented views of slices (Table A1): elastic, Gaussian noise, blur, gamma, pixel dropout.

Noise, blur and gamma come from batchgenerators; the elastic deformation follows the paper's
parameterisation (a grid of ``control_points``² random displacements with s.d. ``sigma_px`` pixels,
smoothly interpolated — the scheme of the ``elasticdeform`` package) and is applied identically to the
slice and its mask. Everything is seeded: the same seed gives the same views.
"""

from __future__ import annotations

import random

import numpy as np

from planning.sections import Augmentation


def elastic_grid(coarse, h: int, w: int):
    """``grid_sample`` grids ``(n, h, w, 2)`` of coarse displacements ``(n, 2, c, c)`` (torch, pixels, (dy, dx)),
    upsampled bicubically."""
    import torch
    import torch.nn.functional as F

    dense = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True)  # pixels (dy, dx)
    ys = torch.linspace(-1, 1, h, device=coarse.device)
    xs = torch.linspace(-1, 1, w, device=coarse.device)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx + dense[:, 1] * 2 / max(w - 1, 1), gy + dense[:, 0] * 2 / max(h - 1, 1)], dim=-1)


def elastic_displacements(n_slices: int, params: Augmentation, seed: int) -> dict[int, np.ndarray]:
    """The elastic deformations :func:`augment_stack` ``(…, params, seed)`` applies to a stack of ``n_slices``:
    ``{slice index: coarse displacements (2, c, c) float32, pixels}`` for the deformed slices (the others are
    only changed in intensity). Draws exactly what :func:`augment_stack` draws first from its generator."""
    rng = np.random.default_rng(seed)
    el = params.elastic
    idx = np.flatnonzero(rng.random(n_slices) < el.p)
    if idx.size == 0:
        return {}
    c = el.control_points
    coarse = rng.normal(0.0, el.sigma_px, size=(idx.size, 2, c, c)).astype(np.float32)
    return dict(zip(idx.tolist(), coarse))


def warp_label_map(label_map: np.ndarray, coarse: np.ndarray) -> np.ndarray:
    """A label map ``(H, W)`` (any values, e.g. an organ map) under one slice's elastic deformation
    (``coarse`` ``(2, c, c)`` from :func:`elastic_displacements`): each value's indicator is sampled
    bilinearly as :func:`elastic_deform` samples masks, and a pixel takes the value of the largest (0 outside
    the slice) — for a 0/1 mask the same as the masks' threshold at 0.5, up to exact ties."""
    import torch
    import torch.nn.functional as F

    values = np.union1d([0], np.unique(label_map))
    h, w = label_map.shape
    indicators = torch.from_numpy((label_map[None] == values[:, None, None]).astype(np.float32))[None]
    grid = elastic_grid(torch.from_numpy(np.asarray(coarse, np.float32))[None], h, w)
    with torch.inference_mode():
        sampled = F.grid_sample(indicators, grid, mode="bilinear", padding_mode="zeros", align_corners=True)[0]
    return values[sampled.argmax(dim=0).numpy()].astype(label_map.dtype)


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
    grid = elastic_grid(coarse, h, w)
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


def augment_stack(slices: np.ndarray, masks: np.ndarray, params: Augmentation, seed: int):
    """One augmented view of a ``(Z, H, W)`` stack and its masks. Returns float32 slices, uint8 masks."""
    from batchgenerators.transforms.abstract_transforms import Compose
    from batchgenerators.transforms.color_transforms import GammaTransform
    from batchgenerators.transforms.noise_transforms import GaussianBlurTransform, GaussianNoiseTransform

    rng = np.random.default_rng(seed)
    np.random.seed(seed % 2**32)  # batchgenerators draws from the global generators
    random.seed(seed)
    out_slices = slices.astype(np.float32, copy=True)
    out_masks = masks.astype(np.uint8, copy=True)
    el = params.elastic
    out_slices, out_masks = elastic_deform(
        out_slices, out_masks, rng, el.sigma_px, el.control_points, np.less(rng.random(slices.shape[0]), el.p)
    )
    noise, blur, gamma = params.noise, params.blur, params.gamma
    transforms = Compose(
        [
            GaussianNoiseTransform(noise_variance=(noise.sigma, noise.sigma), p_per_sample=noise.p),
            GaussianBlurTransform(blur_sigma=(blur.sigma_px, blur.sigma_px), p_per_sample=blur.p),
            GammaTransform(gamma_range=tuple(gamma.range), retain_stats=gamma.retain_stats, p_per_sample=gamma.p),
        ]
    )
    out_slices = transforms(data=out_slices[:, None])["data"][:, 0].astype(np.float32)
    drop = params.dropout
    for k in np.flatnonzero(rng.random(slices.shape[0]) < drop.p):
        out_slices[k][rng.random(out_slices.shape[1:]) < drop.fraction] = 0.0
    return out_slices, out_masks

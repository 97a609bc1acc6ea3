"""Render a tissue map into a scan of one domain: contrast, texture, blur, noise, artefacts."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .domains import Domain
from .tissues import APPEARANCE, Tissue


def _lookup(domain: Domain):
    means = np.zeros(len(Tissue), np.float32)
    textures = np.zeros(len(Tissue), np.float32)
    for tissue in Tissue:
        means[tissue], textures[tissue] = domain.intensities[APPEARANCE.get(tissue, tissue).name]
    return means, textures


def smooth_field(rng, shape, cells=(4, 6, 6)) -> np.ndarray:
    """Zero-mean, unit-s.d. low-frequency random field of ``shape``.

    A coarse random grid of ``cells`` is spread over the volume with separable Gaussian weights
    (three small matrix products), which is far faster than spline zooming.
    """
    field = rng.standard_normal(cells).astype(np.float32)
    for axis, (n, c) in enumerate(zip(shape, cells)):
        centres = (np.arange(c) + 0.5) * n / c
        weights = np.exp(-0.5 * ((np.arange(n)[:, None] + 0.5 - centres[None]) / (0.6 * n / c)) ** 2)
        weights = (weights / weights.sum(1, keepdims=True)).astype(np.float32)
        field = np.moveaxis(np.tensordot(weights, field, axes=([1], [axis])), 0, axis)
    return (field - field.mean()) / (field.std() + 1e-6)


def render(tissues: np.ndarray, domain: Domain, spacing, rng: np.random.Generator) -> np.ndarray:
    """Tissue map ``(z, y, x)`` on the canonical grid → float32 image in the domain's units."""
    means, textures = _lookup(domain)
    image = means[tissues]
    image += smooth_field(rng, tissues.shape) * textures[tissues]
    sx, sy, sz = spacing
    sigma = (domain.psf_mm[1] * 0.5, domain.psf_mm[0] / sy, domain.psf_mm[0] / sx)
    image = ndimage.gaussian_filter(image, sigma, mode="nearest", truncate=3.0)
    noise = rng.standard_normal(image.shape).astype(np.float32)
    if domain.noise_corr > 0:
        noise = ndimage.gaussian_filter(noise, (0, domain.noise_corr, domain.noise_corr), truncate=3.0)
        noise /= noise.std() + 1e-6
    if domain.ghosting > 0:
        add_ghosts(image, domain.ghosting, rng)
    if domain.modality == "CT":
        image += domain.noise * noise
        if domain.streaks > 0:
            add_streaks(image, domain, rng)
        image = image * rng.uniform(*domain.gain) + rng.uniform(*domain.offset)
        np.clip(image, -1024, 3071, out=image)
        if domain.circular_fov_value is not None:
            ny, nx = image.shape[1:]
            yy, xx = np.ogrid[:ny, :nx]
            outside = (yy - (ny - 1) / 2) ** 2 + (xx - (nx - 1) / 2) ** 2 > (min(ny, nx) / 2) ** 2
            image[:, outside] = domain.circular_fov_value
    else:
        if domain.bias_field > 0:
            image *= np.exp(domain.bias_field * smooth_field(rng, image.shape, (3, 3, 3)))
        second = rng.standard_normal(image.shape).astype(np.float32)
        image = np.sqrt((image + domain.noise * noise) ** 2 + (domain.noise * second) ** 2)  # Rician
        image *= rng.uniform(*domain.gain)
    return image


def add_streaks(image: np.ndarray, domain: Domain, rng) -> None:
    """Add alternating bright/dark lines radiating from a dense spot on some slices (in place)."""
    nz, ny, nx = image.shape
    yy, xx = np.mgrid[:ny, :nx].astype(np.float32)
    for k in np.flatnonzero(rng.random(nz) < domain.streak_fraction):
        cy, cx = ny * rng.uniform(0.35, 0.65), nx * rng.uniform(0.35, 0.65)
        streak = np.zeros((ny, nx), np.float32)
        for n, angle in enumerate(rng.uniform(0, np.pi, rng.integers(4, 9))):
            d = (xx - cx) * np.sin(angle) - (yy - cy) * np.cos(angle)
            streak += (1 if n % 2 else -1) * np.exp(-0.5 * (d / 0.8) ** 2)
        image[k] += domain.streaks * streak


def add_ghosts(image: np.ndarray, amplitude: float, rng) -> None:
    """Motion ghosts (in place): faint copies of the image shifted along the phase-encoding axis."""
    axis = int(rng.integers(1, 3))
    n = image.shape[axis]
    base = image.copy()
    for k in (1, -1):
        image += amplitude / 2 * np.roll(base, k * int(n * rng.uniform(0.15, 0.35)), axis=axis)
    image -= amplitude * float(np.median(base))  # keep the background level

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
    sample = field.ravel()[::7]  # a strided sample estimates the moments at a seventh of the cost
    return (field - sample.mean()) / (sample.std() + 1e-6)


TEXTURE_SCALES = ((4, 6, 6), (10, 20, 20), None)
"""Texture scales: coarse shading, lobular (cells per axis), and a fine grain (voxel-level, correlated)."""


def texture(tissues: np.ndarray, textures: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean texture ``(z, y, x)`` with per-tissue s.d. ``textures[code]``, spread over three
    scales with per-tissue weights. At the two smooth scales two random fields are mixed at a
    per-tissue angle, at the grain scale one field takes a per-tissue sign, so that neighbouring
    tissues do not share one pattern."""
    n = len(textures)
    weights = np.sqrt(rng.dirichlet([1.0, 1.0, 1.0], size=n)).astype(np.float32)  # (tissues, scales)
    out = np.zeros(tissues.shape, np.float32)
    for scale, cells in enumerate(TEXTURE_SCALES):
        amplitude = weights[:, scale] * textures
        if cells is None:
            sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)
            out += (sign * amplitude).astype(np.float32)[tissues] * fine_field(rng, tissues.shape)
            continue
        angle = rng.uniform(0, 2 * np.pi, n)
        for trig in (np.cos, np.sin):
            out += (trig(angle) * amplitude).astype(np.float32)[tissues] * smooth_field(rng, tissues.shape, cells)
    return out


def fine_field(rng, shape, sigma: float = 0.8) -> np.ndarray:
    """Unit-s.d. grain: white noise smoothed in-plane by ``sigma`` voxels."""
    noise = rng.standard_normal(shape, dtype=np.float32)
    noise = ndimage.gaussian_filter(noise, (0, sigma, sigma), truncate=2.5)
    return noise / (noise.ravel()[::7].std() + 1e-6)


def render(tissues: np.ndarray, domain: Domain, spacing, rng: np.random.Generator, slab: int = 1) -> np.ndarray:
    """Tissue map ``(z, y, x)`` on the canonical grid → float32 image in the domain's units.

    ``slab`` > 1: ``tissues`` holds ``slab`` sub-slices per output slice (z-major); each output slice
    integrates its slab's intensities (partial volume of a thick slice) instead of sampling its centre.
    ``spacing`` is the output grid's (x, y, z) in mm.
    """
    means, textures = _lookup(domain)
    image = means[tissues]
    if slab > 1:
        nz = tissues.shape[0] // slab
        image = image.reshape(nz, slab, *image.shape[1:]).mean(axis=1)
        tissues = tissues[slab // 2 :: slab]
    image += texture(tissues, textures, rng)
    sx, sy, sz = spacing
    through = domain.psf_mm[1] * (0.5 if slab == 1 else 0.25)  # a slab already integrates through-plane
    sigma = (through, domain.psf_mm[0] / sy, domain.psf_mm[0] / sx)
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

"""Smooth random nonlinear deformation of a painted label map (SynthSeg's spatial augmentation).

The displacement is a low-frequency random field (control points every ``control_mm`` mm) of
s.d. ``amplitude_mm`` per axis; label maps are resampled by nearest neighbour, so every layer of a
phantom (organ map, lumen contents) moves together and the liver label, derived from the warped
organ map, follows the deformation exactly.
"""

from __future__ import annotations

import numpy as np

from .render import smooth_field


def displacement_field(shape, spacing_zyx, amplitude_mm: float, control_mm: float, rng) -> np.ndarray:
    """``(3, z, y, x)`` float32 displacement in voxels (z, y, x components) for a grid of ``shape``."""
    extent = np.array(shape) * np.array(spacing_zyx)
    cells = tuple(int(np.clip(round(e / control_mm), 2, 12)) if n > 1 else 1 for e, n in zip(extent, shape))
    return np.stack(
        [
            amplitude_mm / s * smooth_field(rng, shape, cells) if n > 1 else np.zeros(shape, np.float32)
            for s, n in zip(spacing_zyx, shape)
        ]
    ).astype(np.float32)


def warp_labels(maps: list, displacement: np.ndarray) -> list:
    """Resample each uint8 map ``(z, y, x)`` at ``index + displacement`` (nearest neighbour, edges
    extended); all maps move identically."""
    shape = maps[0].shape
    source = []
    for axis, n in enumerate(shape):
        index = np.arange(n, dtype=np.float32).reshape([-1 if a == axis else 1 for a in range(3)])
        source.append(np.clip(np.rint(index + displacement[axis]), 0, n - 1).astype(np.intp))
    flat = np.ravel_multi_index(tuple(source), shape)
    return [np.take(m, flat) for m in maps]

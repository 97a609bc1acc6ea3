"""Bézier-curve intensity remapping: the style augmentation of Zhou et al. (CVPR 2022, DualNorm).

Images are first mapped to [−1, 1] (by the case's intensity range). A cubic Bézier curve from (−1, −1)
to (1, 1) with two inner control points is sampled densely:

- **source-similar** curves are made monotone increasing (the x and y samples sorted independently):
  grey values keep their order, only the contrast changes;
- **source-dissimilar** curves are read mirrored, ``y(x) = B_y(−x)``: grey values are (about) inverted,
  so bright becomes dark, as between CT and MR; the image minimum (air, background) stays at −1.

The curve sets are fixed (identity, inner points ±0.5 and ±0.75), so the augmented copies of a slice
form a fixed, offline set, as in the paper; the data set draws one similar and one dissimilar copy
per item.
"""

from __future__ import annotations

import numpy as np
from scipy.special import comb

INNER_POINTS = (None, ((-0.5, 0.5), (0.5, -0.5)), ((-0.75, 0.75), (0.75, -0.75)))  # None: a straight line


def bezier_curve(points, n: int = 1000) -> tuple:
    """Samples ``(x (n,), y (n,))`` of the Bézier curve with control ``points`` ``(k, 2)``, t from 0 to 1."""
    points = np.asarray(points, np.float64)
    degree = len(points) - 1
    t = np.linspace(0.0, 1.0, n)
    basis = np.stack([comb(degree, i) * t**i * (1 - t) ** (degree - i) for i in range(degree + 1)])  # (k, n)
    curve = basis.T @ points
    return curve[:, 0], curve[:, 1]


def _control_points(inner) -> list:
    if inner is None:
        return [(-1.0, -1.0), (-1 / 3, -1 / 3), (1 / 3, 1 / 3), (1.0, 1.0)]
    return [(-1.0, -1.0), *inner, (1.0, 1.0)]


def similar_curve(index: int) -> tuple:
    """Monotone increasing lookup ``(x, y)`` on [−1, 1] (index 0: identity)."""
    x, y = bezier_curve(_control_points(INNER_POINTS[index]))
    return np.sort(x), np.sort(y)


def dissimilar_curve(index: int) -> tuple:
    """Mirrored lookup ``(x, y)``: ``y(x) = B_y(−x)`` (index 0: plain inversion)."""
    x, y = bezier_curve(_control_points(INNER_POINTS[index]))
    order = np.argsort(-x)
    return -x[order], y[order]


def remap(image: np.ndarray, curve: tuple, keep_minimum: bool = False) -> np.ndarray:
    """Apply a lookup ``(x, y)`` to an image in [−1, 1]; ``keep_minimum`` keeps the pixels at −1 there."""
    out = np.interp(image, *curve).astype(np.float32)
    if keep_minimum:
        out[image <= -1.0] = -1.0
    return out


def style_copies(image: np.ndarray, low: float, high: float, similar: int, dissimilar: int) -> tuple:
    """``(source-similar copy, source-dissimilar copy)`` of ``image`` whose intensity range is
    ``[low, high]``; both are returned on the input's scale (mapped to [−1, 1], remapped, mapped back)."""
    scale = max(high - low, 1e-6)
    unit = np.clip(2 * (image - low) / scale - 1, -1, 1)

    def back(v):
        return (v + 1) / 2 * scale + low

    return (
        back(remap(unit, similar_curve(similar))).astype(np.float32),
        back(remap(unit, dissimilar_curve(dissimilar), keep_minimum=True)).astype(np.float32),
    )

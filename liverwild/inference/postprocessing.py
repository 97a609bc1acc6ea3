"""Post-processing of a binary liver mask: largest 3D connected component, then hole filling."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

FULL = ndimage.generate_binary_structure(3, 3)  # 26-connectivity


def largest_component(mask: np.ndarray) -> np.ndarray:
    labels, n = ndimage.label(mask, structure=FULL)
    if n <= 1:
        return mask.astype(bool)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill cavities enclosed in 3D (a background region not connected to the border)."""
    return ndimage.binary_fill_holes(mask)


def bounding_box(mask: np.ndarray) -> tuple:
    """Slices of the smallest box holding every foreground voxel (cheap: three projections)."""
    box = []
    for axis in range(mask.ndim):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(mask.any(axis=others))
        box.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(box)


def postprocess(mask: np.ndarray) -> np.ndarray:
    """``largest_component`` then ``fill_holes``, computed inside the mask's bounding box; uint8."""
    out = np.zeros(mask.shape, np.uint8)
    if not mask.any():
        return out
    box = bounding_box(mask)
    out[box] = fill_holes(largest_component(mask[box]))
    return out

"""Post-processing: of a binary liver mask, the largest 3D connected component, then hole filling
(:func:`postprocess`); of a multi-organ label map, the largest component of every organ, the rest
background (:func:`largest_component_per_class`, nnU-Net's "remove all but the largest component")."""

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


def largest_component_per_class(label_map: np.ndarray) -> np.ndarray:
    """Every label value keeps only its largest 3D (26-connected) component; smaller pieces become
    background (0). Computed inside each label's bounding box; uint8."""
    out = np.asarray(label_map, np.uint8).copy()
    for value in np.unique(out):
        if value == 0:
            continue
        box = bounding_box(out == value)
        region = out[box]
        inside = region == value
        region[inside & ~largest_component(inside)] = 0
    return out

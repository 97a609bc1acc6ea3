"""Connected components of binary masks with SimpleITK's multithreaded filter: the labels of
``scipy.ndimage.label`` (same numbering, tested equal), 2–3× faster on a liver's box on 2 cores, and
without importing SciPy (about 0.3 s), so that ``lw_predict`` on a CT never loads it.

Connectivity is ``full`` (26 neighbours in 3D, 8 in 2D: ``structure=np.ones((3,) * ndim)``) or by faces
(6 in 3D, 4 in 2D: SciPy's default cross). Components are numbered 1..n in the raster order of their
first voxel, as SciPy numbers them.
"""

from __future__ import annotations

import numpy as np


def label(mask: np.ndarray, full: bool) -> tuple[np.ndarray, int]:
    """``(labels, n)``: int32 labels (0 outside, 1..n inside; the shape of ``mask``) of the components of
    the boolean or 0/1 2D or 3D ``mask``, ``full``- or face-connected."""
    import SimpleITK as sitk

    mask = np.asarray(mask)
    if mask.size == 0:
        return np.zeros(mask.shape, np.int32), 0
    voxels = np.ascontiguousarray(mask).view(np.uint8) if mask.dtype == bool else (mask != 0).view(np.uint8)
    components = sitk.ConnectedComponentImageFilter()
    components.SetFullyConnected(full)
    labels = sitk.GetArrayFromImage(components.Execute(sitk.GetImageFromArray(voxels)))  # uint32, a copy
    return labels.view(np.int32), int(components.GetObjectCount())


def label_slices(stack: np.ndarray, full: bool = True) -> tuple[np.ndarray, int]:
    """``(labels, n)``: the components of every 2D slice of a ``(z, y, x)`` boolean ``stack``, each slice on
    its own (no connection across slices), numbered 1..n over the stack, slice after slice (each slice in
    raster order). One labelling of the slices laid end to end, an empty row between two: no 8-connected
    path crosses an empty row, and one call costs far less than one per slice."""
    z, y, x = stack.shape
    tall = np.zeros((z, y + 1, x), bool)
    tall[:, :y] = stack
    labels, n = label(tall.reshape(z * (y + 1), x), full)
    return labels.reshape(z, y + 1, x)[:, :y], n


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Boolean copy of the 2D or 3D ``mask`` with its cavities filled: the face-connected background regions
    that do not reach the array's border (what ``scipy.ndimage.binary_fill_holes`` gives, several times
    faster: one labelling of the background instead of a dilation iterated from the border)."""
    mask = np.asarray(mask, bool)
    background, n = label(~mask, full=False)  # face-connected, as binary_fill_holes' default structure
    if n == 0:
        return mask.copy()
    outside = np.zeros(n + 1, bool)
    outside[0] = True  # label 0: the mask itself
    for axis in range(mask.ndim):
        for end in (0, -1):
            outside[np.take(background, end, axis=axis)] = True
    return mask | ~outside[background]

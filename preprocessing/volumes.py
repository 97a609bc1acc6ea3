"""The ``3d`` configuration's per-case transform, shared by caching and prediction: a scan in its stored
layout → the canonical volume (LPS-aligned, inferior → superior) normalised with the plans' ``3d`` entry
and resized to its ``volume_size``; label maps → organ class indices on the same grid.

Resizing (:func:`resample`) is separable and linear: along an axis that shrinks every output voxel is
the mean of the input voxels it covers (box filter, torch's ``area`` mode: a 512² slice becomes 128²
without the aliasing of point sampling); along an axis that grows, linear interpolation. Label maps
are resized through the fraction of each class inside every output voxel, and each voxel takes the
class with the largest fraction (nearest-neighbour sampling would take whichever class lies at the
voxel's centre, so thin organs would appear or vanish with the grid's phase). Prediction maps class
probabilities back to the scan's grid with the same operator.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from liverwild.datasets.organs import to_class_map
from liverwild.io import Reorientation
from planning.fingerprint import body_mask
from planning.sections import Config3D, Normalization

from .normalization import normalize_scan


def resample(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """``(N, C, Z, Y, X)`` float → ``(N, C, *size)``: box average along the axes that shrink, then linear
    interpolation (``align_corners=False``) along the axes that grow."""
    size = tuple(int(s) for s in size)
    shape = tuple(x.shape[2:])
    shrunk = tuple(min(n, s) for n, s in zip(shape, size))
    if shrunk != shape:
        x = F.interpolate(x, size=shrunk, mode="area")
    if shrunk != size:
        x = F.interpolate(x, size=size, mode="trilinear", align_corners=False)
    return x


def resize_volume(volume: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """A ``(Z, Y, X)`` volume resized to ``size`` (z, y, x) with :func:`resample`; float32."""
    if tuple(volume.shape) == tuple(size):
        return volume.astype(np.float32, copy=False)
    with torch.inference_mode():
        x = torch.from_numpy(np.ascontiguousarray(volume, dtype=np.float32))[None, None]
        return resample(x, size)[0, 0].numpy()


def resize_class_map(class_map: np.ndarray, size: Sequence[int], n_classes: int) -> np.ndarray:
    """Class indices ``(Z, Y, X)`` (0 … ``n_classes − 1``, background included) on the grid ``size``: the
    class with the largest fraction inside each output voxel (ties: the lower index). uint8."""
    best = torch.full(tuple(size), -1.0)
    out = torch.zeros(tuple(size), dtype=torch.uint8)
    with torch.inference_mode():
        for index in range(n_classes):
            indicator = torch.from_numpy(class_map == index).float()[None, None]
            fraction = resample(indicator, size)[0, 0]
            better = fraction > best
            out[better] = index
            best = torch.where(better, fraction, best)
    return out.numpy()


def prepare_volume(
    image: np.ndarray, geometry, modality: str, volume_size, normalization: Normalization, inplace: bool = False
) -> tuple:
    """Scan array in stored layout → ``(volume (z, y, x) float32 of volume_size, stats, reorientation)``:
    canonical layout, the ``3d`` ``normalization`` (CT window, MR relative to the body median; rescale;
    z-score), then :func:`resize_volume`. ``inplace``: normalise ``image`` (float32) in place instead of
    copying it."""
    reorient = Reorientation.from_geometry(geometry)
    canonical = reorient.to_canonical(image)  # a view: no copy
    body_median = None
    if normalization.relative_to_body_median:
        body_median = float(np.median(canonical[body_mask(canonical, modality)]))
    normalised, stats = normalize_scan(canonical, normalization, body_median, inplace)
    return resize_volume(normalised, volume_size), stats, reorient


def prepare_class_map(label_map: np.ndarray, reorient: Reorientation, config_3d: Config3D) -> tuple:
    """A dataset's label map (stored layout) → ``(class indices on the volume grid (uint8), voxel count of
    every class at the original resolution)``: the plans' ``label_values`` make ``classes``."""
    classes = config_3d.classes
    missing = [c for c in classes if c not in config_3d.label_values]
    if missing:
        raise ValueError(f"plans.json 3d: classes {missing} have no label_values")
    canonical = to_class_map(np.asarray(reorient.to_canonical(label_map)), config_3d.label_values, classes)
    counts = np.bincount(canonical.ravel(), minlength=len(classes) + 1)
    resized = resize_class_map(canonical, config_3d.volume_size, len(classes) + 1)
    return resized, {name: int(counts[k + 1]) for k, name in enumerate(classes)}

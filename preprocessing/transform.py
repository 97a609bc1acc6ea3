"""The per-case transform shared by caching and prediction: a scan array in its stored layout →
canonical axial slices (LPS-aligned, inferior → superior), normalised with the plans and resized to the
network's input size."""

from __future__ import annotations

import numpy as np

from liverwild.io import Reorientation
from planning.fingerprint import body_mask
from planning.plans import Plans

from .normalization import normalize_scan


def prepare_slices(image, geometry, plans: Plans, body_median=None, inplace: bool = False, resize=None):
    """Scan array in stored layout → normalised canonical ``(Z, h, w)`` float32 stack + stats.

    ``inplace`` lets the normalisation overwrite ``image`` (float32) instead of copying it. ``resize``
    ``(stack, size) → stack``: :func:`.slices.resize_stack` (torch) by default; the ONNX runtime path
    passes :func:`.lean.resize_slices` (NumPy, the same weights), so that it never imports torch.
    """
    if resize is None:
        from .slices import resize_stack as resize

    reorient = Reorientation.from_geometry(geometry)
    canonical = reorient.to_canonical(image)  # a view: no copy
    if plans.normalization.relative_to_body_median and body_median is None:
        body_median = float(np.median(canonical[body_mask(canonical, plans.modality)]))
    normalised, stats = normalize_scan(canonical, plans.normalization, body_median, inplace)
    return resize(normalised, plans.slice_size), stats, reorient

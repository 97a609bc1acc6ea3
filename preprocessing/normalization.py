"""Intensity normalisation of one scan, following a plan's ``normalization`` entry
(:class:`planning.sections.Normalization`).

Steps (method.md, supplement A.1): optional division by the scan's body median (MR), clip to the
window, clip outliers at the scan's percentiles (2nd/98th by default; ``clip_percentiles: null`` skips
this, as the ``3d`` configuration does), rescale to [0, 1], z-score per scan. Percentiles are
estimated on a regular 1/8 subsample of the voxels, which changes them by far less than the noise and
makes the step several times faster on large CTs.
"""

from __future__ import annotations

import numpy as np

from planning.sections import Normalization

EPS = 1e-6


def normalize_scan(
    image: np.ndarray, normalization: Normalization, body_median: float | None = None, inplace: bool = False
) -> tuple:
    """Return ``(normalised float32 array, stats dict)``; the stats let a user reproduce the mapping.

    ``inplace=True`` (float32 input only) overwrites ``image`` instead of allocating a copy: prediction
    uses it to keep a 512×512×800 scan within a few GB.
    """
    x = image if inplace and image.dtype == np.float32 else image.astype(np.float32, copy=True)
    stats: dict = {}
    if normalization.relative_to_body_median:
        if body_median is None or not np.isfinite(body_median) or body_median <= 0:
            raise ValueError("relative_to_body_median needs a positive body median")
        x /= np.float32(body_median)
        stats["body_median"] = float(body_median)
    lo, hi = normalization.window
    np.clip(x, lo, hi, out=x)
    if normalization.clip_percentiles is not None:
        sample = x[::2, ::2, ::2]
        p_lo, p_hi = (float(v) for v in np.percentile(sample, normalization.clip_percentiles))
        np.clip(x, p_lo, p_hi, out=x)
    else:  # the 3d configuration: the window is the only clip
        p_lo, p_hi = float(lo), float(hi)
    stats.update({"window": [lo, hi], "clip_values": [p_lo, p_hi]})
    if normalization.rescale:
        x -= p_lo
        x /= max(p_hi - p_lo, EPS)
    if normalization.zscore:
        mean, std = float(x.mean()), float(x.std())
        x -= mean
        x /= max(std, EPS)
        stats.update({"zscore_mean": mean, "zscore_std": std})
    return x, stats

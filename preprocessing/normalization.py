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

from liverwild.parallel import thread_map
from planning.sections import Normalization

EPS = 1e-6


CHUNK = 8  # slices per piece of work: a piece stays in the cache through all of its steps


def normalize_scan(
    image: np.ndarray,
    normalization: Normalization,
    body_median: float | None = None,
    inplace: bool = False,
    workers: int | None = None,
) -> tuple:
    """Return ``(normalised float32 array, stats dict)``; the stats let a user reproduce the mapping.

    ``inplace=True`` (float32 input only) overwrites ``image`` instead of allocating a copy: prediction
    uses it to keep a 512×512×800 scan within a few GB. The element-wise steps run on pieces of
    :data:`CHUNK` slices (along the first axis) shared by ``workers`` threads (default ``$LW_THREADS``, else
    the cores); the mean and standard deviation come from sums of offsets from a subsample's mean, over
    rows in float32 added in float64, in order, so the result does not depend on ``workers``.
    """
    x = image if inplace and image.dtype == np.float32 else np.empty(image.shape, np.float32)
    stats: dict = {}
    median = None
    if normalization.relative_to_body_median:
        if body_median is None or not np.isfinite(body_median) or body_median <= 0:
            raise ValueError("relative_to_body_median needs a positive body median")
        median = np.float32(body_median)
        stats["body_median"] = float(body_median)
    lo, hi = normalization.window
    pieces = [slice(k, k + CHUNK) for k in range(0, x.shape[0], CHUNK)]

    def window(piece) -> None:
        out = x[piece]
        if x is not image:
            out[...] = image[piece]
        if median is not None:
            out /= median
        np.clip(out, lo, hi, out=out)

    thread_map(window, pieces, workers)
    if normalization.clip_percentiles is not None:
        sample = x[::2, ::2, ::2]
        p_lo, p_hi = (float(v) for v in np.percentile(sample, normalization.clip_percentiles))
    else:  # the 3d configuration: the window is the only clip
        p_lo, p_hi = float(lo), float(hi)
    stats.update({"window": [lo, hi], "clip_values": [p_lo, p_hi]})
    scale = max(p_hi - p_lo, EPS)
    # sums of offsets from a first estimate of the mean (a 1/64 subsample, mapped as below) keep the
    # variance exact even where the mean is far from 0 (1000 ± 1 without rescaling)
    estimate = np.clip(x[::4, ::4, ::4].astype(np.float64), p_lo, p_hi)
    centre = float(((estimate - p_lo) / scale if normalization.rescale else estimate).mean()) if estimate.size else 0.0
    centre = float(np.float32(centre))  # the offsets below are taken from this float32 value: the mean adds it back

    def clip_and_rescale(piece) -> tuple[float, float]:
        out = x[piece]
        if normalization.clip_percentiles is not None:
            np.clip(out, p_lo, p_hi, out=out)
        if normalization.rescale:
            out -= p_lo
            out /= scale
        if not normalization.zscore:
            return 0.0, 0.0
        offsets = out - np.float32(centre)  # exact: centre is a float32 value
        rows = offsets.reshape(-1, offsets.shape[-1]) if offsets.ndim > 1 else offsets.reshape(1, -1)
        total = rows.sum(axis=1).astype(np.float64).sum()  # float32 within a row, float64 across rows
        squares = np.einsum("ij,ij->i", rows, rows).astype(np.float64).sum()
        return float(total), float(squares)

    sums = thread_map(clip_and_rescale, pieces, workers)
    if normalization.zscore:
        n = max(x.size, 1)
        shift = sum(s for s, _ in sums) / n
        mean = centre + shift
        std = float(np.sqrt(max(sum(q for _, q in sums) / n - shift * shift, 0.0)))
        divisor = max(std, EPS)

        def zscore(piece) -> None:
            out = x[piece]
            out -= mean
            out /= divisor

        thread_map(zscore, pieces, workers)
        stats.update({"zscore_mean": mean, "zscore_std": std})
    return x, stats

"""Torch-free slice operations for the ONNX runtime path (``lw_predict --runtime onnx``): teacher inputs
with slice context, and the in-plane resizes of :func:`preprocessing.slices.resize_stack` and of the
slice predictor's way back, in NumPy with the same weights as ``torch.nn.functional.interpolate``.

A resize is separable: along each in-plane axis every output sample is a weighted sum of a few input
samples (*taps*). The taps follow PyTorch's CPU kernels:

- ``bilinear`` (``align_corners=False``): source ``(i + 0.5) · in/out − 0.5`` clamped at 0, two taps;
- ``bilinear`` with ``antialias=True`` (used when shrinking): the triangle filter widened by the scale
  factor ``in/out`` (when ``> 1``) around ``(i + 0.5) · in/out``, weights normalised to sum 1 (PIL's rule).

Results agree with torch's to float32 rounding (torch places the taps in float32: a few 1e-6 on values in
[0, 1] on large grids; tested).
"""

from __future__ import annotations

import threading

import numpy as np

from liverwild.parallel import thread_map


def context_slices(slices: np.ndarray, start: int, stop: int, context: str = "slice") -> np.ndarray:
    """Slices ``start:stop`` of a ``(Z, H, W)`` stack as teacher inputs ``(stop − start, C, H, W)``.

    ``slice``: ``C = 1`` (the teacher replicates it into its three channels). ``neighbours``: ``C = 3``,
    slices ``i − 1, i, i + 1`` (an edge slice stands in for its missing neighbour)."""
    if context == "slice":
        return np.ascontiguousarray(slices[start:stop])[:, None]
    if context != "neighbours":
        raise ValueError(f"unknown slice context {context!r}")
    last = slices.shape[0] - 1
    index = np.arange(start, stop)[:, None] + np.array([-1, 0, 1])[None, :]
    return np.ascontiguousarray(slices[np.clip(index, 0, last)])


def bilinear_taps(n_in: int, n_out: int, antialias: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(index (n_out, K) int64, weight (n_out, K) float32)``: output sample ``i`` along one axis is
    ``Σ_k weight[i, k] · input[index[i, k]]`` (unused taps have weight 0 and index 0)."""
    scale = n_in / n_out
    i = np.arange(n_out, dtype=np.float64)
    if not antialias:
        source = np.maximum(scale * (i + 0.5) - 0.5, 0.0)
        low = source.astype(np.int64)  # non-negative: truncation is floor
        high = low + (low < n_in - 1)
        frac = source - low
        return np.stack([low, high], 1), np.stack([1.0 - frac, frac], 1).astype(np.float32)
    support = scale if scale >= 1.0 else 1.0
    invscale = 1.0 / scale if scale >= 1.0 else 1.0
    centre = scale * (i + 0.5)
    first = np.maximum(np.trunc(centre - support + 0.5), 0).astype(np.int64)
    size = np.minimum(np.trunc(centre + support + 0.5), n_in).astype(np.int64) - first
    taps = int(size.max())
    offsets = np.arange(taps)[None, :]
    index = first[:, None] + offsets
    weight = np.clip(1.0 - np.abs((index - centre[:, None] + 0.5) * invscale), 0.0, None)
    weight[offsets >= size[:, None]] = 0.0
    weight /= weight.sum(1, keepdims=True)
    return np.where(offsets < size[:, None], index, 0), weight.astype(np.float32)


def _rows(x: np.ndarray, taps: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """``(B, H, W)`` → ``(B, h, W)`` float32: rows gathered by ``taps`` (:func:`bilinear_taps`) and summed."""
    index, weight = taps
    out = np.take(x, index[:, 0], axis=-2)
    out *= weight[:, 0, None]
    for k in range(1, index.shape[1]):
        term = np.take(x, index[:, k], axis=-2)
        term *= weight[:, k, None]
        out += term
    return out


class _OneBlasThread:
    """BLAS limited to one thread while any thread is inside (where threadpoolctl is installed): these
    products are small, and on a shared 2-core machine two BLAS threads made them 2–3× slower than one
    (measured). Counted, so that threads resizing at once set the limit once and restore it once."""

    def __init__(self):
        self.lock, self.users, self.limit = threading.Lock(), 0, None

    def __enter__(self):
        with self.lock:
            if self.users == 0:
                try:
                    from threadpoolctl import threadpool_limits
                except ImportError:
                    self.limit = None
                else:
                    self.limit = threadpool_limits(1, "blas")
            self.users += 1

    def __exit__(self, *exc):
        with self.lock:
            self.users -= 1
            if self.users == 0 and self.limit is not None:
                self.limit.restore_original_limits()
                self.limit = None


_one_blas_thread = _OneBlasThread()


def _matrix(taps: tuple[np.ndarray, np.ndarray], n_in: int) -> np.ndarray:
    """The ``(n_out, n_in)`` float32 matrix of ``taps``: along the contiguous axis a BLAS product is about
    twice as fast as gathering columns."""
    index, weight = taps
    matrix = np.zeros((index.shape[0], n_in), np.float32)
    np.add.at(matrix, (np.repeat(np.arange(index.shape[0]), index.shape[1]), index.ravel()), weight.ravel())
    return matrix


def resize_slices(
    stack: np.ndarray, size, antialias: bool | None = None, batch: int = 16, workers: int | None = None
) -> np.ndarray:
    """Every ``(Z, H, W)`` slice bilinearly resized to ``size`` ``(h, w)`` → float32 ``(Z, h, w)``.

    ``antialias=None`` does what :func:`preprocessing.slices.resize_stack` does: antialiased when either
    axis shrinks; ``False`` is ``interpolate(mode="bilinear", align_corners=False)`` as the slice predictor
    uses on probabilities. Works ``batch`` slices at a time (bounded temporaries), the batches shared by
    ``workers`` threads (default ``$LW_THREADS``, else the cores; NumPy and BLAS release the GIL, so two
    threads halve the time on 2 cores). The result does not depend on ``batch`` or ``workers``."""
    size = (int(size[0]), int(size[1]))
    if stack.shape[1:] == size:
        return stack.astype(np.float32, copy=False)
    if antialias is None:
        antialias = stack.shape[1] > size[0] or stack.shape[2] > size[1]
    rows = bilinear_taps(stack.shape[1], size[0], antialias)
    columns = _matrix(bilinear_taps(stack.shape[2], size[1], antialias), stack.shape[2]).T
    out = np.empty((stack.shape[0], *size), np.float32)

    def resize_batch(start: int) -> None:
        chunk = np.asarray(stack[start : start + batch], dtype=np.float32)
        out[start : start + batch] = _rows(chunk @ columns, rows)  # width first, as torch

    with _one_blas_thread:
        thread_map(resize_batch, range(0, stack.shape[0], batch), workers)
    return out


# a value that reaches the threshold needs a coarse neighbour within this of it (weights sum to 1 ± 1e-7)
_THRESHOLD_MARGIN = 1e-4


def _reach(taps: tuple[np.ndarray, np.ndarray], n_in: int) -> tuple[np.ndarray, np.ndarray]:
    """``(first, stop)`` ``(n_in,)``: the output samples along one axis whose two taps
    (:func:`bilinear_taps`, no antialias) can read input sample ``r`` are ``first[r] ≤ i < stop[r]``
    (taps rise with ``i``, so each input sample is read by one run of outputs)."""
    index = taps[0]
    r = np.arange(n_in)
    return np.searchsorted(index[:, 1], r, "left"), np.searchsorted(index[:, 0], r, "right")


def upsample_threshold(small: np.ndarray, out: np.ndarray, threshold: float = 0.5, workers: int | None = None) -> None:
    """Every slice of ``small`` ``(Z, H, W)`` float32 upsampled bilinearly to ``out.shape[1:]`` (the taps of
    ``resize_slices(..., antialias=False)`` and torch's ``interpolate(mode="bilinear", align_corners=False)``)
    and thresholded, ``≥ threshold``, into ``out`` ``(Z, h, w)`` (bool or uint8 0/1), working only where a
    value can reach ``threshold``. The values equal ``resize_slices``' thresholded, and torch's to float32
    rounding (torch places the taps in float32, this module in float64: a few 1e-6 on probabilities in
    [0, 1] on large grids), so a voxel that close to the threshold may fall the other way.

    Plain bilinear upsampling makes each value a convex combination of its 2 × 2 coarse neighbours, so a
    value reaches the threshold only where one of them does (within float32 rounding, covered by a margin
    of 1e-4): each slice is interpolated inside the box of the outputs that read its coarse samples at or
    above ``threshold − 1e-4`` and is 0 elsewhere. On a liver (a quarter of the slice, half the slices)
    this is 5–10× less work than the whole grid. Inside the box the two taps of each axis are applied
    element-wise (width first, then height; the same arithmetic whatever the box, so the result does not
    depend on it); slices are shared by ``workers`` threads (default ``$LW_THREADS``, else the cores)."""
    nz, ny, nx = out.shape
    rows, columns = bilinear_taps(small.shape[1], ny, False), bilinear_taps(small.shape[2], nx, False)
    row_reach, column_reach = _reach(rows, small.shape[1]), _reach(columns, small.shape[2])
    hot = small >= threshold - _THRESHOLD_MARGIN

    def one_slice(k: int) -> None:
        out[k] = 0
        hot_rows, hot_columns = np.flatnonzero(hot[k].any(1)), np.flatnonzero(hot[k].any(0))
        if hot_rows.size == 0:
            return
        y0, y1 = row_reach[0][hot_rows[0]], row_reach[1][hot_rows[-1]]
        x0, x1 = column_reach[0][hot_columns[0]], column_reach[1][hot_columns[-1]]
        (ci, cw), (ri, rw) = (t[x0:x1] for t in columns), (t[y0:y1] for t in rows)
        width = small[k][:, ci[:, 0]] * cw[:, 0] + small[k][:, ci[:, 1]] * cw[:, 1]  # (H, x1 − x0)
        value = width[ri[:, 0]] * rw[:, 0, None] + width[ri[:, 1]] * rw[:, 1, None]  # (y1 − y0, x1 − x0)
        np.greater_equal(value, threshold, out=out[k, y0:y1, x0:x1].view(bool))

    thread_map(one_slice, range(nz), workers)

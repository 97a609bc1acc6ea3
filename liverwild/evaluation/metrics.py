"""Segmentation metrics on binary 3D masks, distances in millimetres.

Definitions (as in the CHAOS challenge evaluation):

- Dice = 2|P∩R| / (|P|+|R|); IoU = |P∩R| / |P∪R|; RAVD = 100 · |(|P| − |R|)| / |R| (relative absolute
  volume difference in **percent**, as CHAOS reports it).
- Surfaces: the border voxels of a mask, i.e. the mask minus its erosion with the 6-connected (face)
  structuring element; as in CHAOS, the erosion treats the outside of the volume as foreground, so a
  liver cut by the first or last slice has no border on that cut (it is not a surface of the organ).
  For every border voxel of one mask, the Euclidean distance (mm, using the voxel spacing) to the
  nearest border voxel of the other mask; both directions are pooled.
- ASSD = mean of the pooled distances; MSSD = their maximum (the symmetric Hausdorff distance, in mm;
  the paper's tables give it in cm); HD95 = max(95th percentile of P→R distances, 95th percentile of
  R→P distances) — MONAI's ``compute_hausdorff_distance(percentile=95)``. It is *not* medpy's ``hd95``,
  which takes the 95th percentile of the pooled distances of both directions (never larger than ours).

Empty masks (no NaN surprises): both empty → Dice 1, IoU 1, RAVD 0, distances 0. Exactly one empty →
Dice 0, IoU 0, distances = the diagonal of the volume in mm (the worst possible value), RAVD = 100 %
when the prediction is empty and +inf when only the reference is. Spacing is per axis of the array
``(z, y, x)``; the direction matrix does not change distances (it is orthonormal).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

FACE = ndimage.generate_binary_structure(3, 1)


def dice_from_counts(intersection: float, predicted: float, reference: float) -> float:
    """Dice ``2|P ∩ R| / (|P| + |R|)`` from voxel counts (accumulated over batches, for instance); 1.0
    when both masks are empty. liverwild's one definition: :func:`dice`, the trainers' validation and the
    per-class Dice of the ``3d`` trainers all use it."""
    total = predicted + reference
    return 1.0 if total == 0 else float(2 * intersection / total)


def dice(pred, ref) -> float:
    p, r = np.asarray(pred, bool), np.asarray(ref, bool)
    return dice_from_counts(float(np.logical_and(p, r).sum()), float(p.sum()), float(r.sum()))


def iou(pred, ref) -> float:
    p, r = np.asarray(pred, bool), np.asarray(ref, bool)
    union = np.logical_or(p, r).sum()
    return 1.0 if union == 0 else float(np.logical_and(p, r).sum() / union)


def ravd(pred, ref) -> float:
    """Relative absolute volume difference in percent."""
    vp, vr = int(np.asarray(pred, bool).sum()), int(np.asarray(ref, bool).sum())
    if vr == 0:
        return 0.0 if vp == 0 else float("inf")
    return 100.0 * abs(vp - vr) / vr


def surface(mask: np.ndarray) -> np.ndarray:
    """Border voxels (6-connected erosion, outside of the volume counted as foreground as in CHAOS).

    A mask that fills the whole volume has no such border; its faces on the volume edge are used then.
    """
    mask = np.asarray(mask, bool)
    border = mask & ~ndimage.binary_erosion(mask, structure=FACE, border_value=1)
    if mask.any() and not border.any():
        border = mask & ~ndimage.binary_erosion(mask, structure=FACE, border_value=0)
    return border


def surface_distances(pred, ref, spacing_zyx) -> tuple:
    """(distances from P's border to R's border, distances from R's border to P's border), in mm.

    Uses distance transforms on the bounding box of both masks (plus a margin), so large volumes with a
    small object stay cheap.
    """
    p, r = np.asarray(pred, bool), np.asarray(ref, bool)
    both = p | r
    idx = np.argwhere(both)
    lo, hi = np.maximum(idx.min(0) - 1, 0), np.minimum(idx.max(0) + 2, both.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    # the one-voxel margin keeps the box edge in the background except where the volume itself ends,
    # so the erosion's border convention gives the same border as on the whole volume
    sp, sr = surface(p)[box], surface(r)[box]
    # voxels outside the box are farther from any border than the box edge: the box is exact because
    # every border voxel lies inside it
    dist_to_r = ndimage.distance_transform_edt(~sr, sampling=spacing_zyx)
    dist_to_p = ndimage.distance_transform_edt(~sp, sampling=spacing_zyx)
    return dist_to_r[sp], dist_to_p[sr]


def volume_diagonal_mm(shape, spacing_zyx) -> float:
    return float(np.sqrt(np.sum((np.asarray(shape) * np.asarray(spacing_zyx)) ** 2)))


def surface_metrics(pred, ref, spacing_zyx) -> dict:
    """ASSD, MSSD and HD95 in mm (see module docstring for the empty-mask rules)."""
    p, r = np.asarray(pred, bool), np.asarray(ref, bool)
    if not p.any() and not r.any():
        return {"assd_mm": 0.0, "mssd_mm": 0.0, "hd95_mm": 0.0}
    if not p.any() or not r.any():
        worst = volume_diagonal_mm(p.shape, spacing_zyx)
        return {"assd_mm": worst, "mssd_mm": worst, "hd95_mm": worst}
    d_pr, d_rp = surface_distances(p, r, spacing_zyx)
    pooled = np.concatenate([d_pr, d_rp])
    return {
        "assd_mm": float(pooled.mean()),
        "mssd_mm": float(pooled.max()),
        "hd95_mm": float(max(np.percentile(d_pr, 95), np.percentile(d_rp, 95))),
    }


def all_metrics(pred, ref, spacing_zyx) -> dict:
    """Dice, IoU, RAVD, ASSD, MSSD, HD95 of one case, plus the two volumes in ml."""
    voxel_ml = float(np.prod(spacing_zyx)) / 1000.0
    out = {"dice": dice(pred, ref), "iou": iou(pred, ref), "ravd": ravd(pred, ref)}
    out.update(surface_metrics(pred, ref, spacing_zyx))
    out["volume_pred_ml"] = float(np.asarray(pred, bool).sum() * voxel_ml)
    out["volume_ref_ml"] = float(np.asarray(ref, bool).sum() * voxel_ml)
    return out


METRICS = ("dice", "iou", "ravd", "assd_mm", "mssd_mm", "hd95_mm")  # ravd in percent


def summarize(rows: list) -> dict:
    """Mean ± s.d. (population s.d., across scans, as the paper reports) per metric; non-finite values
    are left out of the mean and counted."""
    out: dict = {"n_cases": len(rows)}
    for key in METRICS:
        values = np.array([r[key] for r in rows if key in r], float)
        finite = values[np.isfinite(values)]
        out[key] = {
            "mean": float(finite.mean()) if finite.size else None,
            "std": float(finite.std()) if finite.size else None,
            "median": float(np.median(finite)) if finite.size else None,
            "n_nonfinite": int((~np.isfinite(values)).sum()),
        }
    return out

"""Per-organ statistics of a predicted mask (``lw_predict --statistics``): one row per scan and organ,
gathered into ``statistics.csv`` beside the prediction report.

Columns (:data:`COLUMNS`): ``scan``, ``organ``, ``label`` (its value in the mask), ``modality``,
``voxels``, ``volume_ml``; ``intensity_mean``, ``intensity_median``, ``intensity_sd`` (population
standard deviation) of the input image inside the organ — Hounsfield units for CT, the input's own
values otherwise (``intensity_unit``); ``bbox_min_{x,y,z}_mm`` / ``bbox_max_{x,y,z}_mm``, the smallest
and largest LPS coordinate (mm; x towards the patient's left, y posterior, z superior) of the organ's
voxel centres; ``components_removed``, the 26-connected pieces of the raw mask that post-processing
dropped whole. Statistics of an empty organ are left empty (None in the report, NaN in pandas).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..io import Geometry

BBOX = [f"bbox_{end}_{axis}_mm" for end in ("min", "max") for axis in "xyz"]
COLUMNS = [
    "scan",
    "organ",
    "label",
    "modality",
    "voxels",
    "volume_ml",
    "intensity_mean",
    "intensity_median",
    "intensity_sd",
    "intensity_unit",
    *BBOX,
    "components_removed",
]


def bounding_box_lps(inside: np.ndarray, geometry: Geometry) -> tuple | None:
    """``(min xyz, max xyz)`` (LPS mm) of the centres of the voxels of the boolean ``(z, y, x)`` mask
    ``inside`` on ``geometry``, exact for any direction cosines; None when the mask is empty. Computed one
    slice at a time, so memory stays at one slice's voxels."""
    lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
    for k in np.flatnonzero(inside.any(axis=(1, 2))):
        jy, ix = np.nonzero(inside[k])
        points = geometry.index_to_physical(np.stack([ix, jy, np.full(ix.shape, k)], axis=1))
        lo, hi = np.minimum(lo, points.min(axis=0)), np.maximum(hi, points.max(axis=0))
    return (lo, hi) if np.isfinite(lo).all() else None


def organ_statistics(
    image: np.ndarray,
    mask: np.ndarray,
    geometry: Geometry,
    labels: dict,
    modality: str,
    removed: dict | None = None,
    scan: str = "",
) -> list[dict]:
    """One row (:data:`COLUMNS`) per organ of ``labels`` (value → name; 0 skipped) of ``mask`` (uint8
    ``(z, y, x)``) over ``image`` (the input's values, same shape) on ``geometry``; ``removed`` maps an
    organ to its components removed by post-processing (0 when absent)."""
    voxel_ml = float(np.prod(geometry.spacing)) / 1000
    rows = []
    for value, organ in sorted(labels.items()):
        if int(value) == 0:
            continue
        inside = mask == value
        values = np.asarray(image[inside], np.float64)
        box = bounding_box_lps(inside, geometry)
        row = {
            "scan": scan,
            "organ": organ,
            "label": int(value),
            "modality": modality,
            "voxels": int(values.size),
            "volume_ml": round(values.size * voxel_ml, 4),
            "intensity_mean": float(values.mean()) if values.size else None,
            "intensity_median": float(np.median(values)) if values.size else None,
            "intensity_sd": float(values.std()) if values.size else None,
            "intensity_unit": "HU" if modality == "CT" else "input values",
            "components_removed": int((removed or {}).get(organ, 0)),
        }
        corners = [float(v) for v in np.concatenate(box)] if box is not None else [None] * 6
        row.update(dict(zip(BBOX, corners)))
        rows.append({column: row[column] for column in COLUMNS})
    return rows


def statistics_table(scans: list):
    """A pandas DataFrame (:data:`COLUMNS`) of the ``statistics`` rows of a report's ``scans``."""
    import pandas as pd

    rows = [row for scan in scans for row in (scan.get("statistics") or [])]
    return pd.DataFrame(rows, columns=COLUMNS)


def write_statistics_csv(scans: list, path) -> Path:
    """Write :func:`statistics_table` of ``scans`` to ``path`` (CSV, atomically); returns the path."""
    path = Path(path)
    with atomic_path(path, ".csv") as tmp:
        statistics_table(scans).to_csv(tmp, index=False, float_format="%.9g")
    return path

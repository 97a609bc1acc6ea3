"""Content fingerprints: the same scan recognised whatever file it is stored in.

A scan is reoriented to the canonical layout (so LPS/RAS storage, flipped axes and DICOM slice order
do not matter), averaged down to a fixed ``16 × 32 × 32`` grid, quantised in 4096 steps of its own
range and hashed together with the canonical size and spacing (0.01 mm). NIfTI, gzipped NIfTI, NRRD
and a DICOM series of the same voxels give the same digest; header-only changes (description, origin,
qform/sform codes) do not change it; a different scan does.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import torch
import torch.nn.functional as F

from liverwild.io import Geometry, Reorientation

THUMBNAIL = (16, 32, 32)
LEVELS = 4096


def content_digest(array: np.ndarray, geometry: Geometry) -> str:
    """16-hex-digit digest of a scan's content (``array`` in stored ``(z, y, x)`` layout)."""
    reorient = Reorientation.from_geometry(geometry)
    canonical = np.ascontiguousarray(reorient.to_canonical(array), dtype=np.float32)
    canonical_geometry = reorient.canonical_geometry(geometry)
    size = list(canonical_geometry.size)
    spacing = [round(float(s), 2) for s in canonical_geometry.spacing]
    with torch.no_grad():
        thumb = F.adaptive_avg_pool3d(torch.from_numpy(canonical)[None, None], THUMBNAIL)[0, 0].double().numpy()
    lo, hi = float(thumb.min()), float(thumb.max())
    q = np.round((thumb - lo) / max(hi - lo, 1e-12) * (LEVELS - 1)).astype("<u2")
    header = json.dumps({"size": size, "spacing": spacing, "range": [round(lo, 1), round(hi, 1)]}, sort_keys=True)
    return hashlib.sha256(header.encode() + q.tobytes()).hexdigest()[:16]


def duplicates(target: dict, source: dict) -> dict:
    """``{source case: target case}`` for source cases whose digest equals a target case's.

    ``target``/``source``: ``{case: digest}``.
    """
    by_digest: dict = {}
    for case, digest in target.items():
        by_digest.setdefault(digest, case)
    return {case: by_digest[digest] for case, digest in source.items() if digest in by_digest}

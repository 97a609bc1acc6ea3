"""Content fingerprints: the same scan recognised whatever file it is stored in.

A scan is reoriented to the canonical layout (so LPS/RAS storage, flipped axes and DICOM slice order
do not matter), averaged down to a fixed ``16 × 32 × 32`` grid, quantised in 4096 steps of its own
range and hashed together with the canonical size and spacing (0.01 mm). NIfTI, gzipped NIfTI, NRRD
and a DICOM series of the same voxels give the same digest; header-only changes (description, origin,
qform/sform codes) do not change it; a different scan does.

*Slice digests* recognise a copy that was cropped along z or shifted in intensity (HU stored with an
offset): each canonical axial slice is quantised in 4096 steps of its own range (so a constant offset, or
a positive scale, leaves it unchanged) and hashed; constant slices are skipped. Only the digests that are
0 modulo :data:`SLICE_SAMPLING` are kept — a choice made by the content, so a copy and its crops keep the
same ones — which keeps ``dataset_fingerprint.json`` small. Two scans sharing :data:`MIN_SHARED_SLICES`
kept digests share slices. Not recognised: in-plane crops, resampling, re-quantisation.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from liverwild.io import Geometry, Reorientation

THUMBNAIL = (16, 32, 32)
LEVELS = 4096
SLICE_SAMPLING = 4  # a slice digest is kept when it is 0 modulo this (about one slice in four)
MIN_SHARED_SLICES = 2  # kept slice digests two scans must share to be called overlapping


def content_digest(array: np.ndarray, geometry: Geometry) -> str:
    """16-hex-digit digest of a scan's content (``array`` in stored ``(z, y, x)`` layout)."""
    reorient = Reorientation.from_geometry(geometry)
    canonical = np.ascontiguousarray(reorient.to_canonical(array), dtype=np.float32)
    canonical_geometry = reorient.canonical_geometry(geometry)
    size = list(canonical_geometry.size)
    spacing = [round(float(s), 2) for s in canonical_geometry.spacing]
    import torch  # here, not at the top: prediction imports this module through body_mask without torch
    import torch.nn.functional as F

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


def slice_digests(array: np.ndarray, geometry: Geometry) -> list:
    """Sorted 12-hex-digit digests of the scan's non-constant canonical axial slices, each quantised in
    its own range; only those 0 modulo :data:`SLICE_SAMPLING` are kept (module docstring)."""
    canonical = Reorientation.from_geometry(geometry).to_canonical(array)
    kept = set()
    for plane in canonical:
        values = np.asarray(plane, dtype=np.float64)
        lo, hi = float(values.min()), float(values.max())
        if hi <= lo:
            continue
        q = np.round((values - lo) / (hi - lo) * (LEVELS - 1)).astype("<u2")
        digest = hashlib.sha256(str(q.shape).encode() + q.tobytes()).hexdigest()[:12]
        if int(digest, 16) % SLICE_SAMPLING == 0:
            kept.add(digest)
    return sorted(kept)


def shared_slices(target: dict, source: dict, at_least: int = MIN_SHARED_SLICES) -> dict:
    """``{source case: (target case, shared slice digests)}`` for source cases sharing at least
    ``at_least`` slice digests with one target case (the one sharing most). ``target``/``source``:
    ``{case: [slice digests]}``."""
    owners: dict = {}
    for case, digests in target.items():
        for digest in digests:
            owners.setdefault(digest, set()).add(case)
    found = {}
    for case, digests in source.items():
        counts: dict = {}
        for digest in digests:
            for owner in owners.get(digest, ()):
                counts[owner] = counts.get(owner, 0) + 1
        if counts:
            best = max(sorted(counts), key=lambda c: counts[c])
            if counts[best] >= at_least:
                found[case] = (best, counts[best])
    return found

"""Dataset fingerprint: what the scans of one raw dataset look like.

Written to ``$LW_preprocessed/<Name>/dataset_fingerprint.json``. Per case: array shape, spacing,
orientation code, slice count, the canonical slice range holding liver, intensity statistics inside
the body (percentiles 0.5/2/50/98/99.5, mean, s.d.), a content digest and slice digests
(:mod:`.content`) that recognise the same scan in another dataset or file format, cropped along z or
intensity-shifted. Per dataset: the modality and aggregates (median shape and spacing, medians of the
per-case statistics). Intensities are HU for CT and arbitrary
units for MR; the body is voxels above −300 HU (CT) or above an Otsu threshold (MR), largest component.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from liverwild.atomic import write_json_atomic
from liverwild.datasets import case_files, load_dataset_json
from liverwild.errors import LiverwildError
from liverwild.io import Reorientation, check_not_constant, read_aligned_label, read_image
from liverwild.labelling import fill_holes, label
from liverwild.parallel import bounded_imap

from .content import content_digest, slice_digests

PERCENTILES = (0.5, 2.0, 50.0, 98.0, 99.5)
CT_BODY_THRESHOLD = -300.0


def body_mask(image: np.ndarray, modality: str) -> np.ndarray:
    """Boolean ``(z, y, x)`` mask of the patient (computed on a 2× subsampled grid for speed).

    CT: voxels above −300 HU in the largest connected component (lungs and gas excluded). MR: the
    largest component above half the Otsu threshold, holes filled slice by slice (dark tissue such as
    suppressed fat or flow voids belongs to the body).
    """
    small = image[::2, ::2, ::2]
    if modality == "CT":
        mask = small > CT_BODY_THRESHOLD
    else:
        from skimage.filters import threshold_otsu

        mask = small > 0.5 * threshold_otsu(small)
    labels, n = label(mask, full=False)  # face-connected, as SciPy's default
    if n > 1:
        mask = labels == int(np.argmax(np.bincount(labels[labels > 0])))
    if modality != "CT":
        mask = np.stack([fill_holes(m) for m in mask])
    full = np.repeat(np.repeat(np.repeat(mask, 2, 0), 2, 1), 2, 2)[: image.shape[0], : image.shape[1], : image.shape[2]]
    if modality == "CT":
        full &= image > CT_BODY_THRESHOLD
    return full


def intensity_stats(values: np.ndarray) -> dict:
    values = values.astype(np.float64, copy=False)
    pct = np.percentile(values, PERCENTILES) if values.size else [float("nan")] * len(PERCENTILES)
    out = {f"p{p:g}": float(v) for p, v in zip(PERCENTILES, pct)}
    out["mean"] = float(values.mean()) if values.size else float("nan")
    out["std"] = float(values.std()) if values.size else float("nan")
    return out


def extract_case_fingerprint(image_path, label_path, modality: str, allowed_labels=None) -> dict:
    """Fingerprint of one case. Raises :class:`LiverwildError` (naming the file) on bad input, including
    label values that ``allowed_labels`` (dataset.json's) does not define."""
    image = read_image(image_path)
    check_not_constant(image)
    label = read_aligned_label(label_path, image)
    if allowed_labels is not None:
        unknown = sorted(set(np.unique(label.array).tolist()) - set(allowed_labels))
        if unknown:
            raise LiverwildError(
                f"{label_path}: holds label values {unknown} that dataset.json does not define "
                f"(labels: {sorted(allowed_labels)})"
            )
    reorient = Reorientation.from_geometry(image.geometry)
    canonical_label = reorient.to_canonical(label.array) > 0
    liver_slices = np.flatnonzero(canonical_label.any(axis=(1, 2)))
    body = body_mask(image.array, modality)
    liver = label.array > 0
    canonical_geometry = reorient.canonical_geometry(image.geometry)
    return {
        "image": str(image_path),
        "label": str(label_path),
        "shape_zyx": list(image.array.shape),
        "spacing_xyz": list(image.geometry.spacing),
        "canonical_spacing_xyz": list(canonical_geometry.spacing),
        "orientation": image.geometry.orientation_code(),
        "n_slices": int(canonical_label.shape[0]),
        "liver_slice_range": [int(liver_slices[0]), int(liver_slices[-1])] if liver_slices.size else None,
        "liver_voxels": int(liver.sum()),
        "intensity_body": intensity_stats(image.array[body]),
        "intensity_liver": intensity_stats(image.array[liver]),
        "body_fraction": float(body.mean()),
        "content_digest": content_digest(image.array, image.geometry),
        "slice_digests": slice_digests(image.array, image.geometry),
    }


def _case_job(args):
    image_path, label_path, modality, allowed = args
    try:
        return extract_case_fingerprint(image_path, label_path, modality, allowed), None
    except LiverwildError as exc:
        return None, str(exc)


def aggregate(cases: dict, modality: str) -> dict:
    good = list(cases.values())
    if not good:
        return {"modality": modality, "n_cases": 0}

    def median(key_fn):
        return [float(v) for v in np.median(np.array([key_fn(c) for c in good], dtype=float), axis=0)]

    stats = {}
    for region in ("intensity_body", "intensity_liver"):
        keys = good[0][region].keys()
        stats[region] = {k: float(np.nanmedian([c[region][k] for c in good])) for k in keys}
    return {
        "modality": modality,
        "n_cases": len(good),
        "median_shape_zyx": median(lambda c: c["shape_zyx"]),
        "median_canonical_spacing_xyz": median(lambda c: c["canonical_spacing_xyz"]),
        "total_slices": int(sum(c["n_slices"] for c in good)),
        "median_intensity_body": stats["intensity_body"],
        "median_intensity_liver": stats["intensity_liver"],
        "median_ratio_p99.5_to_p50_body": float(
            np.median([c["intensity_body"]["p99.5"] / max(abs(c["intensity_body"]["p50"]), 1e-6) for c in good])
        ),
    }


def _signature(image_path, label_path):
    try:
        return [[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in (Path(image_path), Path(label_path))]
    except FileNotFoundError:
        return None


def extract_fingerprint(
    raw_dataset_folder, workers: int = 1, progress: bool = True, previous: dict | None = None
) -> dict:
    """Fingerprint of every case in a raw dataset. Cases that fail are listed under ``failed``
    with their one-line reason; the others are measured. Cases of a ``previous`` fingerprint whose
    files are unchanged (same size and modification time) are reused, not read again."""
    from tqdm import tqdm

    folder = Path(raw_dataset_folder)
    info = load_dataset_json(folder)
    cases, failed, todo = {}, {}, []
    old = (previous or {}).get("cases", {})
    for case in info.cases:
        image_path, label_path = case_files(folder, info, case)
        signature = _signature(image_path, label_path)
        if (
            case in old
            and signature is not None
            and old[case].get("signature") == signature
            and "slice_digests" in old[case]  # fingerprints from before slice digests are measured again
        ):
            cases[case] = old[case]
        else:
            todo.append((case, (image_path, label_path, info.modality, sorted(set(info.labels.values()))), signature))
    bar = tqdm(total=len(todo), desc=f"fingerprint {info.name}", unit="case", disable=not progress or not todo)
    for (case, _, signature), (result, error) in zip(todo, bounded_imap(_case_job, [j for _, j, _ in todo], workers)):
        if error:
            failed[case] = error
        else:
            cases[case] = {**result, "signature": signature}
        bar.update()
    bar.close()
    cases = {c: cases[c] for c in info.cases if c in cases}
    return {
        "dataset": info.name,
        "modality": info.modality,
        "raw_folder": str(folder),
        "aggregate": aggregate(cases, info.modality),
        "cases": cases,
        "failed": failed,
    }


def save_fingerprint(fingerprint: dict, preprocessed_dataset_folder) -> Path:
    return write_json_atomic(Path(preprocessed_dataset_folder) / "dataset_fingerprint.json", fingerprint)


def load_fingerprint(preprocessed_dataset_folder) -> dict:
    path = Path(preprocessed_dataset_folder) / "dataset_fingerprint.json"
    if not path.is_file():
        raise LiverwildError(f"{path}: missing; run lw_plan_and_preprocess -d {Path(preprocessed_dataset_folder).name}")
    return json.loads(path.read_text(encoding="utf-8"))

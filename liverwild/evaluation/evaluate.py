"""Evaluate prediction folders against reference folders, and compare two evaluations."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic import atomic_path, write_json_atomic
from ..errors import LiverwildError
from ..io import image_suffix, read_label
from ..log import get_logger
from ..revision import provenance_fields
from .metrics import METRICS, all_metrics, summarize

logger = get_logger(__name__)


def case_name(path) -> str:
    """'case_0000.nii.gz' → 'case'; 'case.nrrd' → 'case'."""
    name = Path(path).name
    name = name[: -len(image_suffix(name))] if image_suffix(name) else name
    return name[:-5] if name.endswith("_0000") else name


def _files_by_case(folder, skip_probabilities: bool) -> tuple[dict, dict]:
    """``({case: file}, {case: reason})`` of a folder's image files; a case with two files (``e.nii`` and
    ``e_0000.nii.gz``, ``x.nii`` and ``x.nii.gz``) is a clash, not silently one of them."""
    found: dict = {}
    for p in sorted(Path(folder).iterdir()):
        if image_suffix(p) and not p.name.startswith("."):
            if not (skip_probabilities and case_name(p).endswith("_prob")):
                found.setdefault(case_name(p), []).append(p)
    clashes = {
        case: f"{folder}: case {case} has {len(files)} files ({', '.join(f.name for f in files)}); keep one"
        for case, files in found.items()
        if len(files) > 1
    }
    return {case: files[0] for case, files in found.items() if case not in clashes}, clashes


def match_cases(pred_dir, ref_dir) -> tuple:
    """``({case: (pred path, ref path)}, missing predictions, predictions without reference, {case: reason}
    for cases with two files on either side)``."""
    preds, pred_clashes = _files_by_case(pred_dir, skip_probabilities=True)
    refs, ref_clashes = _files_by_case(ref_dir, skip_probabilities=False)
    clashes = {**ref_clashes, **pred_clashes}
    common = {c: (preds[c], refs[c]) for c in sorted(set(preds) & set(refs)) if c not in clashes}
    missing = sorted(set(refs) - set(preds) - set(clashes))
    return common, missing, sorted(set(preds) - set(refs) - set(clashes)), clashes


PROTOCOLS = {"native": None, "multi-dg": 128, "single-dg": 192}
"""Evaluation protocols: ``native`` (the scan's own grid, the default), and the paper's: masks compared
on canonical axial slices resized to 128 × 128 (multi-source DG) or 192 × 192 (single-source CT→MR)."""


def inplane_resampled(mask: np.ndarray, geometry, size: int) -> tuple:
    """Boolean mask → (canonical ``(z, size, size)`` mask, its ``(z, y, x)`` spacing in mm).

    Axial slices are resized with nearest-neighbour sampling; the through-plane grid is kept.
    """
    import torch
    import torch.nn.functional as F

    from ..io import Reorientation

    reorient = Reorientation.from_geometry(geometry)
    canonical = np.ascontiguousarray(reorient.to_canonical(mask), dtype=np.uint8)
    sx, sy, sz = reorient.canonical_geometry(geometry).spacing
    nz, ny, nx = canonical.shape
    t = torch.from_numpy(canonical)[:, None].float()
    out = F.interpolate(t, size=(size, size), mode="nearest-exact")[:, 0].numpy() > 0.5
    return out, (sz, sy * ny / size, sx * nx / size)


def _read_pair(pred_path, ref_path, protocol: str) -> tuple:
    if protocol not in PROTOCOLS:
        raise LiverwildError(f"unknown evaluation protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")
    pred = read_label(pred_path)
    ref = read_label(ref_path)
    diffs = pred.geometry.differences(ref.geometry)
    if diffs:
        raise LiverwildError(f"{pred_path}: geometry differs from the reference {ref_path}: " + "; ".join(diffs))
    return pred, ref


def _metrics(p: np.ndarray, r: np.ndarray, geometry, protocol: str) -> dict:
    size = PROTOCOLS[protocol]
    if size is None:
        return all_metrics(p, r, tuple(reversed(geometry.spacing)))
    p, spacing_zyx = inplane_resampled(p, geometry, size)
    r, _ = inplane_resampled(r, geometry, size)
    return all_metrics(p, r, spacing_zyx)


def evaluate_case(pred_path, ref_path, labels=(1,), protocol: str = "native") -> dict:
    """Metrics of one case (prediction > 0 against the reference's ``labels``); ``protocol`` is a key of
    :data:`PROTOCOLS`."""
    pred, ref = _read_pair(pred_path, ref_path, protocol)
    return _metrics(pred.array > 0, np.isin(ref.array, labels), ref.geometry, protocol)


def evaluate_case_organs(pred_path, ref_path, classes: dict, protocol: str = "native") -> list[dict]:
    """Metrics of every organ of one case: ``classes`` is ``{organ: (prediction values, reference
    values)}`` (:func:`liverwild.evaluation.organs.match_classes`). An organ absent from both the
    prediction and the reference (a liver dome cut off, an esophagus outside the field of view) has no
    row: there is nothing to measure, and counting it as Dice 1 would flatter the mean. Returns rows
    ``{"organ": name, metric: value, ...}``."""
    pred, ref = _read_pair(pred_path, ref_path, protocol)
    rows = []
    for organ, (pred_values, ref_values) in classes.items():
        p, r = np.isin(pred.array, pred_values), np.isin(ref.array, ref_values)
        if p.any() or r.any():
            rows.append({"organ": organ, **_metrics(p, r, ref.geometry, protocol)})
    return rows


def evaluate_folders(
    pred_dir,
    ref_dir,
    *,
    labels=(1,),
    output_csv=None,
    progress: bool = True,
    protocol: str = "native",
    classes: dict | None = None,
) -> tuple:
    """Evaluate every prediction against its reference — what ``lw_evaluate -p -r`` runs.

    Args:
        pred_dir, ref_dir: folders of masks named alike (``<case>.nii.gz``); each reference must have
            a prediction with its geometry.
        labels: label values counted as foreground (liver: 1).
        output_csv: write the per-case table there, and ``<name>.summary.json`` beside it.
        progress: show a progress bar.
        protocol: ``"native"`` grid (default), ``"multi-dg"`` (128² in-plane, as the paper) or
            ``"single-dg"`` (192²).
        classes: multi-label evaluation: ``{organ: (prediction values, reference values)}``
            (:func:`~liverwild.evaluation.organs.match_classes`); replaces ``labels``.

    Returns:
        ``(table, summary, failures)``: a DataFrame with one row per case (Dice, IoU, RAVD in %, ASSD,
        MSSD and HD95 in mm) — per case and organ with ``classes`` —, mean ± s.d. per metric (with
        ``classes``: of each case's mean over its organs, and per organ under ``organs``), and
        ``{case: reason}`` for cases that could not be evaluated (missing prediction, geometry mismatch;
        one case's error never stops the others).

    Example::

        from liverwild.evaluation import evaluate_folders
        table, summary, failures = evaluate_folders("masks/", "labelsTr/")
        print(summary["dice"]["mean"])
    """
    import pandas as pd
    from tqdm import tqdm

    pairs, missing, extra, clashes = match_cases(pred_dir, ref_dir)
    if not pairs and not clashes:
        raise LiverwildError(
            f"no case of {pred_dir} has a reference in {ref_dir} (names are matched without "
            "the _0000 channel suffix and the file ending)"
        )
    rows, failures = [], {}
    for case, (p, r) in tqdm(pairs.items(), desc="evaluate", unit="case", disable=not progress or len(pairs) < 3):
        try:
            if classes:
                rows += [{"case": case, **row} for row in evaluate_case_organs(p, r, classes, protocol)]
            else:
                rows.append({"case": case, **evaluate_case(p, r, labels, protocol)})
        except LiverwildError as exc:
            failures[case] = str(exc)
            logger.warning(f"FAILED {exc}")
    for case in missing:
        failures[case] = f"{case}: no prediction in {pred_dir}"
        logger.warning(f"FAILED {failures[case]}")
    for case, reason in clashes.items():
        failures[case] = reason
        logger.warning(f"FAILED {reason}")
    columns = ["case", *(["organ"] if classes else []), *METRICS, "volume_pred_ml", "volume_ref_ml"]
    table = pd.DataFrame(rows, columns=columns)
    per_organ = {}
    if classes:  # the headline is each case's mean over its organs; the organs have their own summaries
        per_organ = {o: summarize([r for r in rows if r["organ"] == o]) for o in classes}
        means = table.groupby("case")[list(METRICS)].mean().reset_index().to_dict("records")
        headline = summarize(means)
    else:
        headline = summarize(rows)
    summary = {
        **headline,
        **({"organs": per_organ, "classes": {o: list(map(list, v)) for o, v in classes.items()}} if classes else {}),
        "prediction_folder": str(pred_dir),
        "reference_folder": str(ref_dir),
        "labels": list(labels) if not classes else None,
        "protocol": protocol,
        "inplane_size": PROTOCOLS[protocol],
        "units": {"ravd": "percent", "assd_mm": "mm", "mssd_mm": "mm", "hd95_mm": "mm (MONAI definition)"},
        "failed": failures,
        "predictions_without_reference": extra,
        **provenance_fields(),
    }
    if output_csv:
        with atomic_path(output_csv, ".csv") as tmp:
            table.to_csv(tmp, index=False, float_format="%.6g")
        write_json_atomic(Path(output_csv).with_suffix(".summary.json"), summary)
    return table, summary, failures


def compare_evaluations(csv_a, csv_b, names=None) -> tuple:
    """Paired t-test per metric over the cases both CSVs share. Returns (rows, Markdown table)."""
    import pandas as pd
    from scipy import stats

    a, b = pd.read_csv(csv_a), pd.read_csv(csv_b)
    names = names or (Path(csv_a).stem, Path(csv_b).stem)
    if ("organ" in a.columns) != ("organ" in b.columns):
        organs, liver = (csv_a, csv_b) if "organ" in a.columns else (csv_b, csv_a)
        raise LiverwildError(
            f"{organs} scores organs, {liver} one mask per case: their rows do not pair (compare organ "
            "evaluations with organ evaluations)"
        )
    key = ["case", "organ"] if "organ" in a.columns else ["case"]
    for table, name in ((a, csv_a), (b, csv_b)):
        if table.duplicated(subset=key).any():
            raise LiverwildError(f"{name}: several rows for one {' and '.join(key)}; rows would pair wrongly")
    merged = a.merge(b, on=key, suffixes=("_a", "_b"), validate="one_to_one")
    if len(merged) < 2:
        raise LiverwildError(f"{csv_a} and {csv_b} share {len(merged)} case(s); a paired test needs at least 2")
    tests = [(metric, merged) for metric in METRICS]
    if "organ" in key:  # multi-label: every metric over (case, organ) pairs, then Dice per organ
        tests += [(f"dice[{organ}]", part) for organ, part in merged.groupby("organ", sort=False)]
    rows: list[dict] = []
    for metric, part in tests:
        column = metric.split("[")[0]
        x, y = part[f"{column}_a"].to_numpy(float), part[f"{column}_b"].to_numpy(float)
        ok = np.isfinite(x) & np.isfinite(y)
        p = float(stats.ttest_rel(x[ok], y[ok]).pvalue) if ok.sum() >= 2 and np.any(x[ok] != y[ok]) else 1.0
        rows.append(
            {
                "metric": metric,
                "n": int(ok.sum()),
                "mean_a": float(x[ok].mean()),
                "std_a": float(x[ok].std()),
                "mean_b": float(y[ok].mean()),
                "std_b": float(y[ok].std()),
                "p_value": p,
            }
        )
    lines = [f"| metric | {names[0]} | {names[1]} | p (paired t-test) |", "|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['metric']} | {r['mean_a']:.3f} ± {r['std_a']:.3f} | {r['mean_b']:.3f} ± {r['std_b']:.3f} "
            f"| {r['p_value']:.3g} |"
        )
        if r["metric"] == "mssd_mm":  # the paper's tables give MSSD in cm
            lines.append(
                f"| mssd_cm | {r['mean_a'] / 10:.3f} ± {r['std_a'] / 10:.3f} | {r['mean_b'] / 10:.3f} ± "
                f"{r['std_b'] / 10:.3f} | {r['p_value']:.3g} |"
            )
    pairs = "(case, organ) pairs" if "organ" in key else "cases"
    lines.append(f"\n{rows[0]['n']} paired {pairs}; mean ± population s.d. across scans.")
    return rows, "\n".join(lines)

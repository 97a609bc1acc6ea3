"""Named folds for domain generalisation, in ``$LW_preprocessed/splits.json``.

Each leave-one-dataset-out fold ``loo_<Target>`` trains on every other dataset (the *sources*) and
never touches the target. Per source, a seeded set of held-out cases (5 by default, at most half of
the source) is used for validation (early stopping / learning-rate schedule), the rest for training::

    {"version": 1, "seed": 0, "val_per_source": 5,
     "folds": {"loo_PhantomT2MR": {"sources": [...], "target": "PhantomT2MR",
                                    "train": {"PhantomNativeCT": [...], ...},
                                    "val": {"PhantomNativeCT": [...], ...},
                                    "test": {"PhantomT2MR": [...]}, "auto": true}}}

Folds a user adds (or edits and marks ``"auto": false``) are kept when splits are regenerated.

**No leaks.** Two rules keep a fold's target out of its training and validation data:

- *content*: every case has a content digest and slice digests (``planning.content``, in
  ``dataset_fingerprint.json``); a source case whose digest equals a target case's, or that shares
  slices with one (a copy cropped along z or stored with an intensity offset), is removed from the
  fold, whatever its file format or name;
- *declared*: a dataset whose ``dataset.json`` says ``"contained_in": ["LiTS"]`` (some or all of its
  scans are LiTS scans: IRCADb, MSD Task03, AbdomenCT-1K) is not a source of ``loo_LiTS``, and is not
  a target while LiTS is a source.

Every removal is listed in the fold's ``excluded`` entry with its reason. The declared rule rests on
names: ``containment`` (:mod:`.containment`) records, per declaring dataset, containers that are not
preprocessed and what the content digests found instead, with a warning when they cannot rule out
shared scans.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from liverwild.atomic import write_json_atomic
from liverwild.datasets import load_dataset_json
from liverwild.errors import LiverwildError
from planning.fingerprint import load_fingerprint
from planning.plans import load_plans

from .cache import list_cases

SPLITS_VERSION = 1


def held_out(cases: list, n: int, seed: int, name: str) -> list:
    """Seeded choice of ``min(n, len(cases) // 2)`` validation cases (at least one when possible)."""
    k = min(n, len(cases) // 2) if len(cases) > 1 else 0
    rng = np.random.default_rng([seed, *(ord(c) for c in name)])
    return sorted(rng.choice(sorted(cases), size=k, replace=False).tolist()) if k else []


def make_loo_folds(
    datasets: dict,
    val_per_source: int = 5,
    seed: int = 0,
    contained_in: dict | None = None,
    digests: dict | None = None,
    slices: dict | None = None,
) -> dict:
    """``datasets``: name → case list; ``contained_in``: name → declared containing datasets;
    ``digests``: name → {case: content digest}; ``slices``: name → {case: slice digests}. Returns
    {fold name: fold} for leave-one-dataset-out."""
    from planning.content import duplicates, shared_slices

    contained_in, digests, slices = contained_in or {}, digests or {}, slices or {}
    names = sorted(datasets)
    val = {n: held_out(datasets[n], val_per_source, seed, n) for n in names}
    folds = {}
    for target in names:
        candidates = [n for n in names if n != target]
        if not candidates or any(s in contained_in.get(target, []) for s in candidates):
            continue
        excluded = {
            s: {"*": f"declared contained in {target} (dataset.json contained_in)"}
            for s in candidates
            if target in contained_in.get(s, [])
        }
        sources = [s for s in candidates if s not in excluded]
        if not sources:
            continue
        for s in sources:
            same = duplicates(digests.get(target, {}), digests.get(s, {}))
            why = {c: f"same content as {target}/{t} (content digest {digests[s][c]})" for c, t in same.items()}
            for c, (t, n) in shared_slices(slices.get(target, {}), slices.get(s, {})).items():
                why.setdefault(c, f"shares {n} slices with {target}/{t} (slice digests: a cropped or shifted copy)")
            if why:
                excluded[s] = dict(sorted(why.items()))
        keep = {s: [c for c in sorted(datasets[s]) if c not in excluded.get(s, {})] for s in sources}
        folds[f"loo_{target}"] = {
            "sources": sources,
            "target": target,
            "train": {s: [c for c in keep[s] if c not in val[s]] for s in sources},
            "val": {s: [c for c in val[s] if c in keep[s]] for s in sources},
            "test": {target: sorted(datasets[target])},
            "excluded": excluded,
            "auto": True,
        }
    return folds


def pooled_fold(datasets: dict, val_per_source: int = 5, seed: int = 0) -> dict:
    """One fold that trains on every dataset and has no target: for a model meant only for data it
    never saw (liverwild's default model). Validation cases are held out per dataset as in LOO folds."""
    names = sorted(datasets)
    val = {n: held_out(datasets[n], val_per_source, seed, n) for n in names}
    return {
        "sources": names,
        "target": None,
        "train": {n: [c for c in sorted(datasets[n]) if c not in val[n]] for n in names},
        "val": val,
        "test": {},
        "auto": False,
    }


def add_fold(path, name: str, fold: dict) -> dict:
    """Add or replace the user fold ``name`` in ``splits.json`` (kept when automatic folds are refreshed)."""
    path = Path(path)
    splits: dict = load_splits(path) if path.is_file() else {"version": SPLITS_VERSION, "folds": {}}
    splits.setdefault("folds", {})[name] = {**fold, "auto": False}
    write_json_atomic(path, splits)
    return splits


def update_splits(
    path,
    datasets: dict,
    val_per_source: int = 5,
    seed: int = 0,
    contained_in: dict | None = None,
    digests: dict | None = None,
    slices: dict | None = None,
) -> dict:
    """Write/refresh ``splits.json``: automatic folds are regenerated, user folds kept; ``containment``
    checks the declared containers against the datasets present (:mod:`.containment`)."""
    from .containment import containment_report

    path = Path(path)
    splits: dict = load_splits(path) if path.is_file() else {"version": SPLITS_VERSION, "folds": {}}
    kept = {k: v for k, v in splits.get("folds", {}).items() if not v.get("auto", False)}
    auto = make_loo_folds(datasets, val_per_source, seed, contained_in, digests, slices)
    containment = containment_report(datasets, contained_in or {}, digests or {}, slices or {})
    splits.update(
        {
            "version": SPLITS_VERSION,
            "seed": seed,
            "val_per_source": val_per_source,
            "containment": containment,
            "folds": {**auto, **kept},
        }
    )
    write_json_atomic(path, splits)
    return splits


def load_splits(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise LiverwildError(f"{path}: missing; run lw_plan_and_preprocess -d <datasets> first")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise LiverwildError(f"{path}: not valid JSON ({exc})") from exc


def get_fold(path, name: str) -> dict:
    folds = load_splits(path).get("folds", {})
    if name not in folds:
        raise LiverwildError(f"unknown fold {name!r} in {path}; available: {', '.join(sorted(folds)) or 'none'}")
    return folds[name]


def refresh_splits(
    preprocessed_root: Path, raw_root: Path | None, val_per_source: int | None = None, seed: int | None = None
) -> dict:
    """Leave-one-dataset-out folds over every dataset with plans and a cache in ``preprocessed_root``,
    free of target scans (content digests from the fingerprints, declared containment from dataset.json).
    A dataset's cases are those of its 2D cache, or of its ``3d`` cache when it has no 2D one, that its
    raw ``dataset.json`` still lists (when the raw dataset is there). ``val_per_source`` and ``seed`` None:
    the existing ``splits.json``'s (5 and 0 for new splits), so that re-planning one dataset never moves
    another fold's validation cases."""
    path = Path(preprocessed_root) / "splits.json"
    stored = load_splits(path) if path.is_file() else {}
    val_per_source = int(stored.get("val_per_source", 5)) if val_per_source is None else val_per_source
    seed = int(stored.get("seed", 0)) if seed is None else seed
    datasets, contained, digests, slices = {}, {}, {}, {}
    for plans_path in sorted(Path(preprocessed_root).glob("*/plans.json")):
        plans = load_plans(plans_path)
        cases = list_cases(plans_path.parent / plans.data_identifier())
        if not cases and plans.config_3d is not None:  # a dataset cached for the 3d configuration only
            cases = list_cases(plans_path.parent / plans.data_identifier_3d())
        raw = Path(raw_root) / plans.dataset if raw_root is not None else None
        if raw is not None and (raw / "dataset.json").is_file():  # a case removed from the raw data is gone
            listed = set(load_dataset_json(raw).cases)
            cases = [case for case in cases if case in listed]
        if cases:
            datasets[plans.dataset] = cases
        if (plans_path.parent / "dataset_fingerprint.json").is_file():
            fingerprint = load_fingerprint(plans_path.parent)
            cases_fp = fingerprint["cases"].items()
            digests[plans.dataset] = {c: v["content_digest"] for c, v in cases_fp if "content_digest" in v}
            slices[plans.dataset] = {c: v["slice_digests"] for c, v in cases_fp if "slice_digests" in v}
        if raw_root is not None and (Path(raw_root) / plans.dataset / "dataset.json").is_file():
            extra = load_dataset_json(Path(raw_root) / plans.dataset).extra
            contained[plans.dataset] = extra.get("contained_in", [])
    return update_splits(path, datasets, val_per_source, seed, contained, digests, slices)

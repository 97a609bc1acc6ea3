"""Which label values are which organ, on both sides of a multi-label evaluation.

A multi-organ prediction (a ``3d`` model's label map) and a reference (a dataset's organ maps) rarely
number organs alike: liverwild's 3d models write ``liver`` as 4 when their classes are spleen,
left kidney, gallbladder, liver, …; BTCV's maps have liver = 6. :func:`match_classes` pairs them by
organ name — ``{organ: (prediction values, reference values)}`` — from, in this order:

- explicit ``NAME=V[,V…]`` lists (``lw_evaluate --pred-labels / --ref-labels``);
- the prediction folder's ``prediction_report.json`` (its ``classes``, written by ``lw_predict``);
- the reference folder's dataset: ``<dataset>/labelsTr_organs`` is read through ``dataset.json``'s
  ``organ_labels`` (harmonised with :mod:`liverwild.datasets.organs`), ``<dataset>/labelsTr`` is the
  liver (value 1).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..datasets.format import ORGAN_FOLDER, load_dataset_json
from ..datasets.organs import ORGANS, class_values
from ..errors import LiverwildError


def parse_label_list(items) -> dict[str, list[int]]:
    """``["liver=6", "kidney=2,3"]`` → ``{"liver": [6], "kidney": [2, 3]}`` (a one-line error otherwise)."""
    out: dict[str, list[int]] = {}
    for item in items or []:
        name, sep, values = str(item).partition("=")
        try:
            out[name.strip()] = [int(v) for v in values.split(",") if v.strip()]
        except ValueError:
            out[name.strip()] = []
        if not sep or not name.strip() or not out[name.strip()]:
            raise LiverwildError(f"{item!r}: expected NAME=VALUE[,VALUE...], e.g. liver=6")
    return out


def prediction_classes(pred_dir) -> dict[str, list[int]]:
    """``{organ: [value]}`` of a prediction folder, from its ``prediction_report.json`` (``classes``)."""
    report = Path(pred_dir) / "prediction_report.json"
    if not report.is_file():
        raise LiverwildError(
            f"{report}: missing, so the predictions' label values are unknown; give them with --pred-labels "
            "NAME=VALUE ..."
        )
    classes = json.loads(report.read_text(encoding="utf-8")).get("classes") or {"liver": 1}
    return {name: [int(value)] for name, value in classes.items() if name != "background"}


def reference_classes(ref_dir) -> dict[str, list[int]]:
    """``{organ: [values]}`` of a reference folder inside a raw dataset (``labelsTr_organs`` through
    ``dataset.json``'s ``organ_labels``; ``labelsTr``: the liver)."""
    ref_dir = Path(ref_dir)
    dataset = ref_dir.parent
    if not (dataset / "dataset.json").is_file():
        raise LiverwildError(
            f"{ref_dir}: not inside a raw dataset (no {dataset / 'dataset.json'}), so its label values are "
            "unknown; give them with --ref-labels NAME=VALUE[,VALUE...] ..."
        )
    info = load_dataset_json(dataset)
    if ref_dir.name == info.extra.get("organ_label_folder", ORGAN_FOLDER):
        return class_values(info.extra.get("organ_labels"))
    if ref_dir.name == "labelsTr":
        return {"liver": [info.liver_value]}
    raise LiverwildError(
        f"{ref_dir}: neither labelsTr nor the organ maps of {dataset.name}; give the label values with --ref-labels"
    )


def match_classes(
    pred_dir, ref_dir, organs=None, pred_labels: dict | None = None, ref_labels: dict | None = None
) -> dict[str, tuple[list[int], list[int]]]:
    """``{organ: (prediction values, reference values)}`` for the ``organs`` asked for (default: every
    organ both sides have, in :data:`~liverwild.datasets.organs.ORGANS` order, then others by name)."""
    pred = pred_labels or prediction_classes(pred_dir)
    ref = ref_labels or reference_classes(ref_dir)
    shared = [o for o in ORGANS if o in pred and o in ref] + sorted(set(pred) & set(ref) - set(ORGANS))
    wanted = list(organs) if organs else shared
    missing = [o for o in wanted if o not in pred or o not in ref]
    if missing or not wanted:
        raise LiverwildError(
            f"organ(s) {', '.join(missing) or '(none shared)'} not on both sides: the predictions have "
            f"{', '.join(pred) or 'none'}, the references {', '.join(ref) or 'none'}"
        )
    return {o: (pred[o], ref[o]) for o in wanted}

"""Experiment report: per-scan results of every run → tables shaped like the paper's.

Dice table: one row per trainer (per seed for the ``seeds`` protocol), one column per target (per
source → target pair for single-source folds); a cell is
mean ± s.d. over the target's scans (pooled over seeds), followed by the two-sided paired t-test p-value
against the reference trainer over the same (seed, scan) pairs. The best mean of a column is bold only
where it is significantly better (p < 0.05) than every other row. The surface table gives ASSD (mm)
and MSSD (cm, as in the paper).

``organs-3d`` (per-organ results): per target, a Dice, an HD95 and an ASSD table shaped like the source
paper's Tables I–II — one row per trainer, one column per organ and a ``mean`` column (each scan's mean
over its organs); the same cells, p-values and bold rule (lower is better for distances).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import write_json_atomic
from ..revision import provenance_fields, version_line
from .measured import MEASURED, measurement_note, row_of, table_measurement
from .recipes import recipe_section, row_recipes
from .records import mismatch, read_run

ALPHA = 0.05


@dataclass
class Collected:
    """What a report is made of: the per-scan table of the runs that are the request's, those runs (as
    a plan), the runs left out with why, and which of the included runs are ``--quick`` smoke tests."""

    table: Any
    plan: Any  # the protocol's plan, restricted to the included runs
    excluded: dict = field(default_factory=dict)  # run key → why it is not in the tables
    quick: list = field(default_factory=list)  # keys of the included runs made with --quick
    measurement: dict = field(default_factory=dict)  # included run key → how it was measured (.measured.MEASURED)
    configs: dict = field(default_factory=dict)  # included run key → its trainer configuration (.recipes)


def collect(output: Path, plan, requested: dict) -> Collected:
    """The per-scan rows of the plan's finished runs whose ``run.json`` configuration hash is that of
    ``requested[run]`` (the configuration record the request makes, :mod:`.records`), as one DataFrame
    (also written to results.csv). A run that is missing, or was made with another configuration (or
    without a record), is excluded — listed, never mixed into the tables."""
    import pandas as pd

    from ..errors import LiverwildError

    frames, included, excluded, quick, measurement, configs = [], [], {}, [], {}, {}
    for run in plan.runs:
        folder = output / "runs" / run.fold / run.trainer / f"seed{run.seed}"
        meta = read_run(folder)
        why = mismatch(meta, requested[run]) if run in requested else ("not part of this request", None)
        if why is not None or meta is None:
            excluded[run.key] = why[0] if why else "not run"
            continue
        column = (
            meta["target"] if run.fold.startswith("loo_") else run.fold.removeprefix("single_").replace("_to_", " → ")
        )
        frames.append(
            pd.read_csv(folder / "results.csv").assign(fold=run.fold, target=column, trainer=run.trainer, seed=run.seed)
        )
        included.append(run)
        measurement[run.key] = {k: meta["configuration"].get(k) for k in MEASURED}
        configs[run.key] = meta["configuration"].get("config") or {}
        if meta["configuration"].get("quick"):
            quick.append(run.key)
    if not frames:
        raise LiverwildError(
            f"{output}: no run of {plan.name} is the one asked for ("
            + "; ".join(f"{k}: {v}" for k, v in excluded.items())
            + ")"
        )
    table = pd.concat(frames, ignore_index=True)
    table.to_csv(output / "results.csv", index=False, float_format="%.6g")
    return Collected(table, replace(plan, runs=included), excluded, quick, measurement, configs)


def paired_p(
    table, a: str, b: str, column: str, by: str = "trainer", metric: str = "dice", columns: str = "target"
) -> float:
    """Two-sided paired t-test of ``metric`` between rows ``a`` and ``b`` (of ``by``) in one column (a
    value of ``columns``), over the (seed, case) pairs both have (cases alone when the rows are seeds)."""
    from scipy import stats

    sub = table[table[columns] == column]
    index = ["seed", "case"] if by == "trainer" else ["case"]
    x = sub[sub[by] == a].set_index(index)[metric]
    y = sub[sub[by] == b].set_index(index)[metric]
    x, y = x.align(y, join="inner")
    ok = np.isfinite(x.to_numpy()) & np.isfinite(y.to_numpy())
    x, y = x[ok], y[ok]
    if len(x) < 2 or np.allclose(x.to_numpy(), y.to_numpy()):
        return 1.0
    return float(stats.ttest_rel(x.to_numpy(), y.to_numpy()).pvalue)


def metric_table(
    table,
    plan,
    metric: str = "dice",
    columns: str = "target",
    higher_is_better: bool = True,
    digits: int = 3,
    order: list | None = None,
) -> list:
    """Markdown lines: one row per ``plan.rows`` value, one column per value of ``columns`` (in ``order``,
    default sorted); cells mean ± s.d. of ``metric`` with the paired p-value against the reference; the
    best mean bold only where significantly better (p < 0.05) than every other row."""
    by = plan.rows
    rows = (
        sorted(table[by].unique(), key=lambda v: (v != plan.reference, str(v)))
        if by == "trainer"
        else sorted(table[by].unique())
    )
    heads = order or sorted(table[columns].unique())
    sign = 1.0 if higher_is_better else -1.0
    lines = [f"| {by} | " + " | ".join(heads) + " |", "|---|" + "---|" * len(heads)]
    best = {}
    for head in heads:
        means = {r: table[(table[columns] == head) & (table[by] == r)][metric].mean() for r in rows}
        top = max(means, key=lambda r: sign * means[r])
        others = [r for r in rows if r != top]
        best[head] = (
            top
            if others
            and all(
                paired_p(table, top, r, head, by, metric, columns) < ALPHA and sign * means[top] > sign * means[r]
                for r in others
            )
            else None
        )
    for r in rows:
        cells = []
        for head in heads:
            values = table[(table[columns] == head) & (table[by] == r)][metric]
            cell = f"{values.mean():.{digits}f} ± {values.std(ddof=0):.{digits}f}"
            if best[head] == r:
                cell = f"**{cell}**"
            if by == "trainer" and r != plan.reference:
                cell += f" (p = {paired_p(table, r, plan.reference, head, by, metric, columns):.2g})"
            cells.append(cell)
        label = f"{r} (reference)" if by == "trainer" and r == plan.reference else str(r)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def dice_table(table, plan) -> list:
    """The Dice table (Table 1's shape); the ``seeds`` protocol adds the spread of the seed means."""
    lines = metric_table(table, plan)
    if plan.rows == "seed":
        targets = sorted(table.target.unique())
        spread = [f"{table[table.target == t].groupby('seed').dice.mean().std(ddof=1):.3f}" for t in targets]
        lines.append("| s.d. of the seed means | " + " | ".join(spread) + " |")
    return lines


MEAN_ORGAN = "mean"  # the organ tables' last column: each scan's mean over its organs


def with_organ_means(table):
    """The per-(scan, organ) table plus one row per scan and run with ``organ = "mean"``: the mean of
    every metric over the scan's organs (Table I's "avg")."""
    import pandas as pd

    keys = ["fold", "target", "trainer", "seed", "case"]
    means = table.groupby(keys, sort=False)[["dice", "hd95_mm", "assd_mm"]].mean().reset_index()
    return pd.concat([table, means.assign(organ=MEAN_ORGAN)], ignore_index=True)


def organ_sections(table, plan, collected: Collected | None = None, tables: dict | None = None) -> list:
    """Per target: Dice, HD95 and ASSD per organ (and their mean), rows = trainers; with ``collected``,
    each table states how it was measured (also put in ``tables``: title → {row: measurement})."""
    from ..datasets.organs import ORGANS

    lines: list[str] = []
    full = with_organ_means(table)
    for target in sorted(table.target.unique()):
        sub = full[full.target == target]
        measured = table_measurement(plan, collected.measurement, set(sub.fold)) if collected else {}
        present = set(sub.organ)
        order = [o for o in ORGANS if o in present] + sorted(present - set(ORGANS) - {MEAN_ORGAN}) + [MEAN_ORGAN]
        for metric, title, higher, digits in (
            ("dice", "Dice", True, 3),
            ("hd95_mm", "HD95 (mm)", False, 2),
            ("assd_mm", "ASSD (mm)", False, 2),
        ):
            lines += [f"## {target}: {title} per organ", ""]
            if collected:
                lines += measurement_note(measured)
                if tables is not None:
                    tables[f"{target}: {title} per organ"] = measured
            lines += metric_table(sub, plan, metric, "organ", higher, digits, order)
            lines.append("")
        n = sub[sub.organ == MEAN_ORGAN].groupby("trainer").case.nunique()
        lines += [f"Scans per trainer: {', '.join(f'{t} {k}' for t, k in n.items())}.", ""]
    return lines


def surface_table(table, plan) -> list:
    by = plan.rows
    targets = sorted(table.target.unique())
    lines = [
        f"| {by} | " + " | ".join(f"{t} ASSD (mm) | {t} MSSD (cm)" for t in targets) + " |",
        "|---|" + "---|---|" * len(targets),
    ]
    for r in sorted(table[by].unique(), key=str):
        cells = []
        for target in targets:
            sub = table[(table.target == target) & (table[by] == r)]
            cells.append(f"{sub.assd_mm.mean():.2f} ± {sub.assd_mm.std(ddof=0):.2f}")
            cells.append(f"{sub.mssd_mm.mean() / 10:.2f} ± {sub.mssd_mm.std(ddof=0) / 10:.2f}")
        lines.append(f"| {r} | " + " | ".join(cells) + " |")
    return lines


def run_seconds(output: Path, run) -> dict:
    """Training seconds (sum of the epochs in the model's log) and prediction seconds per scan of one run."""
    import pandas as pd

    folder = output / "runs" / run.fold / run.trainer / f"seed{run.seed}"
    meta = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    log = Path(meta["model"]) / "log.csv"
    train = float(pd.read_csv(log)["epoch_seconds"].sum()) if log.is_file() else float("nan")
    prediction = json.loads((folder / "predictions" / "prediction_report.json").read_text(encoding="utf-8"))
    per_scan = prediction["seconds_total"] / max(prediction["n_ok"], 1)
    return {"train_s": train, "predict_s_per_scan": per_scan, "device": prediction.get("device_name", "")}


def timing_table(output: Path, plan) -> list:
    """Rows per trainer: mean training minutes per fold and prediction seconds per scan."""
    rows: dict = {}
    for run in plan.runs:
        rows.setdefault(run.trainer, []).append(run_seconds(output, run))
    lines = ["| trainer | training (min per run) | prediction (s per scan) |", "|---|---|---|"]
    for trainer, values in rows.items():
        train = np.mean([v["train_s"] for v in values]) / 60
        predict = np.mean([v["predict_s_per_scan"] for v in values])
        lines.append(f"| {trainer} | {train:.1f} | {predict:.2f} |")
    return lines


def quick_banner(collected: Collected) -> list:
    """Lines saying which rows hold ``--quick`` runs (none when no included run is one)."""
    if not collected.quick:
        return []
    plan = collected.plan
    quick = [r for r in plan.runs if r.key in collected.quick]
    rows = sorted({row_of(r, plan) for r in quick})
    return [
        f"**QUICK runs (--quick): a smoke test, not a result** — {len(quick)} of {len(plan.runs)} runs, in rows "
        + ", ".join(rows)
        + ": "
        + ", ".join(r.key for r in quick)
        + ".",
        "",
    ]


def excluded_section(collected: Collected) -> list:
    if not collected.excluded:
        return []
    lines = [
        "## Excluded runs",
        "",
        "Runs of the protocol that are not the ones asked for (re-run lw_experiment to redo them); not in the tables:",
        "",
    ]
    return lines + [f"- {key}: {why}" for key, why in collected.excluded.items()] + [""]


def write_report(output: Path, collected: Collected, meta: dict) -> dict:
    import platform

    import torch

    plan, table = collected.plan, collected.table
    tables: dict = {}  # table title → {row: how it was measured}, for report.json
    recipes = row_recipes(plan, collected.configs)  # the 3d rows' λ and feature layers
    if plan.evaluation == "organs":
        body = organ_sections(table, plan, collected, tables)
        measured = "per organ on the target's organ maps"
    else:
        note = table_measurement(plan, collected.measurement)
        tables = {"Dice": note, "Surface distances": note}
        body = ["## Dice", "", *measurement_note(note), *dice_table(table, plan), ""]
        body += ["## Surface distances", "", *measurement_note(note), *surface_table(table, plan)]
        measured = "the liver"
    text = [
        f"# lw_experiment {plan.name}",
        "",
        *quick_banner(collected),
        f"Measured: {measured}; {len(plan.runs)} runs; reference trainer {plan.reference}; "
        f"mean ± s.d. over scans; p: paired t-test against the reference over the same (seed, scan) pairs; "
        f"bold: best and significantly better (p < {ALPHA}) than every other row.",
        "",
        *recipe_section(recipes),
        *excluded_section(collected),
        *body,
        "",
        "## Time",
        "",
        *timing_table(Path(output), plan),
        "",
        f"Machine: {platform.machine()}, torch {torch.__version__}, device {meta['device']}"
        + (f", {meta['concurrent']} runs at once (times shared)" if meta.get("concurrent", 1) > 1 else "")
        + f"; {version_line()}.",
    ]
    (Path(output) / "report.md").write_text("\n".join(text) + "\n", encoding="utf-8")
    scored = with_organ_means(table) if plan.evaluation == "organs" else table
    headline = scored[scored.organ == MEAN_ORGAN] if plan.evaluation == "organs" else scored
    report = {
        **meta,
        "quick": bool(collected.quick),  # decided per run: whether any run in the tables is a --quick one
        "quick_runs": list(collected.quick),
        "excluded": dict(collected.excluded),
        "name": plan.name,
        "reference": plan.reference,
        "runs": [r.key for r in plan.runs],
        "measurement": {r.key: collected.measurement.get(r.key, {}) for r in plan.runs},
        "tables": [{"title": title, "measured": rows} for title, rows in tables.items()],
        "recipes": recipes,
        "n_scans": int(len(headline)),
        **provenance_fields(torch=torch.__version__),
        "mean_dice": {
            f"{t}/{r}": float(headline[(headline.target == t) & (headline[plan.rows] == r)].dice.mean())
            for t in headline.target.unique()
            for r in headline[plan.rows].unique()
        },
    }
    if plan.evaluation == "organs":
        report["mean_dice_per_organ"] = {
            f"{t}/{o}/{r}": float(part.dice.mean()) for (t, o, r), part in table.groupby(["target", "organ", plan.rows])
        }
    write_json_atomic(Path(output) / "report.json", report)
    return report

"""Experiment report: per-scan results of every run → tables shaped like the paper's.

Dice table: one row per trainer (per seed for the ``seeds`` protocol), one column per target (per
source → target pair for single-source folds); a cell is
mean ± s.d. over the target's scans (pooled over seeds), followed by the two-sided paired t-test p-value
against the reference trainer over the same (seed, scan) pairs. The best mean of a column is bold only
where it is significantly better (p < 0.05) than every other row. The surface table gives ASSD (mm)
and MSSD (cm, as in the paper).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..atomic import write_json_atomic

ALPHA = 0.05


def collect(output: Path, plan):
    """All per-scan rows of the plan's finished runs as one DataFrame (also written to results.csv)."""
    import pandas as pd

    frames = []
    for run in plan.runs:
        folder = output / "runs" / run.fold / run.trainer / f"seed{run.seed}"
        meta = json.loads((folder / "run.json").read_text(encoding="utf-8"))
        column = (
            meta["target"] if run.fold.startswith("loo_") else run.fold.removeprefix("single_").replace("_to_", " → ")
        )
        frames.append(
            pd.read_csv(folder / "results.csv").assign(fold=run.fold, target=column, trainer=run.trainer, seed=run.seed)
        )
    table = pd.concat(frames, ignore_index=True)
    table.to_csv(output / "results.csv", index=False, float_format="%.6g")
    return table


def paired_p(table, a: str, b: str, target: str, by: str = "trainer") -> float:
    from scipy import stats

    sub = table[table.target == target]
    x = sub[sub[by] == a].set_index(["seed", "case"] if by == "trainer" else ["case"])["dice"]
    y = sub[sub[by] == b].set_index(["seed", "case"] if by == "trainer" else ["case"])["dice"]
    x, y = x.align(y, join="inner")
    if len(x) < 2 or np.allclose(x.to_numpy(), y.to_numpy()):
        return 1.0
    return float(stats.ttest_rel(x.to_numpy(), y.to_numpy()).pvalue)


def dice_table(table, plan) -> list:
    by = plan.rows
    rows = (
        sorted(table[by].unique(), key=lambda v: (v != plan.reference, str(v)))
        if by == "trainer"
        else sorted(table[by].unique())
    )
    targets = sorted(table.target.unique())
    lines = [f"| {by} | " + " | ".join(targets) + " |", "|---|" + "---|" * len(targets)]
    best = {}
    for target in targets:
        means = {r: table[(table.target == target) & (table[by] == r)].dice.mean() for r in rows}
        top = max(means, key=lambda r: means[r])
        others = [r for r in rows if r != top]
        best[target] = (
            top
            if others and all(paired_p(table, top, r, target, by) < ALPHA and means[top] > means[r] for r in others)
            else None
        )
    for r in rows:
        cells = []
        for target in targets:
            d = table[(table.target == target) & (table[by] == r)].dice
            cell = f"{d.mean():.3f} ± {d.std(ddof=0):.3f}"
            if best[target] == r:
                cell = f"**{cell}**"
            if by == "trainer" and r != plan.reference:
                cell += f" (p = {paired_p(table, r, plan.reference, target):.2g})"
            cells.append(cell)
        label = f"{r} (reference)" if by == "trainer" and r == plan.reference else str(r)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if by == "seed":
        spread = [f"{table[table.target == t].groupby('seed').dice.mean().std(ddof=1):.3f}" for t in targets]
        lines.append("| s.d. of the seed means | " + " | ".join(spread) + " |")
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


def write_report(output: Path, plan, table, meta: dict) -> dict:
    import platform

    import torch

    text = [
        f"# lw_experiment {plan.name}",
        "",
        f"Evaluation: {meta['evaluation']}; {len(plan.runs)} runs; reference trainer {plan.reference}; "
        f"mean ± s.d. over scans; p: paired t-test against the reference over the same (seed, scan) pairs; "
        f"bold: best and significantly better (p < {ALPHA}) than every other row.",
        "",
        "## Dice",
        "",
        *dice_table(table, plan),
        "",
        "## Surface distances",
        "",
        *surface_table(table, plan),
        "",
        "## Time",
        "",
        *timing_table(Path(output), plan),
        "",
        f"Machine: {platform.machine()}, torch {torch.__version__}, device {meta['device']}"
        + (" — QUICK run (--quick): a smoke test, not a result." if meta["quick"] else "."),
    ]
    (Path(output) / "report.md").write_text("\n".join(text) + "\n", encoding="utf-8")
    report = {
        **meta,
        "name": plan.name,
        "reference": plan.reference,
        "runs": [r.key for r in plan.runs],
        "n_scans": int(len(table)),
        "mean_dice": {
            f"{t}/{r}": float(table[(table.target == t) & (table[plan.rows] == r)].dice.mean())
            for t in table.target.unique()
            for r in table[plan.rows].unique()
        },
    }
    write_json_atomic(Path(output) / "report.json", report)
    return report

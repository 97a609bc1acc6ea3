"""Random vs pretrained teacher, final vs stride-16 tap, on the demo-sized phantom protocol.

    python benchmarks/bench_teachers.py --out documentation/experiments/teachers --seeds 0 1 2

Each (teacher, seed) run is exactly ``lw_demo --seed S --backbone … [--random-backbone] [--feature-tap …]``
(the same ``run_demo`` function): phantoms of that seed, CT domains as sources, fold
``loo_PhantomT2MR``, 12 epochs at lr 1e-2, prediction and evaluation of the unseen phantom MR domain.
Runs are kept in ``--workdir`` and reused, so an interrupted benchmark resumes. Writes
``results.csv`` (one row per teacher, seed and scan) and ``teachers.md`` (mean ± s.d. over scans and
seeds, per-seed means, and a paired t-test of each teacher against the reference over the same
seed × scan pairs) to ``--out``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONFIGS = [  # label, backbone, random weights, tap
    ("random ViT-S/16 (DINO architecture)", "dino-vits16", True, None),
    ("random EfficientNet-Lite0, stride-16 tap", "imagenet-effnet-lite0", True, None),
    ("ImageNet EfficientNet-Lite0, final 7×7 tap", "imagenet-effnet-lite0", False, "final"),
    ("ImageNet EfficientNet-Lite0, stride-16 tap (lw_demo default)", "imagenet-effnet-lite0", False, None),
]
REFERENCE = CONFIGS[-1][0]


def slug(label: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in label.lower()).strip("_")[:48]


def run_one(workdir: Path, backbone: str, random_backbone: bool, tap, seed: int, quick: bool):
    from liverwild.demo import run_demo

    if not (workdir / "demo_report.json").is_file():
        run_demo(
            workdir,
            seed=seed,
            quick=quick,
            backbone=backbone,
            random_backbone=random_backbone,
            tap=tap,
            device="cpu",
        )
    import pandas as pd

    report = json.loads((workdir / "demo_report.json").read_text(encoding="utf-8"))
    return pd.read_csv(report["evaluation_csv"]), report


def markdown(table, seeds, command: str, seconds: float) -> str:
    import numpy as np
    from scipy import stats

    ref = table[table.teacher == REFERENCE].set_index(["seed", "case"])["dice"]
    lines = [
        "| teacher | Dice, mean ± s.d. (scans × seeds) | per-seed means | p vs reference (paired t) |",
        "|---|---|---|---|",
    ]
    for label, *_ in CONFIGS:
        rows = table[table.teacher == label]
        per_seed = " / ".join(f"{rows[rows.seed == s].dice.mean():.3f}" for s in seeds)
        if label == REFERENCE:
            p = "reference"
        else:
            pair = rows.set_index(["seed", "case"])["dice"].reindex(ref.index)
            p = f"{stats.ttest_rel(pair.to_numpy(), ref.to_numpy()).pvalue:.2g} (n = {len(ref)})"
        lines.append(f"| {label} | {rows.dice.mean():.3f} ± {rows.dice.std(ddof=1):.3f} | {per_seed} | {p} |")
    cpu = platform.processor() or platform.machine()
    import torch

    lines += [
        "",
        f"Command: `{command}`",
        "",
        f"Hardware: {os.cpu_count()} CPU cores ({cpu}), no GPU; torch {torch.__version__}; "
        f"{datetime.date.today().isoformat()}; {seconds / 60:.0f} min in all.",
        "",
        "Synthetic data: phantom CT domains as sources, the phantom T2-like MR domain unseen. Seeds change "
        "the phantoms and the training initialisation; the paired test pairs the same seed and scan. "
        f"Mean Dice over all {int(np.prod([len(seeds), table.case.nunique()]))} seed × scan pairs.",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="teachers_benchmark", help="folder for results.csv and teachers.md")
    p.add_argument("--workdir", default=None, help="folder for the runs (default: OUT/runs)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--quick", action="store_true", help="lw_demo --quick sized runs (smoke test)")
    args = p.parse_args(argv)
    import pandas as pd

    out = Path(args.out)
    work = Path(args.workdir) if args.workdir else out / "runs"
    start, frames = time.perf_counter(), []
    for label, backbone, random_backbone, tap in CONFIGS:
        for seed in args.seeds:
            t = time.perf_counter()
            cases, report = run_one(
                work / f"{slug(label)}_seed{seed}", backbone, random_backbone, tap, seed, args.quick
            )
            frames.append(cases.assign(teacher=label, seed=seed))
            print(
                f"{label:62s} seed {seed}: Dice {cases.dice.mean():.3f} ({time.perf_counter() - t:.0f} s)", flush=True
            )
    table = pd.concat(frames, ignore_index=True)[["teacher", "seed", "case", "dice", "assd_mm", "mssd_mm"]]
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "results.csv", index=False, float_format="%.4f")
    command = "python benchmarks/bench_teachers.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = markdown(table, args.seeds, command, time.perf_counter() - start)
    (out / "teachers.md").write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

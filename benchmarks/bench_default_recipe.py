"""Which teacher, slice context and trainer for the default model: the same small recipe, several seeds.

    python benchmarks/bench_default_recipe.py --real ../shared/data/real --out documentation/experiments/default_recipe

Every configuration trains on the same randomised phantoms (``--ct`` + ``--mr`` cases of at most
``--slices`` slices, generator seed 0, one augmented view per slice, the default model's pooled fold)
with the same schedule (``effnet_s16_long``: 4× the epochs), once per training ``--seeds`` value, and is
scored on

- **unseen phantom domains**: ``--test-ct`` + ``--test-mr`` randomised cases of generator seed 1000
  (every randomised case is its own domain: anatomy, contrasts, noise, field of view);
- **the development real scans** of ``--real`` (``bench_in_the_wild.py``'s pairs), as ``lw_predict``
  segments them (default post-processing).

Writes ``results.csv`` (one row per configuration, seed and scan) and ``default_recipe.md`` (mean ± s.d.
per configuration, per real scan, and a paired t-test of each configuration against the reference — the
shipped recipe's teacher, tap, context and trainer — over the same seed × scan pairs). Runs are kept in
``--workdir`` and reused: an interrupted benchmark resumes, and ``--configs`` can split the work between
processes (one per teacher: the caches are per teacher, tap and context).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FOLD = "recipe_all_phantoms"
BINARY, ORGANS = "ContrastiveDistillationTrainer", "OrganCompetitionTrainer"


@dataclass(frozen=True)
class Config:
    label: str
    teacher: str
    tap: str | None
    context: str
    trainer: str = BINARY
    schedule: int = 1  # × the --epochs of every other configuration (the same steps per epoch)

    @property
    def cache(self) -> str:
        """The preprocessed folder's name: configurations that differ only in the trainer share it."""
        return f"pre_{self.teacher}_{(self.tap or 'default').replace(':', '')}_{self.context}"


CONFIGS = {
    "effnet_s16": Config("EfficientNet-Lite0 stride-16, slice (reference)", "imagenet-effnet-lite0", None, "slice"),
    "effnet_final": Config("EfficientNet-Lite0 final 7×7, slice", "imagenet-effnet-lite0", "final", "slice"),
    "effnet_s16_nb": Config("EfficientNet-Lite0 stride-16, neighbours", "imagenet-effnet-lite0", None, "neighbours"),
    "effnet_s16_organs": Config(
        "EfficientNet-Lite0 stride-16, slice, competing organs", "imagenet-effnet-lite0", None, "slice", ORGANS
    ),
    "effnet_s16_long": Config(
        "EfficientNet-Lite0 stride-16, slice, 4× the steps", "imagenet-effnet-lite0", None, "slice", schedule=4
    ),
    "dinov2_last": Config("DINOv2 ViT-S/14 last block, slice", "dinov2-vits14", None, "slice"),
    "dinov2_last4": Config("DINOv2 ViT-S/14 last 4 blocks, slice", "dinov2-vits14", "last:4", "slice"),
    "dinov2_last_nb": Config("DINOv2 ViT-S/14 last block, neighbours", "dinov2-vits14", None, "neighbours"),
    "dinov2_last_nb_organs": Config(
        "DINOv2 ViT-S/14 last block, neighbours, competing organs", "dinov2-vits14", None, "neighbours", ORGANS
    ),
}
REFERENCE = "effnet_s16"


def write_phantoms(work: Path, args) -> None:
    from liverwild.phantoms.randomized import FAMILY, write_randomized

    for root, seed, counts in (
        (work / "raw", 0, {"CT": args.ct, "MR": args.mr}),
        (work / "raw_test", 1000, {"CT": args.test_ct, "MR": args.test_mr}),
    ):
        for modality, n in counts.items():
            folder = root / FAMILY[modality]
            if (folder / "dataset.json").is_file() and len(list((folder / "imagesTr").glob("*"))) == n:
                continue
            write_randomized(root, modality, n, seed, args.slices, workers=1, progress=False)


def preprocess(work: Path, config: Config, args) -> Path:
    from liverwild.default_model import _cached_cases
    from liverwild.phantoms.randomized import FAMILY
    from preprocessing.pipeline import plan_and_preprocess
    from preprocessing.splits import add_fold, pooled_fold

    pre = work / config.cache
    names = [FAMILY["CT"], FAMILY["MR"]]
    reports = plan_and_preprocess(
        names,
        raw=str(work / "raw"),
        preprocessed=str(pre),
        backbone=config.teacher,
        tap=config.tap,
        slice_context=config.context,
        views=1,
        device="cpu",
        workers=1,
        progress=False,
    )
    failed = {r.dataset: r.failed for r in reports if r.failed}
    if failed:
        raise SystemExit(f"preprocessing failed: {failed}")
    add_fold(pre / "splits.json", FOLD, pooled_fold(_cached_cases(pre, names), args.val_per_source, 0))
    return pre


def train(work: Path, key: str, config: Config, seed: int, args) -> Path:
    from liverwild.training import get_trainer, train_fold

    results = work / f"results_{key}_seed{seed}"
    done = sorted(results.glob(f"{FOLD}/{config.trainer}__*/checkpoint_final.pth"))
    if done:
        return done[0].parent
    trainer_config = (
        get_trainer(config.trainer)
        .default_config()
        .updated(
            epochs=args.epochs * config.schedule,
            steps_per_epoch=args.steps,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=seed,
        )
    )
    out = train_fold(
        FOLD,
        config.trainer,
        preprocessed=str(work / config.cache),
        results=str(results),
        device="cpu",
        config=trainer_config,
        progress=False,
    )
    return Path(out["output"])


def score(run: Path, scans: list, out: Path) -> list:
    """Dice of ``lw_predict``'s mask (default post-processing) against each reference."""
    from liverwild.evaluation.metrics import dice
    from liverwild.inference import predict
    from liverwild.io import read_label

    rows = []
    for kind, name, image, reference in scans:
        report = predict(image, out / name, model=str(run), device="cpu", progress=False)
        scan = report["scans"][0]
        if scan["error"]:
            raise SystemExit(f"{name}: {scan['error']}")
        pred, ref = read_label(scan["output"]), read_label(reference)
        score = float(dice(pred.array > 0, ref.array > 0))
        rows.append({"kind": kind, "scan": name, "modality": scan["modality"], "dice": score})
    return rows


def test_scans(work: Path, real: Path | None) -> list:
    """``[(kind, name, image, reference)]``: the unseen phantoms, then the real scans."""
    from bench_in_the_wild import find_pairs

    from liverwild.phantoms.randomized import FAMILY

    scans = []
    for modality in ("CT", "MR"):
        folder = work / "raw_test" / FAMILY[modality]
        for image in sorted((folder / "imagesTr").glob("*_0000.nii.gz")):
            case = image.name.replace("_0000.nii.gz", "")
            scans.append(("phantom", case, image, folder / "labelsTr" / f"{case}.nii.gz"))
    if real is not None:
        scans += [("real", name, image, ref) for name, image, ref in find_pairs(real)]
    return scans


def markdown(table, seeds, keys, command: str, seconds: float, args) -> str:
    import numpy as np
    from scipy import stats

    lines = [
        "# Default-model recipe: teacher × slice context × trainer",
        "",
        f"Phantoms: {args.ct} CT + {args.mr} MR randomised cases (≤ {args.slices} slices, generator seed 0, "
        f"one augmented view), {args.val_per_source} validation cases per family; training "
        f"{args.epochs} × {args.steps} steps of {args.batch_size} at lr {args.lr}, seeds {', '.join(map(str, seeds))}. "
        f"Unseen phantoms: {args.test_ct} CT + {args.test_mr} MR cases of generator seed 1000. Real: "
        "the development scans, as `lw_predict` segments them (default post-processing). Paired t-tests "
        f"against `{REFERENCE}` over the same seed × scan pairs.",
        "",
        "| configuration | unseen phantoms Dice | p vs ref | real scans Dice | p vs ref | "
        + " | ".join(sorted(table[table.kind == "real"].scan.unique()))
        + " |",
        "|---|---|---|---|---|" + "---|" * table[table.kind == "real"].scan.nunique(),
    ]
    ref = table[table.config == REFERENCE].set_index(["seed", "scan"]).dice
    for key in keys:
        rows = table[table.config == key]
        cells = []
        for kind in ("phantom", "real"):
            part = rows[rows.kind == kind]
            if part.empty:
                cells += ["—", "—"]
                continue
            cells.append(f"{part.dice.mean():.3f} ± {part.dice.std(ddof=1):.3f}")
            if key == REFERENCE:
                cells.append("ref")
                continue
            paired = part.set_index(["seed", "scan"]).dice.align(ref, join="inner")
            if len(paired[0]) > 1 and not np.allclose(paired[0].values, paired[1].values):
                cells.append(f"{stats.ttest_rel(paired[0].values, paired[1].values).pvalue:.3f}")
            else:
                cells.append("—")
        per_real = [
            f"{rows[rows.scan == s].dice.mean():.3f}" for s in sorted(table[table.kind == "real"].scan.unique())
        ]
        lines.append(f"| {CONFIGS[key].label} (`{key}`) | " + " | ".join(cells + per_real) + " |")
    lines += [
        "",
        f"Command: `{command}`  ",
        f"Machine: {platform.machine()}, {args.threads} torch thread(s), CPU; {seconds / 60:.0f} min for the runs "
        f"not reused; {datetime.date.today().isoformat()}.",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--real", type=Path, default=None, help="folder of real scan folders (image + reference)")
    p.add_argument("--workdir", type=Path, default=Path("default_recipe_runs"))
    p.add_argument("--out", type=Path, default=None, help="write results.csv and default_recipe.md here")
    p.add_argument("--ct", type=int, default=10)
    p.add_argument("--mr", type=int, default=10)
    p.add_argument("--slices", type=int, default=32, help="at most this many slices per phantom")
    p.add_argument("--test-ct", type=int, default=3)
    p.add_argument("--test-mr", type=int, default=3)
    p.add_argument("--val-per-source", type=int, default=2)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--steps", type=int, default=75)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument(
        "--threads", type=int, default=1, help="torch threads (2 processes of 1 thread beat 1 of 2 on 2 cores)"
    )
    p.add_argument("--data-only", action="store_true", help="write the phantoms and stop")
    p.add_argument("--report-only", action="store_true", help="only tabulate the runs already in --workdir")
    args = p.parse_args(argv)
    import pandas as pd
    import torch

    os.environ["LW_THREADS"] = str(args.threads)  # every liverwild stage sets its threads from it
    torch.set_num_threads(args.threads)
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if not args.report_only:
        write_phantoms(work, args)
        if args.data_only:
            return 0
        scans = test_scans(work, args.real)
        for key in args.configs:
            preprocess(work, CONFIGS[key], args)
        for seed in args.seeds:  # seed-major: every configuration has a first result early
            for key in args.configs:
                config = CONFIGS[key]
                scores = work / f"results_{key}_seed{seed}" / "scores.json"
                if scores.is_file():
                    continue
                run = train(work, key, config, seed, args)
                rows = score(run, scans, work / "predictions" / f"{key}_seed{seed}")
                scores.write_text(json.dumps(rows, indent=1), encoding="utf-8")
                real = [r["dice"] for r in rows if r["kind"] == "real"]
                print(f"{key} seed {seed}: real Dice {', '.join(f'{d:.3f}' for d in real)}", flush=True)
    rows = []
    for key in CONFIGS:
        for seed in args.seeds:
            scores = work / f"results_{key}_seed{seed}" / "scores.json"
            if scores.is_file():
                rows += [{"config": key, "seed": seed, **r} for r in json.loads(scores.read_text(encoding="utf-8"))]
    table = pd.DataFrame(rows)
    if table.empty:
        print("no finished runs", file=sys.stderr)
        return 1
    keys = [k for k in CONFIGS if k in set(table.config)]
    text = markdown(table, args.seeds, keys, " ".join(["python", *sys.argv]), time.perf_counter() - start, args)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out / "results.csv", index=False)
        (args.out / "default_recipe.md").write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

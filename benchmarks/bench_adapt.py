"""lw_adapt measured: Dice before/after each adaptation method, on a phantom CT → MR shift and on the
development MR scan, and the time of ``lw_adapt`` on five 256×256×40 scans.

    python benchmarks/bench_adapt.py --real ../shared/data/real --out documentation/experiments/adaptation

Parts (``--parts``):

- ``phantoms``: the generator's three CT domains (``--cases`` each) train ``ContrastiveDistillationTrainer``
  on one pooled CT fold, once per ``--seeds`` value; each model is adapted, with every method, to the
  ``PhantomT2MR`` images (unlabelled: adaptation reads the images only) and scored on the same scans'
  labels, as a user adapts to and segments their own scans. Paired t-tests of each method against the
  unadapted model over the seed × scan pairs, and over the per-seed means.
- ``real``: the shipped default model adapted to the development MR scan (``--real``/totalseg_mr), before/after.
- ``timing``: ``lw_adapt`` (the Python API, as the command runs it) on five randomised MR phantoms resampled
  to 256×256×40, each method, with the default model; seconds against the issue's 5-minute target.

Writes ``results.csv`` (one row per part, seed, method and scan), ``timing.csv`` and ``adaptation.md``.
Runs are kept in ``--workdir`` and reused.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CT_DOMAINS = ["PhantomArterialCT", "PhantomNativeCT", "PhantomPortalCT"]
TARGET = "PhantomT2MR"
FOLD = "adapt_ct_to_mr"
METHODS = ["bn", "entropy", "adversarial"]


def dice_of(prediction: Path, reference: Path) -> float:
    from liverwild.evaluation.metrics import dice
    from liverwild.io import read_label

    return float(dice(read_label(prediction).array > 0, read_label(reference).array > 0))


def score(model, images: Path, labels: Path, out: Path, device: str) -> dict:
    """``{case: Dice}`` of ``model``'s masks of every image (default post-processing)."""
    from liverwild.inference import predict
    from liverwild.log import quieter

    if not (out / "prediction_report.json").is_file():
        with quieter():
            predict(images, out, model=model, device=device, progress=False)
    scores = {}
    for label in sorted(labels.glob("*.nii.gz")):
        case = label.name[: -len(".nii.gz")]
        scores[case] = dice_of(out / label.name, label)
    return scores


def adapt(model, images: Path, out: Path, method: str, device: str, **kw) -> dict:
    from liverwild.adaptation import AdaptationSettings, adapt_model
    from liverwild.log import quieter

    if not (out / "provenance.json").is_file():
        shutil.rmtree(out, ignore_errors=True)
        with quieter():
            adapt_model(model, images, out, settings=AdaptationSettings(method=method), device=device, **kw)
    return json.loads((out / "provenance.json").read_text(encoding="utf-8"))


def phantom_part(work: Path, seeds: list, cases: int, epochs: int, device: str) -> list:
    from liverwild.log import quieter
    from liverwild.phantoms import write_phantoms
    from liverwild.training import get_trainer, train_fold
    from preprocessing.pipeline import plan_and_preprocess
    from preprocessing.splits import add_fold, pooled_fold

    raw, pre, res = work / "raw", work / "pre", work / "res"
    with quieter():
        write_phantoms(raw, CT_DOMAINS + [TARGET], cases, 0, 1.0, 16, progress=False)
        plan_and_preprocess(
            CT_DOMAINS, raw=str(raw), preprocessed=str(pre), backbone="imagenet-effnet-lite0", views=1, progress=False
        )
    names = {d: sorted(p.name.split("_0000")[0] for p in (raw / d / "imagesTr").glob("*.nii.gz")) for d in CT_DOMAINS}
    fold = pooled_fold(names, 1, 0)  # CT only; the T2MR scans are never trained on
    add_fold(pre / "splits.json", FOLD, fold)
    images, labels = raw / TARGET / "imagesTr", raw / TARGET / "labelsTr"
    rows = []
    for seed in seeds:
        results = res / f"seed{seed}"
        runs = list((results / FOLD).glob("*/checkpoint_best.pth")) if (results / FOLD).is_dir() else []
        if not runs:
            trainer = "ContrastiveDistillationTrainer"
            config = get_trainer(trainer).default_config().updated(epochs=epochs, lr=1e-2, seed=seed)
            with quieter():
                train_fold(
                    FOLD,
                    trainer,
                    preprocessed=str(pre),
                    results=str(results),
                    device=device,
                    config=config,
                    progress=False,
                )
            runs = list((results / FOLD).glob("*/checkpoint_best.pth"))
        model = runs[0].parent
        for method in ["none", *METHODS]:
            t = time.perf_counter()
            target = model
            seconds = 0.0
            if method != "none":
                provenance = adapt(
                    model,
                    images,
                    work / f"adapted_s{seed}_{method}",
                    method,
                    device,
                    preprocessed=str(pre) if method == "adversarial" else None,
                )
                target, seconds = work / f"adapted_s{seed}_{method}", provenance["total_seconds"]
            for case, d in score(target, images, labels, work / f"pred_s{seed}_{method}", device).items():
                rows.append(
                    {
                        "part": "phantoms",
                        "seed": seed,
                        "method": method,
                        "scan": case,
                        "dice": d,
                        "adapt_seconds": seconds,
                    }
                )
            print(
                f"phantoms seed {seed} {method}: {sum(r['dice'] for r in rows[-cases:]) / cases:.3f} "
                f"({time.perf_counter() - t:.0f} s)",
                flush=True,
            )
    return rows


def real_part(work: Path, real: Path, device: str) -> list:
    images, labels = work / "real_mr", work / "real_mr_labels"
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(real / "totalseg_mr" / "image.nii.gz", images / "totalseg_mr.nii.gz")
    shutil.copyfile(real / "totalseg_mr" / "liver.nii.gz", labels / "totalseg_mr.nii.gz")
    rows = []
    for method in ["none", *METHODS]:
        target, seconds = "default", 0.0
        if method != "none":
            provenance = adapt("default", images, work / f"real_adapted_{method}", method, device)
            target, seconds = str(work / f"real_adapted_{method}"), provenance["total_seconds"]
        for case, d in score(target, images, labels, work / f"real_pred_{method}", device).items():
            rows.append(
                {"part": "real", "seed": 0, "method": method, "scan": case, "dice": d, "adapt_seconds": seconds}
            )
            print(f"real {method}: {d:.3f}", flush=True)
    return rows


def timing_part(work: Path, device: str) -> list:
    import numpy as np
    import SimpleITK as sitk

    from liverwild.phantoms import generate_case
    from liverwild.phantoms.randomized import case_domain

    scans = work / "timing_scans"
    scans.mkdir(parents=True, exist_ok=True)
    for case in range(5):
        path = scans / f"mr_{case}.nii.gz"
        if path.is_file():
            continue
        image, _, _ = generate_case(case_domain(7, "MR", case, 40), seed=7, case=case, n_slices=40)
        itk = sitk.GetImageFromArray(image.array.astype(np.float32))
        itk.SetSpacing(image.geometry.spacing)
        itk.SetOrigin(image.geometry.origin)
        itk.SetDirection(image.geometry.direction)
        size = (256, 256, 40)
        spacing = [sp * n / m for sp, n, m in zip(itk.GetSpacing(), itk.GetSize(), size)]
        resampled = sitk.Resample(
            itk, size, sitk.Transform(), sitk.sitkLinear, itk.GetOrigin(), spacing, itk.GetDirection()
        )
        sitk.WriteImage(resampled, str(path))
    rows = []
    for method in METHODS:
        out = work / f"timing_{method}"
        shutil.rmtree(out, ignore_errors=True)
        t = time.perf_counter()
        adapt("default", scans, out, method, device)
        seconds = time.perf_counter() - t
        rows.append({"method": method, "scans": 5, "size": "256x256x40", "seconds": round(seconds, 1)})
        print(f"timing {method}: {seconds:.0f} s", flush=True)
    return rows


def paired(frame, method: str, by_seed: bool = False):
    from scipy import stats

    base = frame[frame.method == "none"].set_index(["seed", "scan"]).dice
    other = frame[frame.method == method].set_index(["seed", "scan"]).dice.reindex(base.index)
    if by_seed:
        base, other = base.groupby(level=0).mean(), other.groupby(level=0).mean()
    diff = other - base
    p = float(stats.ttest_rel(other, base).pvalue) if len(diff) > 1 and diff.abs().sum() > 0 else float("nan")
    return float(diff.mean()), p, len(diff)


def spread(values) -> float:
    return float(values.std(ddof=1)) if len(values) > 1 else float("nan")


def report(rows: list, timing: list, out: Path, command: str) -> None:
    import pandas as pd
    import torch

    from liverwild.device import describe_device, resolve_device

    frame = pd.DataFrame(rows)
    lines = [
        "# lw_adapt: Dice before and after adaptation",
        "",
        f"Command: `{command}`  ",
        f"Machine: {describe_device(resolve_device('cpu'))}, torch {torch.__version__}, LW_THREADS="
        f"{os.environ.get('LW_THREADS', 'unset')}, {platform.python_version()}; {datetime.date.today()}",
        "",
    ]
    for part, title in (
        ("phantoms", "Phantom CT → T2MR (adapted on the T2MR images, scored on their labels)"),
        ("real", "Development MR scan (default model)"),
    ):
        sub = frame[frame.part == part]
        if sub.empty:
            continue
        lines += [
            f"## {title}",
            "",
            "| method | mean Dice | s.d. over seeds | per seed | Δ vs none "
            "| p (seed × scan pairs) | p (seed means) | adapt s (mean) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for method in ["none", *METHODS]:
            m = sub[sub.method == method]
            if m.empty:
                continue
            per_seed = m.groupby("seed").dice.mean()
            row = (
                f"| {method} | {m.dice.mean():.3f} | {spread(per_seed):.3f} | "
                + ", ".join(f"{v:.3f}" for v in per_seed)
                + " |"
            )
            if method == "none":
                row += " — | — | — | — |"
            else:
                d, p, n = paired(sub, method)
                _, ps, _ = paired(sub, method, by_seed=True)
                row += f" {d:+.3f} | {p:.3g} (n={n}) | {ps:.3g} | {m.adapt_seconds.mean():.0f} |"
            lines.append(row)
        lines.append("")
        if part == "phantoms":
            gains = {mth: paired(sub, mth) for mth in METHODS if not sub[sub.method == mth].empty}
            best = [mth for mth, (d, p, _) in gains.items() if d >= 0.05 and p < 0.05]
            worse = [mth for mth, (d, _, _) in gains.items() if d < -0.02]
            lines += [
                "Target (≥ 1 method +0.05 with p < 0.05): "
                + ("met by " + ", ".join(best) if best else "NOT met")
                + ".  ",
                "Target (no method worse than −0.02 on average): "
                + ("NOT met: " + ", ".join(worse) if worse else "met")
                + ".",
                "",
            ]
    if timing:
        lines += [
            "## Time of lw_adapt on 5 MR scans of 256×256×40 (default model)",
            "",
            "| method | seconds | ≤ 300 s |",
            "|---|---|---|",
        ]
        lines += [f"| {t['method']} | {t['seconds']:.0f} | {'yes' if t['seconds'] <= 300 else 'NO'} |" for t in timing]
        lines.append("")
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / "results.csv", index=False)
    if timing:
        pd.DataFrame(timing).to_csv(out / "timing.csv", index=False)
    (out / "adaptation.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workdir", default="/tmp/bench_adapt")
    p.add_argument("--out", default=str(ROOT / "documentation" / "experiments" / "adaptation"))
    p.add_argument("--real", default=str(ROOT.parent / "shared" / "data" / "real"))
    p.add_argument("--parts", nargs="+", default=["phantoms", "real", "timing"], choices=["phantoms", "real", "timing"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--cases", type=int, default=5)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    from liverwild.device import configure_cpu_threads

    configure_cpu_threads()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    rows: list = []
    timing: list = []
    if "phantoms" in args.parts:
        rows += phantom_part(work / "phantoms", args.seeds, args.cases, args.epochs, args.device)
    if "real" in args.parts:
        rows += real_part(work, Path(args.real), args.device)
    if "timing" in args.parts:
        timing = timing_part(work, args.device)
    report(rows, timing, Path(args.out), "python " + " ".join(sys.argv))


if __name__ == "__main__":
    main()

"""The main job on the embedded default, end to end and offline:

phantom domains → verify → plan and preprocess → train a leave-one-domain-out fold briefly → predict
the unseen domain → evaluate → a short report (``WORKDIR/demo_report.json`` and a QC picture).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from .atomic import write_json_atomic
from .datasets import verify_dataset
from .phantoms import DOMAINS, write_phantoms

TARGET = "PhantomT2MR"  # the unseen domain: CT sources → MR target, the hardest shift
DEMO_TEACHER = "imagenet-effnet-lite0"  # real pretrained weights that install with pip


def _folder_size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def run_demo(
    workdir,
    cases: int = 5,
    scale: float = 1.0,
    seed: int = 0,
    quick: bool = False,
    workers: int = 1,
    slices: int = 16,
    views: int = 1,
    backbone_weights=None,
    device: str = "auto",
    epochs: int = 12,
    lr: float = 1e-2,
    target: str = TARGET,
    log=print,
    backbone: str = DEMO_TEACHER,
    random_backbone: bool = False,
    tap: str | None = None,
) -> dict:
    """Run the demo in ``workdir``; returns the report dict. ``quick`` shrinks everything (≈1 minute).

    The teacher is ``backbone`` (default: ImageNet EfficientNet-Lite0, real weights installed by pip);
    ``random_backbone`` replaces its weights with random ones (tests).
    """
    from preprocessing.pipeline import plan_and_preprocess

    from .evaluation import evaluate_folders
    from .inference import predict
    from .training import TrainerConfig, train_fold

    workdir = Path(workdir)
    raw, pre, res, out = workdir / "raw", workdir / "preprocessed", workdir / "results", workdir / "predictions"
    if quick:
        cases, scale, slices, epochs = min(cases, 3), min(scale, 0.5), min(slices, 8), min(epochs, 4)
    from .backbones import describe_teacher, teacher_config

    weights = "random" if random_backbone else backbone_weights
    teacher = teacher_config(backbone, weights, tap)  # fails here, early, if the weights are missing
    report: dict = {
        "workdir": str(workdir),
        "seconds": {},
        "target": target,
        "teacher": describe_teacher(teacher),
        "backbone": {k: v for k, v in teacher.items() if k != "weights"},
    }
    log("liverwild demo — synthetic phantoms, not patients.")
    log(f"teacher: {report['teacher']}")
    if teacher["weights"] == "random":
        log("NOTE: the teacher has RANDOM weights (--random-backbone): the model is for testing the pipeline only.")

    def stage(name, fn):
        start = time.perf_counter()
        value = fn()
        report["seconds"][name] = round(time.perf_counter() - start, 2)
        return value

    folders = stage(
        "phantoms",
        lambda: write_phantoms(raw, list(DOMAINS), cases, seed, scale, slices, workers=workers, progress=False),
    )
    log(
        f"[1/6] phantoms: {len(folders)} domains × {cases} cases × {slices} slices in {raw} "
        f"({report['seconds']['phantoms']} s)"
    )
    reports = stage("verify", lambda: [verify_dataset(f) for f in folders])
    report["verified"] = all(r.ok for r in reports)
    log("[2/6] verify: " + "; ".join(r.summary() for r in reports))
    pp = stage(
        "plan_and_preprocess",
        lambda: plan_and_preprocess(
            [f.name for f in folders],
            raw=str(raw),
            preprocessed=str(pre),
            backbone=backbone,
            weights=weights,
            tap=tap,
            views=views,
            device=device,
            workers=workers,
            replan=True,
            progress=False,
            log=lambda *a: None,
        ),
    )
    report["preprocessed_ok"] = not any(r.failed for r in pp)
    log(
        f"[3/6] plan and preprocess: {sum(r.slices for r in pp)} slices × {1 + views} views, cache "
        f"{_folder_size_mb(pre):.0f} MB ({report['seconds']['plan_and_preprocess']} s)"
    )
    fold = f"loo_{target}"
    for stale in (res / fold, out):  # the demo's folder is its own: a re-run starts these afresh
        shutil.rmtree(stale, ignore_errors=True)
    config = TrainerConfig().updated(epochs=epochs, lr=lr, seed=seed)
    trained = stage(
        "train",
        lambda: train_fold(
            fold,
            preprocessed=str(pre),
            results=str(res),
            device=device,
            config=config,
            progress=False,
            log=lambda *a: None,
        ),
    )
    log(
        f"[4/6] train {fold} ({epochs} epochs, lr {lr:g}: a demo setting, the paper trains 150 epochs at 1e-4): "
        f"best validation Dice on the source domains {trained['best_val_dice']:.3f} ({report['seconds']['train']} s)"
    )
    pred = stage(
        "predict",
        lambda: predict(
            raw / target / "imagesTr",
            out,
            trained["output"],
            device=device,
            overlays=True,
            progress=False,
            log=lambda *a: None,
        ),
    )
    log(f"[5/6] predict the unseen domain {target}: {pred['n_ok']} scans → {out} ({report['seconds']['predict']} s)")
    table, summary, failures = stage(
        "evaluate",
        lambda: evaluate_folders(
            out, raw / target / "labelsTr", output_csv=out / "results.csv", log=lambda *a: None, progress=False
        ),
    )
    log(f"[6/6] evaluate against the phantom labels ({report['seconds']['evaluate']} s):")
    log(f"      {'case':22s} {'Dice':>6s} {'ASSD mm':>8s} {'MSSD mm':>8s}")
    for row in table.itertuples():
        log(f"      {row.case:22s} {row.dice:6.3f} {row.assd_mm:8.2f} {row.mssd_mm:8.2f}")
    log(
        f"      {'mean ± s.d.':22s} {summary['dice']['mean']:6.3f} {summary['assd_mm']['mean']:8.2f} "
        f"{summary['mssd_mm']['mean']:8.2f}   (Dice s.d. {summary['dice']['std']:.3f})"
    )
    qc = sorted((out / "overlays").glob("*.png"))
    report.update(
        {
            "fold": fold,
            "model": trained["output"],
            "best_val_dice": trained["best_val_dice"],
            "predictions": str(out),
            "evaluation_csv": str(out / "results.csv"),
            "summary": summary,
            "qc_picture": str(qc[0]) if qc else None,
            "failed": failures or pred["n_failed"],
        }
    )
    write_json_atomic(workdir / "demo_report.json", report)
    total = sum(report["seconds"].values())
    log(
        f"Done in {total:.0f} s. Files: raw {raw}, preprocessed {pre}, model {trained['output']}, predictions {out}, "
        f"QC picture {report['qc_picture']}, report {workdir / 'demo_report.json'}."
    )
    log(
        "Reminder: synthetic phantoms — these numbers show the pipeline works, not clinical accuracy"
        + (" (and the teacher has random weights)." if teacher["weights"] == "random" else ".")
    )
    return report

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
from .log import get_logger, quieter
from .phantoms import DOMAINS, write_phantoms
from .revision import provenance_fields

logger = get_logger(__name__)
STAGE_LOGGERS = (
    "liverwild.preprocessing",
    "liverwild.planning",
    "liverwild.training",
    "liverwild.inference",
    "liverwild.evaluation",
)  # the stages' own progress lines stay out of the demo's summary
TARGET = "PhantomT2MR"  # the unseen domain: CT sources → MR target, the hardest shift
DEMO_TEACHER = "imagenet-effnet-lite0"  # real pretrained weights that install with pip


def _folder_size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def run_demo(
    workdir,
    *,
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
    backbone: str = DEMO_TEACHER,
    random_backbone: bool = False,
    tap: str | None = None,
) -> dict:
    """Run the demo end to end in ``workdir`` — what ``lw_demo`` runs.

    Args:
        workdir: folder for everything the demo writes (raw phantoms, cache, model, predictions).
        cases, scale, slices, seed: phantom cases per domain, matrix scale, slices per case, seed.
        quick: shrink everything (about 30 s on 2 CPU cores).
        workers: processes for phantom generation and preprocessing.
        views: augmented views cached per slice.
        backbone, backbone_weights, random_backbone, tap: the teacher (default ImageNet
            EfficientNet-Lite0, whose real weights install with pip); ``random_backbone`` replaces its
            weights with random ones (tests).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
        epochs, lr: the training budget (a demo setting; the paper trains 150 epochs at 1e-4).
        target: the unseen phantom domain.

    Returns:
        The report written to ``demo_report.json``: seconds per stage, teacher, model folder, the
        evaluation summary (Dice, ASSD, MSSD), QC picture and failures.

    Example::

        from liverwild.demo import run_demo
        report = run_demo("/tmp/lw_demo", quick=True, device="cpu")
        print(report["summary"]["dice"]["mean"])
    """
    from preprocessing.pipeline import plan_and_preprocess

    from .evaluation import evaluate_folders
    from .inference import predict
    from .training import SliceTrainerConfig, train_fold

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
        "backbone": {k: v for k, v in teacher.to_json().items() if k != "weights"},
        **provenance_fields(),
    }
    logger.info("liverwild demo — synthetic phantoms, not patients.")
    logger.info(f"teacher: {report['teacher']}")
    if teacher.weights == "random":
        logger.info(
            "NOTE: the teacher has RANDOM weights (--random-backbone): the model is for testing the pipeline only."
        )

    def stage(name, fn):
        start = time.perf_counter()
        with quieter(*STAGE_LOGGERS):
            value = fn()
        report["seconds"][name] = round(time.perf_counter() - start, 2)
        return value

    folders = stage(
        "phantoms",
        lambda: write_phantoms(raw, list(DOMAINS), cases, seed, scale, slices, workers=workers, progress=False),
    )
    logger.info(
        f"[1/6] phantoms: {len(folders)} domains × {cases} cases × {slices} slices in {raw} "
        f"({report['seconds']['phantoms']} s)"
    )
    reports = stage("verify", lambda: [verify_dataset(f) for f in folders])
    report["verified"] = all(r.ok for r in reports)
    logger.info("[2/6] verify: " + "; ".join(r.summary() for r in reports))
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
        ),
    )
    report["preprocessed_ok"] = not any(r.failed for r in pp)
    logger.info(
        f"[3/6] plan and preprocess: {sum(r.slices for r in pp)} slices × {1 + views} views, cache "
        f"{_folder_size_mb(pre):.0f} MB ({report['seconds']['plan_and_preprocess']} s)"
    )
    fold = f"loo_{target}"
    for stale in (res / fold, out):  # the demo's folder is its own: a re-run starts these afresh
        shutil.rmtree(stale, ignore_errors=True)
    config = SliceTrainerConfig().updated(epochs=epochs, lr=lr, seed=seed)
    trained = stage(
        "train",
        lambda: train_fold(
            fold,
            preprocessed=str(pre),
            results=str(res),
            device=device,
            config=config,
            progress=False,
        ),
    )
    logger.info(
        f"[4/6] train {fold} ({epochs} epochs, lr {lr:g}: a demo setting, the paper trains 150 epochs at 1e-4): "
        f"best validation Dice on the source domains {trained['best_val_dice']:.3f} ({report['seconds']['train']} s)"
    )
    pred = stage(
        "predict",
        lambda: predict(
            raw / target / "imagesTr",
            out,
            model=trained["output"],
            device=device,
            overlays=True,
            progress=False,
        ),
    )
    logger.info(
        f"[5/6] predict the unseen domain {target}: {pred['n_ok']} scans → {out} ({report['seconds']['predict']} s)"
    )
    table, summary, failures = stage(
        "evaluate",
        lambda: evaluate_folders(out, raw / target / "labelsTr", output_csv=out / "results.csv", progress=False),
    )
    logger.info(f"[6/6] evaluate against the phantom labels ({report['seconds']['evaluate']} s):")
    logger.info(f"      {'case':22s} {'Dice':>6s} {'ASSD mm':>8s} {'MSSD mm':>8s}")
    for row in table.itertuples():
        logger.info(f"      {row.case:22s} {row.dice:6.3f} {row.assd_mm:8.2f} {row.mssd_mm:8.2f}")
    logger.info(
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
    logger.info(
        f"Done in {total:.0f} s. Files: raw {raw}, preprocessed {pre}, model {trained['output']}, predictions {out}, "
        f"QC picture {report['qc_picture']}, report {workdir / 'demo_report.json'}."
    )
    logger.info(
        "Reminder: synthetic phantoms — these numbers show the pipeline works, not clinical accuracy"
        + (" (and the teacher has random weights)." if teacher.weights == "random" else ".")
    )
    return report

"""``run_experiment``: for each (fold, trainer, seed) of a protocol — train, predict the target, evaluate —
then a Markdown report shaped like the paper's tables. Everything goes through the functions the
commands use (``train_fold``, ``predict``, ``evaluate_folders``).

Output folder (``--output``, default ``$LW_results/experiments/<protocol>``)::

    runs/<fold>/<trainer>/seed<k>/{predictions/, results.csv, run.json}   # one finished run each
    models/seed<k>/<fold>/<trainer>__<plans>/                           # lw_train's output
    results.csv                                                         # every scan of every run
    report.md, report.json

A run with ``run.json`` is finished and reused; an interrupted one resumes its training from
``checkpoint_latest.pth`` and redoes prediction and evaluation.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..atomic import write_json_atomic
from ..errors import LiverwildError
from ..log import get_logger, quieter
from .protocols import Plan, Run, make_plan, single_dg_folds

logger = get_logger(__name__)

QUICK = {"epochs": 2, "steps_per_epoch": 4, "batch_size": 4}


def _modalities(preprocessed: Path) -> dict:
    from planning.plans import load_plans

    return {p.parent.name: load_plans(p).modality for p in sorted(preprocessed.glob("*/plans.json"))}


def prepare_plan(name: str, preprocessed: Path, trainers=None, seeds=None, fold=None, val_per_source: int = 5) -> Plan:
    """The protocol's runs; single-dg first adds its ``single_<CT>_to_<MR>`` folds to ``splits.json``."""
    from preprocessing.splits import add_fold, load_splits

    splits_path = preprocessed / "splits.json"
    splits = load_splits(splits_path)
    if name == "single-dg":
        for fold_name, definition in single_dg_folds(splits, _modalities(preprocessed), val_per_source).items():
            splits = add_fold(splits_path, fold_name, definition)
    return make_plan(name, splits, trainers, seeds, fold)


def run_one(
    run: Run, splits: dict, raw: Path, preprocessed: Path, output: Path, config, device, evaluation: str
) -> Path:
    """Train (or resume), predict the fold's target and evaluate; returns the run folder."""
    from ..evaluation import evaluate_folders
    from ..inference import predict
    from ..training import train_fold

    folder = output / "runs" / run.fold / run.trainer / f"seed{run.seed}"
    if (folder / "run.json").is_file():
        return folder
    start = time.perf_counter()
    fold = splits["folds"][run.fold]
    seeded = config.updated(seed=run.seed)
    target = fold["target"]
    images, labels = raw / target / "imagesTr", raw / target / "labelsTr"
    if not images.is_dir():
        raise LiverwildError(f"{images}: the target's raw images are needed for evaluation (set --raw or LW_raw)")
    with quieter("liverwild.training", "liverwild.inference", "liverwild.evaluation"):  # one line per run
        # lw_train's own re-run rules: a finished run is reused, an interrupted (or shorter) one resumed
        trained = train_fold(
            run.fold,
            run.trainer,
            preprocessed=str(preprocessed),
            results=str(output / "models" / f"seed{run.seed}"),
            device=device,
            config=seeded,
            progress=False,
        )
        model = Path(trained["output"])
        report = predict(images, folder / "predictions", model=model, device=device, progress=False)
        table, summary, failures = evaluate_folders(
            folder / "predictions", labels, output_csv=folder / "results.csv", progress=False, protocol=evaluation
        )
    write_json_atomic(
        folder / "run.json",
        {
            "fold": run.fold,
            "trainer": run.trainer,
            "seed": run.seed,
            "target": target,
            "model": str(model),
            "evaluation_protocol": evaluation,
            "config": seeded.to_json(),
            "n_scans": int(len(table)),
            "failed": {**failures, **{s["name"]: s["error"] for s in report["scans"] if s["error"]}},
            "dice_mean": summary["dice"]["mean"],
            "seconds": round(time.perf_counter() - start, 1),
        },
    )
    logger.info(
        f"{run.key}: Dice {summary['dice']['mean']:.3f} on {len(table)} {target} scans "
        f"({time.perf_counter() - start:.0f} s)"
    )
    return folder


def run_experiment(
    name: str,
    *,
    raw=None,
    preprocessed=None,
    results=None,
    output=None,
    trainers=None,
    seeds=None,
    fold=None,
    config=None,
    device="auto",
    evaluation: str = "native",
    quick: bool = False,
) -> dict:
    """Run a protocol end to end — train, predict the target, evaluate every (fold, trainer, seed) — and
    write ``report.md`` and ``report.json``; what ``lw_experiment`` runs.

    Args:
        name: ``"multi-dg"``, ``"single-dg"``, ``"ablations"`` or ``"seeds"`` (documentation/experiments.md).
        raw, preprocessed, results: folders; default ``$LW_raw``, ``$LW_preprocessed``, ``$LW_results``.
        output: the experiment folder (default ``<results>/experiments/<name>``).
        trainers, seeds, fold: override the protocol's rows, seeds and folds (``fold``: a name or a list).
        config: the :class:`~liverwild.training.TrainerConfig` of every run (seeds replaced per run).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
        evaluation: ``"native"`` grid, or ``"paper"`` (the paper's in-plane resampling).
        quick: 2 epochs of 4 steps — a smoke test, labelled as such in the report.

    Returns:
        The report dict (also ``report.json``): protocol, reference trainer, runs, mean Dice per
        target and row, scan count.

    Example::

        from liverwild.experiments import run_experiment
        run_experiment("multi-dg", trainers=["ContrastiveDistillationTrainer", "MASFTrainer"], device="cuda")
    """
    from preprocessing.splits import load_splits

    from ..paths import preprocessed_folder, raw_folder, results_folder
    from ..training import TrainerConfig
    from .report import collect, write_report

    raw_root, pre_root = raw_folder(raw, must_exist=True), preprocessed_folder(preprocessed, must_exist=True)
    output = Path(output) if output else results_folder(results) / "experiments" / name
    config = config or TrainerConfig()
    if quick:
        config = config.updated(**QUICK)
    plan = prepare_plan(name, pre_root, trainers, seeds, fold)
    splits = load_splits(pre_root / "splits.json")
    paper = {"multi-dg": "multi-dg", "single-dg": "single-dg"}.get(name, "multi-dg")
    protocol = paper if evaluation == "paper" else evaluation
    logger.info(
        f"{name}: {len(plan.runs)} runs ({len({r.fold for r in plan.runs})} folds × "
        f"{len({r.trainer for r in plan.runs})} trainers × {len({r.seed for r in plan.runs})} seeds) → {output}"
    )
    for run in plan.runs:
        run_one(run, splits, raw_root, pre_root, output, config, device, protocol)
    table = collect(output, plan)
    return write_report(
        output,
        plan,
        table,
        {
            "protocol": name,
            "output": str(output),
            "evaluation": protocol,
            "quick": quick,
            "config": config.to_json(),
            "device": str(device),
        },
    )

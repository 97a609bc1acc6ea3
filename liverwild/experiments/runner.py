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

Every run starts from its trainer's own configuration (``Trainer.default_config()``: the paper's recipe,
or the 3D trainers'), then the experiment's settings that it reads (a setting no trainer of the
experiment reads is refused), then ``--quick``'s (the trainer's ``quick``).
A ``3d`` trainer is evaluated per organ on the target's organ maps in ``organs-3d`` (without
post-processing, as the source paper reports), and on the liver alone in the liver protocols.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..atomic import write_json_atomic
from ..errors import ConfigurationError, LiverwildError
from ..log import get_logger, quieter
from .protocols import Plan, Run, make_plan, single_dg_folds

logger = get_logger(__name__)


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


def trainer_settings(trainers, settings: dict | None = None) -> dict[str, dict]:
    """``{trainer: its share of the experiment's settings}``: the fields it reads (of ``loss_weights``, the
    terms it reads), so that a setting of one family (``unet_channels`` for the U-Net baselines) leaves
    the other rows' configurations as they are. A setting that none of the trainers reads is refused,
    and so is one a trainer's ``overrides`` would replace (``Trainer.check_changes``)."""
    from ..training import get_trainer
    from ..training.config import setting_names

    settings = dict(settings or {})
    shares: dict[str, dict] = {}
    for trainer in dict.fromkeys(trainers):
        cls = get_trainer(trainer)
        read = cls.config_fields()
        share = {}
        for key, value in settings.items():
            if key == "loss_weights":
                terms = {t: w for t, w in value.items() if f"loss_weights.{t}" in read}
                if terms:
                    share[key] = terms
            elif key in read:
                share[key] = value
        cls.check_changes(share)
        shares[trainer] = share
    for name in setting_names(settings):
        readers = [t for t, share in shares.items() if name in setting_names(share)]
        if not readers:
            raise ConfigurationError(
                f"none of the experiment's trainers ({', '.join(shares)}) reads {name}: setting it would change "
                "nothing; drop it or add a trainer that reads it (--trainers)"
            )
        if len(readers) < len(shares):
            others = ", ".join(t for t in shares if t not in readers)
            logger.info(f"{name}: set for {', '.join(readers)} only (not read by {others})")
    return shares


def run_config(trainer: str, config=None, settings: dict | None = None, quick: bool = False):
    """The configuration of one run: ``config`` (or the trainer's own default), then ``settings``, then
    the trainer's ``quick`` values. A setting that ``quick`` would replace is refused, not dropped, and so
    is one the trainer does not read or its overrides replace (``Trainer.check_changes``)."""
    from ..training import get_trainer

    cls = get_trainer(trainer)
    cls.check_changes(settings or {})
    clash = sorted(set(settings or {}) & set(cls.quick)) if quick else []
    if clash:
        options = ", ".join("--" + k.replace("_", "-") for k in clash)
        raise ConfigurationError(f"--quick sets {options} itself (a smoke test): drop {options} or --quick")
    chosen = (config or cls.default_config()).updated(**(settings or {}))
    return chosen.updated(**cls.quick) if quick else chosen


def reference_folder(raw: Path, target: str, evaluation: str) -> Path:
    """Where the target's references are: its organ maps for an ``organs`` evaluation (when it has
    them; else its liver labels), ``labelsTr`` for the liver."""
    from ..datasets import load_dataset_json
    from ..datasets.format import ORGAN_FOLDER

    if evaluation == "organs":
        extra = load_dataset_json(raw / target).extra
        if extra.get("organ_labels"):
            return raw / target / extra.get("organ_label_folder", ORGAN_FOLDER)
    return raw / target / "labelsTr"


def run_one(
    run: Run,
    splits: dict,
    raw: Path,
    preprocessed: Path,
    output: Path,
    config,
    device,
    evaluation: str,
    measure: str = "liver",
) -> Path:
    """Train (or resume), predict the fold's target and evaluate (``measure``: ``"liver"`` or
    ``"organs"``); returns the run folder."""
    from ..evaluation import evaluate_folders, match_classes
    from ..inference import predict
    from ..training import get_trainer, train_fold

    folder = output / "runs" / run.fold / run.trainer / f"seed{run.seed}"
    if (folder / "run.json").is_file():
        return folder
    start = time.perf_counter()
    fold = splits["folds"][run.fold]
    seeded = config.updated(seed=run.seed)
    target = fold["target"]
    three_d = get_trainer(run.trainer).configuration == "3d"
    images = raw / target / "imagesTr"
    if not images.is_dir():
        raise LiverwildError(f"{images}: the target's raw images are needed for evaluation (set --raw or LW_raw)")
    labels = reference_folder(raw, target, measure)
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
        predictions = folder / "predictions"
        report = predict(
            images,
            predictions,
            model=model,
            device=device,
            progress=False,
            liver_only=three_d and measure == "liver",
            postprocess=measure == "liver",  # organs: raw argmax, as the source paper reports
        )
        classes = match_classes(predictions, labels) if measure == "organs" else None
        table, summary, failures = evaluate_folders(
            predictions,
            labels,
            output_csv=folder / "results.csv",
            progress=False,
            protocol=evaluation,
            classes=classes,
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
            "measure": measure,
            "organs": list(classes) if classes else ["liver"],
            "references": str(labels),
            "config": seeded.to_json(),
            "n_scans": int(table["case"].nunique()),
            "failed": {**failures, **{s["name"]: s["error"] for s in report["scans"] if s["error"]}},
            "dice_mean": summary["dice"]["mean"],
            "seconds": round(time.perf_counter() - start, 1),
        },
    )
    what = "mean organ Dice" if classes else "Dice"
    logger.info(
        f"{run.key}: {what} {summary['dice']['mean']:.3f} on {table['case'].nunique()} {target} scans "
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
    settings: dict | None = None,
    device="auto",
    evaluation: str = "native",
    quick: bool = False,
) -> dict:
    """Run a protocol end to end — train, predict the target, evaluate every (fold, trainer, seed) — and
    write ``report.md`` and ``report.json``; what ``lw_experiment`` runs.

    Args:
        name: ``"multi-dg"``, ``"single-dg"``, ``"ablations"``, ``"seeds"`` or ``"organs-3d"``
            (documentation/experiments.md).
        raw, preprocessed, results: folders; default ``$LW_raw``, ``$LW_preprocessed``, ``$LW_results``.
        output: the experiment folder (default ``<results>/experiments/<name>``).
        trainers, seeds, fold: override the protocol's rows, seeds and folds (``fold``: a name or a list).
        config: one :class:`~liverwild.training.TrainerConfig` for every run (seeds replaced per run);
            default: each trainer's own (``Trainer.default_config()``).
        settings: configuration fields changed for every run that reads them (``--set`` and the command's
            options; :func:`trainer_settings`).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
        evaluation: ``"native"`` grid, or ``"paper"`` (the paper's in-plane resampling).
        quick: 2 epochs of 4 steps (3D trainers: 2 of 2 volumes) — a smoke test, labelled as such.

    Returns:
        The report dict (also ``report.json``): protocol, reference trainer, runs, mean Dice per
        target and row, scan count.

    Example::

        from liverwild.experiments import run_experiment
        run_experiment("multi-dg", trainers=["ContrastiveDistillationTrainer", "MASFTrainer"], device="cuda")
    """
    from preprocessing.splits import load_splits

    from ..paths import preprocessed_folder, raw_folder, results_folder
    from .report import collect, write_report

    raw_root, pre_root = raw_folder(raw, must_exist=True), preprocessed_folder(preprocessed, must_exist=True)
    output = Path(output) if output else results_folder(results) / "experiments" / name
    plan = prepare_plan(name, pre_root, trainers, seeds, fold)
    splits = load_splits(pre_root / "splits.json")
    paper = {"multi-dg": "multi-dg", "single-dg": "single-dg"}.get(name, "multi-dg")
    protocol = paper if evaluation == "paper" else evaluation
    logger.info(
        f"{name}: {len(plan.runs)} runs ({len({r.fold for r in plan.runs})} folds × "
        f"{len({r.trainer for r in plan.runs})} trainers × {len({r.seed for r in plan.runs})} seeds) → {output}"
    )
    shares = trainer_settings([run.trainer for run in plan.runs], settings)  # every refusal before any training
    configs = {trainer: run_config(trainer, config, share, quick) for trainer, share in shares.items()}
    for run in plan.runs:
        run_one(run, splits, raw_root, pre_root, output, configs[run.trainer], device, protocol, plan.evaluation)
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
            "config": config.to_json() if config else "each trainer's own (see runs/*/run.json)",
            "settings": dict(settings or {}),
            "device": str(device),
        },
    )

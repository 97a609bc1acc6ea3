"""``run_experiment``: for each (fold, trainer, seed) of a protocol — train, predict the target, evaluate —
then a Markdown report shaped like the paper's tables. Everything goes through the functions the
commands use (``train_fold``, ``predict``, ``evaluate_folders``).

Output folder (``--output``, default ``$LW_results/experiments/<protocol>``)::

    runs/<fold>/<trainer>/seed<k>/{predictions/, results.csv, run.json}   # one finished run each
    models/seed<k>/<fold>/<trainer>__<plans>/                           # lw_train's output
    stale/<time>/{runs,models}/...                                      # runs redone since, set aside
    results.csv                                                         # every scan of every run
    report.md, report.json

A run with ``run.json`` is finished; it is reused when the configuration record it keeps (everything
that decides its numbers, :mod:`.records`) hashes to the request's. Otherwise (another configuration,
or no record: an older liverwild's) it is redone and the old one moved to ``stale/<time>/`` with the same
relative path — its model too, unless only the measurement differs. An interrupted run (no ``run.json``)
resumes its training from ``checkpoint_latest.pth`` when that checkpoint fits the request, and redoes
prediction and evaluation. The report reads only runs whose hash is the request's.

Every run starts from its trainer's own configuration (``Trainer.default_config()``: the paper's recipe,
or the 3D trainers'), then the experiment's settings that it reads (a setting no trainer of the
experiment reads is refused), then ``--quick``'s (the trainer's ``quick``).
A ``3d`` trainer is evaluated per organ on the target's organ maps in ``organs-3d`` (without
post-processing, as the source paper reports), and on the liver alone in the liver protocols.
``--evaluation`` chooses the measurement: the native grid with ``lw_predict``'s post-processing by default,
or ``paper`` — the paper's in-plane grid (128², 192² for ``single-dg``) without post-processing.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..atomic import write_json_atomic
from ..errors import LiverwildError
from ..log import get_logger, quieter
from .protocols import Plan, Run, make_plan, single_dg_folds
from .records import canonical, mismatch, named, only_measurement, read_run
from .requests import RunRequest, evaluation_choice, request_run, run_config, trainer_settings

if TYPE_CHECKING:
    pass

logger = get_logger(__name__)

STALE = "stale"  # output/stale/<time>/: runs and models set aside because the request changed


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


def run_folder(output: Path, run: Run) -> Path:
    return output / "runs" / run.fold / run.trainer / f"seed{run.seed}"


def set_aside(path: Path, output: Path, stamp: str) -> Path:
    """Move ``path`` (inside ``output``) to ``output/stale/<stamp>/`` under the same relative path — one
    rename, so the folder is either where it was or there, never half-moved; returns where it went."""
    destination = output / STALE / stamp / path.relative_to(output)
    for k in range(1, 1000):
        if not destination.exists():
            break
        destination = output / STALE / f"{stamp}.{k}" / path.relative_to(output)
    destination.parent.mkdir(parents=True, exist_ok=True)
    path.rename(destination)
    return destination


def model_conflict(model: Path, request: RunRequest) -> str | None:
    """Why the model folder's latest checkpoint cannot be continued into (or reused as) the requested
    training, or None when it can (or there is none): it was trained with another configuration, other
    plans, or for more epochs than asked. More epochs asked than done: lw_train continues it."""
    from ..checkpoints import load_checkpoint
    from ..training.config import EXECUTION_FIELDS

    latest = model / "checkpoint_latest.pth"
    if not latest.is_file():
        return None
    try:
        state = load_checkpoint(latest)
    except LiverwildError as exc:
        return str(exc)
    stored = canonical({k: v for k, v in state.get("config", {}).items() if k not in EXECUTION_FIELDS})
    wanted = request.record["config"]
    changed = [k for k in sorted(wanted) if k != "epochs" and stored.get(k, wanted[k]) != wanted[k]]
    if changed:
        return f"trained with another configuration ({named(changed)} differ)"
    done = int(state.get("epochs_done", 0))
    if done > wanted["epochs"]:
        return f"trained for {done} epochs, more than the {wanted['epochs']} asked"
    plans = state.get("plans") or {}
    for source, data in request.record["data"].items():
        used = plans.get(source) or {}
        if plans and data not in (used.get("data_identifier"), used.get("3d", {}).get("data_identifier")):
            return f"trained on other preprocessed data of {source}"
    return None


def run_one(request: RunRequest, preprocessed: Path, output: Path, device) -> Path:
    """Train (or resume), predict the fold's target and evaluate; returns the run folder.

    A finished run (``run.json``) whose configuration hash is the request's is reused. One with another
    hash (or none: an older liverwild's) is redone: its run folder is moved to ``output/stale/``, and its
    model too unless only the measurement differs (:func:`.records.only_measurement`; the model is then
    reused). Before training, a model folder whose checkpoint does not fit the request
    (:func:`model_conflict`) is moved there as well; one that does is continued by lw_train."""
    from ..evaluation import evaluate_folders, match_classes
    from ..inference import predict
    from ..training import train_fold

    run = request.run
    folder = run_folder(output, run)
    meta = read_run(folder)
    stale = mismatch(meta, request.record)
    if stale is None:
        return folder
    stamp = time.strftime("%Y%m%d-%H%M%S")
    if meta is not None:  # a finished run, but not this one
        reason, changed = stale
        keep = only_measurement(changed)
        if not keep:  # the model first: a crash before the run folder moves leaves the stale run.json to redo
            models = (output / "models").resolve()
            named_models = [request.model, *([Path(meta["model"])] if meta.get("model") else [])]
            for model in sorted({m.resolve() for m in named_models}):
                if model.is_dir() and model.is_relative_to(models):  # never a folder outside the experiment
                    set_aside(model, output.resolve(), stamp)
        where = set_aside(folder, output, stamp)
        logger.warning(
            f"{run.key}: redone — its run.json {reason}; "
            + ("its model is kept (only the measurement differs); " if keep else "retrained from scratch; ")
            + f"the old run moved to {where}"
        )
    conflict = model_conflict(request.model, request)
    if conflict and request.model.is_dir():
        where = set_aside(request.model, output, stamp)
        logger.warning(f"{run.key}: the model in {request.model} was {conflict}: moved to {where}, training anew")
    start = time.perf_counter()
    target = request.record["fold_definition"]["target"]
    with quieter("liverwild.training", "liverwild.inference", "liverwild.evaluation"):  # one line per run
        # lw_train's own re-run rules: a finished run is reused, an interrupted (or shorter) one resumed
        trained = train_fold(
            run.fold,
            run.trainer,
            preprocessed=str(preprocessed),
            results=str(output / "models" / f"seed{run.seed}"),
            device=device,
            config=request.config,
            progress=False,
        )
        model = Path(trained["output"])
        predictions = folder / "predictions"
        report = predict(
            request.images,
            predictions,
            model=model,
            device=device,
            progress=False,
            liver_only=request.liver_only,
            postprocess=request.postprocess,
        )
        classes = match_classes(predictions, request.references) if request.measure == "organs" else None
        table, summary, failures = evaluate_folders(
            predictions,
            request.references,
            output_csv=folder / "results.csv",
            progress=False,
            protocol=request.evaluation,
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
            "evaluation_protocol": request.evaluation,
            "postprocessing": request.record["postprocessing"],
            "measure": request.measure,
            "organs": list(classes) if classes else ["liver"],
            "references": str(request.references),
            "config": request.config.to_json(),
            "quick": request.quick,
            "device": str(device),
            "configuration": request.record,
            "configuration_hash": request.digest,
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
    concurrent: int = 1,
) -> dict:
    """Run a protocol end to end — train, predict the target, evaluate every (fold, trainer, seed) — and
    write ``report.md`` and ``report.json``; what ``lw_experiment`` runs.

    Args:
        name: ``"multi-dg"``, ``"single-dg"``, ``"ablations"``, ``"seeds"`` or ``"organs-3d"``
            (documentation/experiments.md).
        raw, preprocessed, results: folders; default ``$LW_raw``, ``$LW_preprocessed``, ``$LW_results``.
        output: the experiment folder (default ``<results>/experiments/<name>``).
        trainers, seeds, fold: override the protocol's rows, seeds and folds (``fold``: a name or a list).
        config: one configuration for every run (seeds replaced per run; of the rows' family,
            :class:`~liverwild.training.SliceTrainerConfig` or ``VolumeTrainerConfig``); default: each
            trainer's own (``default_config()``).
        settings: configuration fields changed for every run that reads them (``--set`` and the command's
            options; :func:`trainer_settings`).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
        evaluation: ``"native"`` grid (default), ``"multi-dg"`` (128²) or ``"single-dg"`` (192²), each with
            lw_predict's post-processing; or ``"paper"``: the paper's protocol — its grid for the experiment
            and no post-processing (:func:`.requests.evaluation_choice`).
        quick: 2 epochs of 4 steps (3D trainers: 2 of 2 volumes) — a smoke test, labelled as such.
        concurrent: runs at once on the device, each in its own process with 1/``concurrent`` of its memory
            (CPU: of the threads); :mod:`.concurrent`. 1 (default): one after the other, in this process.

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

    if concurrent < 1:
        raise LiverwildError(f"--concurrent {concurrent}: give 1 or more runs at once")
    raw_root, pre_root = raw_folder(raw, must_exist=True), preprocessed_folder(preprocessed, must_exist=True)
    output = Path(output) if output else results_folder(results) / "experiments" / name
    protocol, postprocess = evaluation_choice(evaluation, name)
    plan = prepare_plan(name, pre_root, trainers, seeds, fold)
    splits = load_splits(pre_root / "splits.json")
    logger.info(
        f"{name}: {len(plan.runs)} runs ({len({r.fold for r in plan.runs})} folds × "
        f"{len({r.trainer for r in plan.runs})} trainers × {len({r.seed for r in plan.runs})} seeds) → {output}"
    )
    shares = trainer_settings([run.trainer for run in plan.runs], settings)  # every refusal before any training
    configs = {trainer: run_config(trainer, config, share, quick) for trainer, share in shares.items()}
    requests = [
        request_run(
            run,
            splits,
            raw_root,
            pre_root,
            output,
            configs[run.trainer],
            protocol,
            plan.evaluation,
            quick,
            postprocess,
        )
        for run in plan.runs
    ]
    if concurrent == 1:
        for request in requests:
            run_one(request, pre_root, output, device)
    else:
        from .concurrent import run_concurrently

        jobs = [(request, pre_root, output, str(device)) for request in requests]
        run_concurrently(run_one, jobs, [request.run.key for request in requests], concurrent, device)
    collected = collect(output, plan, {r.run: r.record for r in requests})
    return write_report(
        output,
        collected,
        {
            "protocol": name,
            "output": str(output),
            "evaluation": protocol,
            "evaluation_option": evaluation,
            "config": config.to_json() if config else "each trainer's own (see runs/*/run.json)",
            "settings": dict(settings or {}),
            "device": str(device),
            "concurrent": concurrent,
        },
    )

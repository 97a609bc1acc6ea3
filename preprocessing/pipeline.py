"""lw_plan_and_preprocess, the orchestrator: fingerprint → plans → cached slices, views and features
(the 2D configuration) and/or resized volumes with organ classes (``3d``) → splits.

Each job has its own module: plan making in ``planning.planner``, the per-case transform in
``preprocessing.transform`` (also used by prediction), the CPU stage in ``preprocessing.cases`` (run
per case in worker processes), the batched teacher in ``preprocessing.features`` (main process, GPU
with mixed precision when available, overlapping the workers), the folds in ``preprocessing.splits``.
Each finished case is written atomically; re-runs skip cases whose inputs and plan are unchanged.

Under ``torchrun --nproc_per_node N`` rank 0 fingerprints and plans (holding the dataset locks for the
job), every rank caches its share of the cases (case ``i`` goes to rank ``i mod N``) with the teacher on
its own device, and rank 0 gathers the reports and writes ``splits.json``.

The ``3d`` configuration (``configurations=("3d",)``, ``-c 3d``) needs no teacher: its cases are read,
normalised and resized in worker processes (``preprocessing.volumes``) into their own cache
``<Name>/lw3d_.../``, with the same atomic writes, resumption and failure reports.
"""

from __future__ import annotations

import contextlib
import functools
import json
from pathlib import Path

from liverwild import distributed
from liverwild.backbones import describe_teacher
from liverwild.datasets import find_dataset, load_dataset_json
from liverwild.device import configure_cpu_threads, resolve_device
from liverwild.distributed import distributed_session
from liverwild.errors import ConfigurationError
from liverwild.locking import folder_lock
from liverwild.log import get_logger
from liverwild.paths import preprocessed_folder, raw_folder
from planning.fingerprint import extract_fingerprint, load_fingerprint, save_fingerprint
from planning.planner import PlanRequest, make_plans, resolve_weights
from planning.plans import load_plans, save_plans

from .caching import DatasetReport, preprocess_dataset, preprocess_dataset_3d
from .features import FeatureExtractor, build_backbone
from .splits import refresh_splits

logger = get_logger(__name__)

CONFIGURATIONS = ("2d", "3d")
TRANSFORMS_ON = ("auto", "cpu", "device")  # where the 2D cache's per-case transform runs (--transforms-on)


def plan_and_preprocess(
    names,
    *,
    raw=None,
    preprocessed=None,
    backbone=None,
    weights=None,
    random_backbone=False,
    views=None,
    device="auto",
    workers: int = 1,
    batch_size: int = 32,
    plan_only=False,
    preprocess_only=False,
    replan=False,
    val_per_source: int | None = None,
    seed: int | None = None,
    threads: int | None = None,
    progress: bool = True,
    tap=None,
    normalization: str | None = None,
    configurations=("2d",),
    volume_size=None,
    slice_context=None,
    transforms_on: str = "auto",
) -> list:
    """Fingerprint, plan and cache the named raw datasets, then refresh ``splits.json`` — what
    ``lw_plan_and_preprocess`` runs.

    Args:
        names: raw dataset names (folders of ``raw``) or nnU-Net dataset numbers.
        raw, preprocessed: folders; default ``$LW_raw`` and ``$LW_preprocessed``.
        backbone: a registered teacher (``dino-vits16``, ``imagenet-effnet-lite0``, ...) or a timm name.
        weights: the teacher's weights (a file, ``"package:..."``, ``"timm-cache"``); ``random_backbone``
            uses random weights instead (tests and demos; recorded in every artefact).
        views: augmented views cached per slice (default 2).
        device, batch_size: where and in which batches the teacher runs.
        workers: processes for the per-case CPU stage.
        plan_only, preprocess_only, replan: stop after planning; cache with the stored plans; plan
            from the defaults again.
        val_per_source: held-out validation cases per source in the folds (None: the existing
            ``splits.json``'s, 5 for new splits).
        seed: the augmentation's seed — which augmented views are cached; recorded in the plans
            (``augmentation.seed``, part of the data identifier; None: the stored plans' seed, 0 for new
            plans) — and the seed of the folds' held-out validation cases (None: the existing
            ``splits.json``'s, 0 for new splits).
        threads: torch CPU threads.
        progress: show progress bars.
        tap: the teacher's feature tap (default per teacher).
        normalization: a preset of ``planning.plans.NORMALIZATION_PRESETS``: ``"default"``, ``"single-dg"``
            (the paper's CT→MR setting, CT [−125, 275] HU) or ``"single-dg-0-125"`` (CT [0, 125] HU).
        configurations: which caches to write: ``"2d"`` (slices, views, teacher features) and/or
            ``"3d"`` (resized volumes with organ classes). Both are always planned.
        volume_size: the ``3d`` volumes' ``(z, y, x)`` voxels (default 64 × 128 × 128, the paper's).
        slice_context: the teacher's slice context: ``"slice"`` (default, the paper) or ``"neighbours"`` (the
            slices above and below fill the teacher's other input channels).
        transforms_on: where the 2D cache's per-case transform (normalisation, resize, augmented views) runs:
            ``"cpu"`` (in the worker processes), ``"device"`` (torch on the teacher's device; the workers only
            read) or ``"auto"`` (the device when it is not the CPU). The same cache within float16 rounding.

    Returns:
        One :class:`DatasetReport` per dataset and configuration (processed, unchanged and failed
        cases, slices, seconds).

    Example::

        from preprocessing.pipeline import plan_and_preprocess
        plan_and_preprocess(["BTCV", "CHAOS"], backbone="imagenet-effnet-lite0", device="cuda")
    """
    if transforms_on not in TRANSFORMS_ON:
        raise ConfigurationError(f"--transforms-on {transforms_on}: choose one of {', '.join(TRANSFORMS_ON)}")
    unknown = sorted(set(configurations) - set(CONFIGURATIONS))
    if unknown or not configurations:
        raise ConfigurationError(
            f"unknown configuration(s) {unknown or '(none given)'}: use {' and/or '.join(CONFIGURATIONS)}"
        )
    raw_root = raw_folder(raw, must_exist=True)
    pre_root = preprocessed_folder(preprocessed)
    weights = resolve_weights(weights, random_backbone)
    configure_cpu_threads(threads)
    folders = [find_dataset(n, raw_root) for n in names]
    with distributed_session(device) as (context, dev), contextlib.ExitStack() as locks:
        plans, rejected = None, None
        if context.is_main:  # one writer per dataset folder: rank 0 holds the locks for the whole job
            for name in sorted({f.name for f in folders}):
                locks.enter_context(folder_lock(pre_root / name, "lw_plan_and_preprocess -d " + " ".join(names)))
            request = PlanRequest(
                backbone=backbone,
                weights=weights,
                views=views,
                replan=replan,
                tap=tap,
                normalization=normalization,
                volume_size=None if volume_size is None else tuple(volume_size),
                slice_context=slice_context,
                seed=seed,
            )
            plans, rejected = plan_datasets(folders, pre_root, request, preprocess_only, workers, progress)
        plans, rejected = distributed.broadcast_object((plans, rejected))
        if plan_only:
            return []
        reports = []
        if "2d" in configurations:
            reports += cache_datasets(
                folders, pre_root, plans, rejected, dev, batch_size, workers, progress, context, transforms_on
            )
        if "3d" in configurations:
            reports += [
                preprocess_dataset_3d(f, pre_root, plans[f.name], workers, progress, rejected.get(f.name), context)
                for f in folders
            ]
        shares = zip(*distributed.gather_objects(reports))  # per dataset, the report of every rank
        reports = [functools.reduce(DatasetReport.merged, dataset_shares) for dataset_shares in shares]
        if context.is_main:
            for report in reports:
                logger.info(report.summary())
            splits = refresh_splits(pre_root, raw_root, val_per_source, seed)
            logger.info(
                f"splits: {len(splits['folds'])} folds in {pre_root / 'splits.json'}: "
                + ", ".join(sorted(splits["folds"]))
            )
        distributed.barrier()
        return reports


def plan_datasets(
    folders,
    pre_root: Path,
    request: PlanRequest,
    preprocess_only: bool,
    workers: int,
    progress: bool,
) -> tuple:
    """Fingerprint and plan each raw dataset folder as ``request`` asks (or load its plans with
    ``preprocess_only``: then any plan option is refused, and a seed other than the stored augmentation
    seed). Returns ``({name: Plans}, {name: {case: reason the fingerprint rejected it}})``."""
    seed = request.seed
    if preprocess_only and request.changes():
        raise ConfigurationError(
            f"{', '.join(request.changes())} would change the plans, but --preprocess-only uses the stored plans.json "
            "as it is: run without --preprocess-only, or edit plans.json"
        )
    plans_by_dataset, rejected = {}, {}
    for folder in folders:
        target = pre_root / folder.name
        if preprocess_only:
            stored = load_plans(target / "plans.json")
            if seed is not None and stored.augmentation.seed != seed:
                raise ConfigurationError(
                    f"--seed {seed} would change the plans of {folder.name} (augmentation seed "
                    f"{stored.augmentation.seed}), but --preprocess-only uses the stored plans.json as it "
                    "is: run without --preprocess-only, or edit plans.json"
                )
            plans_by_dataset[folder.name] = stored
            continue
        previous = load_fingerprint(target) if (target / "dataset_fingerprint.json").is_file() else None
        fingerprint = extract_fingerprint(folder, workers, progress, previous)
        save_fingerprint(fingerprint, target)
        for reason in fingerprint["failed"].values():
            logger.warning(f"FAILED {reason}")
        rejected[folder.name] = fingerprint["failed"]
        organ_labels = load_dataset_json(folder).extra.get("organ_labels")
        plans = make_plans(fingerprint, target / "plans.json", request, organ_labels)
        save_plans(plans, target / "plans.json")
        plans_by_dataset[folder.name] = plans
        logger.info(f"{folder.name}: fingerprint and plans in {target} (data identifier {plans.data_identifier()})")
    return plans_by_dataset, rejected


def cache_datasets(
    folders,
    pre_root: Path,
    plans_by_dataset: dict,
    rejected: dict,
    device,
    batch_size: int,
    workers: int,
    progress: bool,
    context: distributed.DistributedContext | None = None,
    transforms_on: str = "auto",
) -> list:
    """Cache every dataset with its plans (this rank's share of the cases under torchrun); one feature
    extractor per distinct teacher; the per-case transform where ``transforms_on`` says."""
    reports, extractors = [], {}
    dev = resolve_device(device)
    for folder in folders:
        plans = plans_by_dataset[folder.name]
        key = json.dumps(plans.backbone.to_json() if plans.backbone is not None else None, sort_keys=True)
        if key not in extractors:
            extractors[key] = FeatureExtractor(build_backbone(plans), dev, batch_size)
        extractor = extractors[key]
        logger.info(f"{folder.name}: teacher {describe_teacher(extractor.backbone.config)}")
        if extractor.backbone.weights == "random" and (context is None or context.is_main):
            logger.warning(
                f"{folder.name}: WARNING the backbone has RANDOM weights (--random-backbone); "
                "features are for tests only, and the cache is labelled 'random'."
            )
        report = preprocess_dataset(
            folder, pre_root, plans, extractor, workers, progress, rejected.get(folder.name), context, transforms_on
        )
        reports.append(report)
    return reports

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
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from liverwild import distributed
from liverwild.backbones import describe_teacher
from liverwild.datasets import case_files, find_dataset, load_dataset_json, organ_file
from liverwild.datasets.format import ORGAN_FOLDER
from liverwild.device import configure_cpu_threads, resolve_device
from liverwild.distributed import distributed_session
from liverwild.errors import ConfigurationError, LiverwildError
from liverwild.locking import folder_lock
from liverwild.log import get_logger
from liverwild.parallel import bounded_imap
from liverwild.paths import preprocessed_folder, raw_folder
from planning.fingerprint import extract_fingerprint, load_fingerprint, save_fingerprint
from planning.planner import PlanRequest, make_plans, resolve_weights
from planning.plans import Plans, load_plans, save_plans

from .cache import ARRAYS, ARRAYS_3D, input_signature, is_complete, remove_stale_temporaries, write_case
from .cases import prepare_case, prepare_volume_case
from .features import FeatureExtractor, build_backbone
from .splits import refresh_splits

logger = get_logger(__name__)

# ---- one dataset -------------------------------------------------------------------------------


CONFIGURATIONS = ("2d", "3d")


@dataclass
class DatasetReport:
    dataset: str
    data_identifier: str = ""
    processed: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    failed: dict = field(default_factory=dict)
    slices: int = 0
    seconds: float = 0.0
    configuration: str = "2d"

    @property
    def label(self) -> str:
        """The dataset's name, with the configuration when it is not the 2D one (``BTCV (3d)``)."""
        return self.dataset if self.configuration == "2d" else f"{self.dataset} ({self.configuration})"

    def merged(self, other: DatasetReport) -> DatasetReport:
        """The report of two ranks' shares of one dataset (seconds: the longer)."""
        return DatasetReport(
            self.dataset,
            self.data_identifier or other.data_identifier,
            sorted(self.processed + other.processed),
            sorted(self.skipped + other.skipped),
            {**self.failed, **other.failed},
            self.slices + other.slices,
            max(self.seconds, other.seconds),
            self.configuration,
        )

    def summary(self) -> str:
        unit = "slices" if self.configuration == "2d" else "input slices"
        return (
            f"{self.label}: {len(self.processed)} processed, {len(self.skipped)} unchanged, "
            f"{len(self.failed)} failed ({self.slices} {unit}, {self.seconds:.1f} s) → {self.data_identifier}"
        )


def preprocess_dataset(
    raw_dataset_folder,
    preprocessed_root,
    plans: Plans,
    extractor: FeatureExtractor | None = None,
    workers: int = 1,
    progress: bool = True,
    failed: dict | None = None,
    context: distributed.DistributedContext | None = None,
) -> DatasetReport:
    """Cache every case of one raw dataset under ``preprocessed_root/<Name>/<data id>/``. ``failed``: cases
    the fingerprint already rejected (case → reason); they are reported, not read again. ``context``:
    under torchrun, this rank caches only its share of the cases."""

    start = time.perf_counter()
    folder = Path(raw_dataset_folder)
    info = load_dataset_json(folder)
    data_id = plans.data_identifier()
    context = context or distributed.DistributedContext()
    out = open_cache_folder(Path(preprocessed_root) / info.name / data_id, plans, context)
    report = DatasetReport(info.name, data_id)

    def inputs(case: str) -> tuple:
        return (*case_files(folder, info, case), organ_file(folder, info, case))

    share = context.shard(info.cases)
    log_share(context, info.name, share)
    pending = pending_cases(share, out, report, failed, inputs, ARRAYS)
    todo = [(case, image, label, organs, plans, workers >= 1) for case, image, label, organs in pending]
    if todo and extractor is None:
        extractor = FeatureExtractor(build_backbone(plans))

    def add_features(arrays: dict, properties: dict) -> int:
        assert extractor is not None  # made above whenever there is a case to cache
        z = arrays["slices"].shape[1]
        t0 = time.perf_counter()
        # one stack per view, stored as the plans say (feature_dtype)
        arrays["features"] = np.stack([extractor(view, plans.feature_dtype) for view in arrays["slices"]])
        properties["feature_seconds"] = round(time.perf_counter() - t0, 3)
        return z

    show = progress and context.is_main
    cache_cases(prepare_case, todo, out, report, workers, show, f"preprocess {info.name}", add_features)
    report.seconds = time.perf_counter() - start
    return report


def pending_cases(cases, out: Path, report: DatasetReport, failed: dict | None, inputs, arrays) -> list[tuple]:
    """``(case, *input paths)`` of the cases that still need caching in ``out`` — the resumption rule of
    both configurations. ``inputs(case)`` gives a case's input files (``None`` for an absent optional one)
    or raises :class:`LiverwildError` saying why it cannot be cached. Into ``report``: cases the
    fingerprint rejected (``failed``), cases that cannot be cached or miss an input (failed), and cases
    whose folder holds every one of ``arrays`` made from the same inputs and plan (skipped)."""
    todo = []
    for case in cases:
        if failed and case in failed:
            report.failed[case] = failed[case]
            continue
        try:
            paths = inputs(case)
            signature = input_signature(*(p for p in paths if p is not None))
        except LiverwildError as exc:
            report.failed[case] = str(exc)
            logger.warning(f"FAILED {exc}")
            continue
        except FileNotFoundError as exc:
            report.failed[case] = f"{exc.filename}: missing"
            continue
        if is_complete(out / case, signature, report.data_identifier, arrays):
            report.skipped.append(case)
        else:
            todo.append((case, *paths))
    return todo


def log_share(context: distributed.DistributedContext, dataset: str, cases: list) -> None:
    """Under torchrun, which rank caches which cases of ``dataset`` (in the log)."""
    if context.enabled:
        names = ", ".join(cases)
        logger.info(f"rank {context.rank}/{context.world_size} caches {len(cases)} cases of {dataset}: {names}")


def open_cache_folder(out: Path, plans: Plans, context: distributed.DistributedContext) -> Path:
    """A configuration's cache folder ``<root>/<Name>/<data identifier>/``, made ready by rank 0 before any
    rank writes: created, emptied of what a killed run left half-written, given its ``plans.json``."""
    if context.is_main:
        out.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(out)
        save_plans(plans, out / "plans.json")
    distributed.barrier()
    return out


def cache_cases(job, todo: list, out: Path, report: DatasetReport, workers: int, show: bool, desc: str, finish) -> None:
    """Run the CPU stage ``job`` over ``todo`` in worker processes; each case that succeeds is completed in
    this process by ``finish(arrays, properties)`` (which returns its slice count) and written atomically,
    each that fails is reported in one line. Updates ``report``."""
    from tqdm import tqdm

    bar = tqdm(total=len(todo), desc=desc, unit="case", disable=not (show and todo))
    for case, arrays, properties, error in bounded_imap(job, todo, workers, pool_from=1):
        if error:
            report.failed[case] = error
            logger.warning(f"FAILED {error}")
        else:
            report.slices += finish(arrays, properties)
            write_case(out / case, arrays, properties)
            report.processed.append(case)
        bar.update()
    bar.close()


def preprocess_dataset_3d(
    raw_dataset_folder,
    preprocessed_root,
    plans: Plans,
    workers: int = 1,
    progress: bool = True,
    failed: dict | None = None,
    context: distributed.DistributedContext | None = None,
) -> DatasetReport:
    """Cache every case of one raw dataset for the ``3d`` configuration under
    ``preprocessed_root/<Name>/<lw3d_... identifier>/``: the normalised volume resized to the plans'
    ``volume_size`` and its organ classes, from the organ maps (``labelsTr_organs/``) or the liver label
    as the plans' ``3d.label_maps`` says. ``failed`` and ``context`` as for :func:`preprocess_dataset`."""

    start = time.perf_counter()
    folder = Path(raw_dataset_folder)
    info = load_dataset_json(folder)
    data_id = plans.data_identifier_3d()
    context = context or distributed.DistributedContext()
    out = open_cache_folder(Path(preprocessed_root) / info.name / data_id, plans, context)
    report = DatasetReport(info.name, data_id, configuration="3d")
    uses_organs = plans.config_3d.get("label_maps") == "organs"

    def inputs(case: str) -> tuple:
        """The scan and the labels the 3d cache reads: its organ map, or its liver label."""
        image_path, label_path = case_files(folder, info, case)
        if not uses_organs:
            return image_path, label_path
        organs = organ_file(folder, info, case)
        if organs is None:
            where = folder / info.extra.get("organ_label_folder", ORGAN_FOLDER) / f"{case}{info.file_ending}"
            raise LiverwildError(
                f"{where}: missing; the 3d configuration of {info.name} trains on its organ maps "
                "(plans.json 3d.label_maps)"
            )
        return image_path, organs

    share = context.shard(info.cases)
    log_share(context, info.name, share)
    pending = pending_cases(share, out, report, failed, inputs, ARRAYS_3D)
    todo = [(case, image, labels, plans, workers >= 1) for case, image, labels in pending]

    def input_slices(arrays: dict, properties: dict) -> int:
        return int(properties["canonical_geometry"]["size"][2])

    show = progress and context.is_main
    cache_cases(prepare_volume_case, todo, out, report, workers, show, f"preprocess {info.name} (3d)", input_slices)
    report.seconds = time.perf_counter() - start
    return report


# ---- the whole command -------------------------------------------------------------------------


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
    val_per_source: int = 5,
    seed: int | None = None,
    threads: int | None = None,
    progress: bool = True,
    tap=None,
    normalization: str | None = None,
    configurations=("2d",),
    volume_size=None,
    slice_context=None,
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
        val_per_source: held-out validation cases per source in the folds.
        seed: the augmentation's seed — which augmented views are cached; recorded in the plans
            (``augmentation.seed``, part of the data identifier; None: the stored plans' seed, 0 for new
            plans) — and the seed of the folds' held-out validation cases (None: 0).
        threads: torch CPU threads.
        progress: show progress bars.
        tap: the teacher's feature tap (default per teacher).
        normalization: ``"default"`` or ``"single-dg"`` (the paper's CT→MR preset).
        configurations: which caches to write: ``"2d"`` (slices, views, teacher features) and/or
            ``"3d"`` (resized volumes with organ classes). Both are always planned.
        volume_size: the ``3d`` volumes' ``(z, y, x)`` voxels (default 64 × 128 × 128, the paper's).
        slice_context: the teacher's slice context: ``"slice"`` (default, the paper) or ``"neighbours"`` (the
            slices above and below fill the teacher's other input channels).

    Returns:
        One :class:`DatasetReport` per dataset and configuration (processed, unchanged and failed
        cases, slices, seconds).

    Example::

        from preprocessing.pipeline import plan_and_preprocess
        plan_and_preprocess(["BTCV", "CHAOS"], backbone="imagenet-effnet-lite0", device="cuda")
    """
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
            reports += cache_datasets(folders, pre_root, plans, rejected, dev, batch_size, workers, progress, context)
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
            splits = refresh_splits(pre_root, raw_root, val_per_source, 0 if seed is None else seed)
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
            if seed is not None and stored.augmentation.get("seed", 0) != seed:
                raise ConfigurationError(
                    f"--seed {seed} would change the plans of {folder.name} (augmentation seed "
                    f"{stored.augmentation.get('seed', 0)}), but --preprocess-only uses the stored plans.json as it "
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
) -> list:
    """Cache every dataset with its plans (this rank's share of the cases under torchrun); one feature
    extractor per distinct teacher."""
    reports, extractors = [], {}
    dev = resolve_device(device)
    for folder in folders:
        plans = plans_by_dataset[folder.name]
        key = json.dumps(plans.backbone, sort_keys=True)
        if key not in extractors:
            extractors[key] = FeatureExtractor(build_backbone(plans), dev, batch_size)
        logger.info(f"{folder.name}: teacher {describe_teacher(plans.backbone)}")
        if plans.backbone["weights"] == "random" and (context is None or context.is_main):
            logger.warning(
                f"{folder.name}: WARNING the backbone has RANDOM weights (--random-backbone); "
                "features are for tests only, and the cache is labelled 'random'."
            )
        report = preprocess_dataset(
            folder, pre_root, plans, extractors[key], workers, progress, rejected.get(folder.name), context
        )
        reports.append(report)
    return reports

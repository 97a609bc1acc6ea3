"""lw_plan_and_preprocess as functions: fingerprint → plans → cached slices, views and features → splits.

CPU stages (read, reorient, normalise, resize, augment) run per case in worker processes; the frozen
backbone runs in the main process on batches of slices (GPU with mixed precision when available), so
the two overlap. Each finished case is written atomically; re-runs skip cases whose inputs and plan
are unchanged.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from liverwild.backbones import MISSING_WEIGHTS, FrozenBackbone, describe_teacher, teacher_config
from liverwild.datasets import case_files, find_dataset, load_dataset_json, organ_file
from liverwild.device import autocast, configure_cpu_threads, resolve_device
from liverwild.errors import ConfigurationError, LiverwildError
from liverwild.io import Reorientation, check_not_constant, read_image, read_label
from liverwild.locking import folder_lock
from liverwild.log import get_logger
from liverwild.parallel import bounded_imap
from liverwild.paths import preprocessed_folder, raw_folder
from planning.fingerprint import body_mask, extract_fingerprint, load_fingerprint, save_fingerprint
from planning.planner import plan_dataset
from planning.plans import Plans, default_normalization, load_plans, save_plans

from .augmentation import augment_stack
from .cache import input_signature, is_complete, list_cases, remove_stale_temporaries, write_case
from .normalization import normalize_scan
from .slices import resize_label_map_stack, resize_label_stack, resize_stack
from .splits import update_splits

logger = get_logger(__name__)

# ---- CPU stage ---------------------------------------------------------------------------------


def view_seed(base: int, case: str, view: int) -> int:
    return int(np.random.SeedSequence([base, view, *(ord(c) for c in case)]).generate_state(1)[0])


def prepare_slices(image, geometry, plans: Plans, body_median=None, inplace: bool = False):
    """Scan array in stored layout → normalised canonical ``(Z, h, w)`` float32 stack + stats.

    ``inplace`` lets the normalisation overwrite ``image`` (float32) instead of copying it.
    """
    reorient = Reorientation.from_geometry(geometry)
    canonical = reorient.to_canonical(image)  # a view: no copy
    if plans.normalization.get("relative_to_body_median") and body_median is None:
        body_median = float(np.median(canonical[body_mask(canonical, plans.modality)]))
    normalised, stats = normalize_scan(canonical, plans.normalization, body_median, inplace)
    return resize_stack(normalised, plans.slice_size), stats, reorient


def case_inputs(image_path, label_path, organs_path=None) -> list:
    """The files a cached case is made from (its signature covers them all)."""
    return [image_path, label_path] + ([organs_path] if organs_path else [])


def prepare_case(job):
    """Read, normalise, resize and augment one case. Returns (case, arrays, properties, error)."""
    case, image_path, label_path, organs_path, plans_json, single_thread = job
    if single_thread:
        torch.set_num_threads(1)
    plans = Plans.from_json(plans_json)
    try:
        image = read_image(image_path)
        check_not_constant(image)
        label = read_label(label_path)
        diffs = label.geometry.differences(image.geometry)
        if diffs:
            raise LiverwildError(f"{label_path}: geometry differs from its image: " + "; ".join(diffs))
        start = time.perf_counter()
        slices, stats, reorient = prepare_slices(image.array, image.geometry, plans, inplace=True)
        labels = resize_label_stack(np.ascontiguousarray(reorient.to_canonical(label.array)), plans.slice_size)
        organs = None
        if organs_path is not None:
            organ_map = read_label(organs_path)
            diffs = organ_map.geometry.differences(image.geometry)
            if diffs:
                raise LiverwildError(f"{organs_path}: geometry differs from its image: " + "; ".join(diffs))
            if organ_map.array.min() < 0 or organ_map.array.max() > 255:
                raise LiverwildError(f"{organs_path}: organ values must lie in 0..255")
            organs = resize_label_map_stack(
                np.ascontiguousarray(reorient.to_canonical(organ_map.array)), plans.slice_size
            )
        views_s, views_l = [slices], [labels]
        for v in range(1, plans.views + 1):
            s, m = augment_stack(
                slices, labels, plans.augmentation, view_seed(plans.augmentation.get("seed", 0), case, v)
            )
            views_s.append(s)
            views_l.append(m)
        arrays = {"slices": np.stack(views_s).astype(np.float16), "labels": np.stack(views_l), "organs": organs}
        liver = np.flatnonzero(labels.any(axis=(1, 2)))
        properties = {
            "case": case,
            "image": str(image_path),
            "label": str(label_path),
            "organs": str(organs_path) if organs_path else None,
            "signature": input_signature(*case_inputs(image_path, label_path, organs_path)),
            "data_identifier": plans.data_identifier(),
            "modality": plans.modality,
            "n_slices": int(slices.shape[0]),
            "views": plans.views,
            "liver_slices": [int(liver[0]), int(liver[-1])] if liver.size else None,
            "geometry": image.geometry.to_dict(),
            "canonical_geometry": reorient.canonical_geometry(image.geometry).to_dict(),
            "reorientation": {"order": list(reorient.order), "flip": list(reorient.flip)},
            "normalization": stats,
            "backbone": dict(plans.backbone),
            "cpu_seconds": round(time.perf_counter() - start, 3),
        }
        return case, arrays, properties, None
    except LiverwildError as exc:
        return case, None, None, str(exc)


# ---- feature stage -----------------------------------------------------------------------------


class FeatureExtractor:
    """Batched frozen-backbone inference: float16 slices ``(N, h, w)`` → float16 maps ``(N, C, h', w')``."""

    def __init__(self, backbone: FrozenBackbone, device="auto", batch_size: int = 32, amp: bool = True):
        self.device = resolve_device(device) if not isinstance(device, torch.device) else device
        self.backbone = backbone.to(self.device)
        self.batch_size, self.amp = batch_size, amp

    @torch.inference_mode()
    def __call__(self, slices: np.ndarray) -> np.ndarray:
        n = slices.shape[0]
        out = np.empty((n, self.backbone.feature_channels, *self.backbone.feature_size), np.float16)
        for start in range(0, n, self.batch_size):
            x = torch.from_numpy(np.ascontiguousarray(slices[start : start + self.batch_size], dtype=np.float32))
            x = x[:, None].to(self.device, non_blocking=True)
            with autocast(self.device, self.amp):
                f = self.backbone(x)
            out[start : start + len(x)] = f.float().cpu().numpy().astype(np.float16)
        return out


def build_backbone(plans: Plans) -> FrozenBackbone:
    if plans.backbone.get("weights") is None:
        raise ConfigurationError(MISSING_WEIGHTS.format(name=plans.backbone.get("teacher") or plans.backbone["name"]))
    return FrozenBackbone.from_config(plans.backbone, plans.slice_size[0])


# ---- one dataset -------------------------------------------------------------------------------


@dataclass
class DatasetReport:
    dataset: str
    data_identifier: str = ""
    processed: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    failed: dict = field(default_factory=dict)
    slices: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        return (
            f"{self.dataset}: {len(self.processed)} processed, {len(self.skipped)} unchanged, "
            f"{len(self.failed)} failed ({self.slices} slices, {self.seconds:.1f} s) → {self.data_identifier}"
        )


def preprocess_dataset(
    raw_dataset_folder,
    preprocessed_root,
    plans: Plans,
    extractor: FeatureExtractor | None = None,
    workers: int = 1,
    progress: bool = True,
    failed: dict | None = None,
) -> DatasetReport:
    """Cache every case of one raw dataset under ``preprocessed_root/<Name>/<data id>/``. ``failed``: cases
    the fingerprint already rejected (case → reason); they are reported, not read again."""
    from tqdm import tqdm

    start = time.perf_counter()
    folder = Path(raw_dataset_folder)
    info = load_dataset_json(folder)
    data_id = plans.data_identifier()
    out = Path(preprocessed_root) / info.name / data_id
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)
    save_plans(plans, out / "plans.json")
    report = DatasetReport(info.name, data_id)
    todo = []
    for case in info.cases:
        if failed and case in failed:
            report.failed[case] = failed[case]
            continue
        image_path, label_path = case_files(folder, info, case)
        organs_path = organ_file(folder, info, case)
        try:
            signature = input_signature(*case_inputs(image_path, label_path, organs_path))
        except FileNotFoundError as exc:
            report.failed[case] = f"{exc.filename}: missing"
            continue
        if is_complete(out / case, signature, data_id):
            report.skipped.append(case)
        else:
            todo.append((case, image_path, label_path, organs_path, plans.to_json(), workers >= 1))
    if todo and extractor is None:
        extractor = FeatureExtractor(build_backbone(plans))
    bar = tqdm(total=len(todo), desc=f"preprocess {info.name}", unit="case", disable=not progress or not todo)
    for case, arrays, properties, error in bounded_imap(prepare_case, todo, workers, pool_from=1):
        if error:
            report.failed[case] = error
            logger.warning(f"FAILED {error}")
        else:
            assert extractor is not None  # made above whenever there is a case to cache
            v, z = arrays["slices"].shape[:2]
            t0 = time.perf_counter()
            features = extractor(arrays["slices"].reshape(v * z, *arrays["slices"].shape[2:]))
            arrays["features"] = features.reshape(v, z, *features.shape[1:])
            properties["feature_seconds"] = round(time.perf_counter() - t0, 3)
            write_case(out / case, arrays, properties)
            report.processed.append(case)
            report.slices += z
        bar.update()
    bar.close()
    report.seconds = time.perf_counter() - start
    return report


# ---- the whole command -------------------------------------------------------------------------


def resolve_weights(weights=None, random_backbone: bool = False):
    if random_backbone and weights not in (None, "random"):
        raise ConfigurationError("--random-backbone and --backbone-weights exclude each other")
    if random_backbone:
        return "random"
    if weights in (None, "random", "timm-cache") or str(weights).startswith("package:"):
        return weights
    path = Path(weights).expanduser()
    if not path.is_file():
        raise ConfigurationError(f"{path}: backbone weights file does not exist")
    return str(path.resolve())


def make_plans(
    fingerprint: dict,
    plans_path: Path,
    backbone=None,
    weights=None,
    views=None,
    replan=False,
    tap=None,
    normalization: str | None = None,
) -> Plans:
    """Keep an existing (possibly hand-edited) plans.json, overriding only what the user passed.

    A new ``backbone`` starts from that teacher's own weights source and tap unless ``weights``/``tap``
    are given too; the same teacher keeps its recorded weights and tap unless overridden.
    """
    if plans_path.is_file() and not replan:
        plans = load_plans(plans_path)
        current = plans.backbone
        same_teacher = not backbone or backbone in (current.get("teacher"), current.get("name"))
        if not same_teacher:
            plans.backbone = teacher_config(backbone, weights, tap)
        elif weights is not None or tap is not None:
            plans.backbone = teacher_config(
                current.get("teacher") or current["name"],
                weights if weights is not None else current.get("weights"),
                tap or current.get("tap", {}).get("spec"),
            )
        if views is not None:
            plans.augmentation["views_per_slice"] = int(views)
        if normalization is not None:
            plans.normalization = default_normalization(plans.modality, fingerprint.get("aggregate"), normalization)
        return plans
    kwargs = {"weights": weights, "tap": tap, "normalization": normalization or "default"}
    if backbone:
        kwargs["backbone"] = backbone
    if views is not None:
        kwargs["views"] = int(views)
    return plan_dataset(fingerprint, **kwargs)


def refresh_splits(preprocessed_root: Path, raw_root: Path | None, val_per_source: int = 5, seed: int = 0) -> dict:
    """Leave-one-dataset-out folds over every dataset with plans and a cache in ``preprocessed_root``,
    free of target scans (content digests from the fingerprints, declared containment from dataset.json)."""
    datasets, contained, digests = {}, {}, {}
    for plans_path in sorted(Path(preprocessed_root).glob("*/plans.json")):
        plans = load_plans(plans_path)
        cases = list_cases(plans_path.parent / plans.data_identifier())
        if cases:
            datasets[plans.dataset] = cases
        if (plans_path.parent / "dataset_fingerprint.json").is_file():
            fingerprint = load_fingerprint(plans_path.parent)
            digests[plans.dataset] = {
                c: v["content_digest"] for c, v in fingerprint["cases"].items() if "content_digest" in v
            }
        if raw_root is not None and (Path(raw_root) / plans.dataset / "dataset.json").is_file():
            extra = load_dataset_json(Path(raw_root) / plans.dataset).extra
            contained[plans.dataset] = extra.get("contained_in", [])
    return update_splits(Path(preprocessed_root) / "splits.json", datasets, val_per_source, seed, contained, digests)


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
    seed: int = 0,
    threads: int | None = None,
    progress: bool = True,
    tap=None,
    normalization: str | None = None,
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
        val_per_source, seed: held-out validation cases per source in the folds, and their seed.
        threads: torch CPU threads.
        progress: show progress bars.
        tap: the teacher's feature tap (default per teacher).
        normalization: ``"default"`` or ``"single-dg"`` (the paper's CT→MR preset).

    Returns:
        One :class:`DatasetReport` per dataset (processed, unchanged and failed cases, slices, seconds).

    Example::

        from preprocessing.pipeline import plan_and_preprocess
        plan_and_preprocess(["BTCV", "CHAOS"], backbone="imagenet-effnet-lite0", device="cuda")
    """
    raw_root = raw_folder(raw, must_exist=True)
    pre_root = preprocessed_folder(preprocessed)
    weights = resolve_weights(weights, random_backbone)
    configure_cpu_threads(threads)
    folders = [find_dataset(n, raw_root) for n in names]
    with contextlib.ExitStack() as locks:  # one writer per dataset folder
        for name in sorted({f.name for f in folders}):
            locks.enter_context(folder_lock(pre_root / name, "lw_plan_and_preprocess -d " + " ".join(names)))
        plans, rejected = plan_datasets(
            folders,
            pre_root,
            backbone,
            weights,
            views,
            replan,
            tap,
            normalization,
            preprocess_only,
            workers,
            progress,
        )
        if plan_only:
            return []
        reports = cache_datasets(folders, pre_root, plans, rejected, device, batch_size, workers, progress)
        splits = refresh_splits(pre_root, raw_root, val_per_source, seed)
        logger.info(
            f"splits: {len(splits['folds'])} folds in {pre_root / 'splits.json'}: {', '.join(sorted(splits['folds']))}"
        )
        return reports


def plan_datasets(
    folders,
    pre_root: Path,
    backbone,
    weights,
    views,
    replan,
    tap,
    normalization,
    preprocess_only: bool,
    workers: int,
    progress: bool,
) -> tuple:
    """Fingerprint and plan each raw dataset folder (or load its plans with ``preprocess_only``).
    Returns ``({name: Plans}, {name: {case: reason the fingerprint rejected it}})``."""
    plans_by_dataset, rejected = {}, {}
    for folder in folders:
        target = pre_root / folder.name
        if preprocess_only:
            plans_by_dataset[folder.name] = load_plans(target / "plans.json")
            continue
        previous = load_fingerprint(target) if (target / "dataset_fingerprint.json").is_file() else None
        fingerprint = extract_fingerprint(folder, workers, progress, previous)
        save_fingerprint(fingerprint, target)
        for reason in fingerprint["failed"].values():
            logger.warning(f"FAILED {reason}")
        rejected[folder.name] = fingerprint["failed"]
        plans = make_plans(fingerprint, target / "plans.json", backbone, weights, views, replan, tap, normalization)
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
) -> list:
    """Cache every dataset with its plans; one feature extractor per distinct teacher."""
    reports, extractors = [], {}
    dev = resolve_device(device)
    for folder in folders:
        plans = plans_by_dataset[folder.name]
        key = json.dumps(plans.backbone, sort_keys=True)
        if key not in extractors:
            extractors[key] = FeatureExtractor(build_backbone(plans), dev, batch_size)
        logger.info(f"{folder.name}: teacher {describe_teacher(plans.backbone)}")
        if plans.backbone["weights"] == "random":
            logger.warning(
                f"{folder.name}: WARNING the backbone has RANDOM weights (--random-backbone); "
                "features are for tests only, and the cache is labelled 'random'."
            )
        report = preprocess_dataset(
            folder, pre_root, plans, extractors[key], workers, progress, rejected.get(folder.name)
        )
        logger.info(report.summary())
        reports.append(report)
    return reports

"""The caching stage of lw_plan_and_preprocess, one dataset at a time: which cases still need caching
(inputs or plan changed), the per-case CPU work in worker processes with the teacher's features added in
the main process (``2d``) or the resized volumes (``3d``), atomic per-case writes, and the report of what
was processed, unchanged or failed. Under torchrun each rank caches its share of the cases."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from liverwild import distributed
from liverwild.datasets import case_files, load_dataset_json, organ_file
from liverwild.datasets.format import ORGAN_FOLDER
from liverwild.errors import ConfigurationError, LiverwildError
from liverwild.log import get_logger
from liverwild.parallel import bounded_imap
from planning.plans import Plans, save_plans

from .cache import ARRAYS, ARRAYS_3D, input_signature, is_complete, remove_stale_temporaries, write_case
from .cases import prepare_case, prepare_volume_case, read_case, transform_case
from .features import FeatureExtractor, build_backbone

logger = get_logger(__name__)


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
    transforms_on: str = "auto",
) -> DatasetReport:
    """Cache every case of one raw dataset under ``preprocessed_root/<Name>/<data id>/``. ``failed``: cases
    the fingerprint already rejected (case → reason); they are reported, not read again. ``context``:
    under torchrun, this rank caches only its share of the cases. ``transforms_on``: ``"cpu"`` — the
    workers read and transform each case (:func:`.cases.prepare_case`); ``"device"`` — they only read
    (:func:`.cases.read_case`) and the transform runs on the teacher's device in this process
    (:mod:`.on_device`); ``"auto"``: the device unless it is the CPU."""

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
    device = None if extractor is None else transform_device(transforms_on, extractor.device)
    if device is None:
        cache_cases(prepare_case, todo, out, report, workers, show, f"preprocess {info.name}", add_features)
    else:

        def transform_and_add_features(arrays: dict, properties: dict) -> int:
            made, described = transform_case(arrays, properties, plans, device)
            arrays.clear()
            arrays.update(made)
            properties.clear()
            properties.update(described)
            return add_features(arrays, properties)

        desc = f"preprocess {info.name} ({device})"
        cache_cases(read_case, todo, out, report, workers, show, desc, transform_and_add_features)
    report.seconds = time.perf_counter() - start
    return report


def transform_device(transforms_on: str, teacher_device):
    """The device of the per-case transform (None: the CPU path in the workers) for ``transforms_on``. MPS
    lacks the float64 the device path rounds as the CPU path does: ``auto`` keeps the workers there, and
    ``device`` is refused."""
    if transforms_on not in ("auto", "cpu", "device"):
        raise ConfigurationError(f"--transforms-on {transforms_on}: choose one of auto, cpu, device")
    if transforms_on == "cpu" or (transforms_on == "auto" and teacher_device.type in ("cpu", "mps")):
        return None
    if teacher_device.type == "mps":
        raise ConfigurationError(
            "--transforms-on device: MPS has no float64, which the device transform needs to give the CPU "
            "path's cache; use --transforms-on cpu (the default, auto, does so on MPS)"
        )
    return teacher_device


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
    uses_organs = plans.config_3d is not None and plans.config_3d.label_maps == "organs"

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

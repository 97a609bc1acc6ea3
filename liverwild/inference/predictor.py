"""Segment scans with a trained model and write masks in the input geometry.

Per scan: read → canonical axial slices normalised with the model's plans and resized to 224² →
frozen backbone → head + decoder (batches of slices, mixed precision on GPU) → probabilities resized
back to the canonical in-plane grid (bilinear, on probabilities) → threshold 0.5 → anatomical
post-processing on the canonical grid (:mod:`.postprocessing`: bridges cut, one piece kept by size and
side of the body, one run of slices, holes filled, plausibility flags; each step switchable) → inverse
reorientation → uint8 mask with exactly the input's size, spacing, origin and direction. Seconds per
stage are recorded.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from preprocessing.features import context_slices, slice_batches

from .. import distributed
from ..atomic import write_json_atomic
from ..device import autocast
from ..distributed import distributed_session
from ..errors import ConfigurationError, LiverwildError
from ..io import Geometry, Volume, check_not_constant, read_image, write_mask, write_volume
from ..locking import acquire, release
from ..log import get_logger
from ..revision import provenance_fields
from .discovery import find_scans
from .model import TrainedModel
from .postprocessing import body_centre_mm, plausibility, postprocess, steps_from

logger = get_logger(__name__)

STAGES = ("read", "preprocess", "backbone", "head_decoder", "resample", "postprocess", "write")


def guess_modality(image: np.ndarray) -> str:
    """'CT' when the 1st percentile is below −500 (air in HU), else 'MR'."""
    sample = image[::4, ::4, ::4] if image.size > 1e6 else image
    return "CT" if float(np.percentile(sample, 1)) < -500 else "MR"


@dataclass
class ScanResult:
    name: str
    input: str
    output: str = ""
    modality: str = ""
    normalization: dict = field(default_factory=dict)
    slices: int = 0
    liver_ml: float = 0.0
    organ_ml: dict = field(default_factory=dict)  # 3d models: volume of every organ written
    flags: list | None = None  # plausibility flags of the liver mask (None: not checked)
    extent_mm: dict = field(default_factory=dict)  # the liver mask's craniocaudal and in-plane extents
    seconds: dict = field(default_factory=dict)
    error: str = ""


class Predictor:
    """``predict_volume`` for arrays in memory; ``predict_path`` for a file or DICOM folder. A 2D model's
    predictor (the liver, slice by slice); :class:`~liverwild.inference.volumetric.VolumePredictor` is
    the ``3d`` models'."""

    stages: tuple[str, ...] = STAGES  # the seconds recorded per scan, in order

    def __init__(
        self,
        model: TrainedModel,
        device,
        batch_size: int | None = None,
        postprocess: bool | Iterable[str] = True,
        amp: bool = True,
        modality: str = "auto",
    ):
        self.model, self.device = model, device
        self.batch_size = batch_size or (128 if device.type == "cuda" else 16)
        self.steps = self.steps_for(postprocess)
        self.amp, self.modality = amp, modality
        self.warmup_seconds = self.warm_up() if device.type == "cuda" else 0.0

    @torch.inference_mode()
    def warm_up(self) -> float:
        """One forward on a zero batch of the prediction batch size, so that CUDA's lazy set-up (kernel
        loading, library handles, algorithm choice) is paid once per process, not inside the first
        scan's model time. Returns its seconds."""
        start = time.perf_counter()
        zeros = np.zeros((self.batch_size, *self.model.slice_size), np.float32)
        x = torch.from_numpy(context_slices(zeros, 0, self.batch_size, self.model.context)).to(self.device)
        with autocast(self.device, self.amp):
            self.model.segment(x)
        self._sync()
        return time.perf_counter() - start

    def steps_for(self, option: bool | Iterable[str]) -> tuple[str, ...]:
        """The post-processing steps of a ``postprocess`` option (:func:`.postprocessing.steps_from`)."""
        return steps_from(option)

    def locate_body(self, volume: Volume, modality: str) -> np.ndarray | None:
        """The body centre (LPS mm, :func:`.postprocessing.body_centre_mm`) when a step uses it, else None."""
        if {"location", "plausibility"} & set(self.steps):
            return body_centre_mm(volume.array, volume.geometry, modality)
        return None

    def finish_liver(self, mask: np.ndarray, geometry: Geometry, centre: np.ndarray | None) -> tuple:
        """``(mask, plausibility or None)``: the post-processing steps on a canonical liver mask ``(z, y, x)``
        on its canonical ``geometry``; ``centre`` from :meth:`locate_body`."""
        if self.steps:
            mask = postprocess(mask, geometry, self.steps, centre)
        return mask, plausibility(mask, geometry, centre) if "plausibility" in self.steps else None

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def label_names(self) -> dict[int, str]:
        """Value → name of the masks this predictor writes."""
        return {0: "background", 1: "liver"}

    def describe(self) -> dict:
        """How masks are made, for the prediction report."""
        return {
            "classes": {name: value for value, name in self.label_names().items()},
            "threshold": 0.5,
            "postprocessing": list(self.steps),
        }

    def normalization(self, image: np.ndarray, modality: str) -> dict:
        """The training plans' normalisation for ``modality``, or the default one for a modality no source
        had: :meth:`TrainedModel.normalization_for_scan`."""
        return self.model.normalization_for_scan(image, modality)

    @torch.inference_mode()
    def predict_volume(self, volume: Volume, keep_probabilities: bool = False, release_input: bool = False) -> tuple:
        """``(mask uint8 in stored layout, probabilities float32 or None, {modality, normalization,
        plausibility}, seconds per stage)``; ``plausibility`` is :func:`.postprocessing.plausibility`'s
        dict, or None when that step is off.

        ``release_input=True`` normalises ``volume.array`` in place and empties it afterwards (large scans
        then need about one copy of the volume in memory); the caller must not use it again.
        """
        from planning.plans import Plans
        from preprocessing.transform import prepare_slices

        seconds = {}
        t = time.perf_counter()
        modality = guess_modality(volume.array) if self.modality == "auto" else self.modality
        self.model.check_modality(modality)
        plans = Plans(
            dataset="input",
            modality=modality,
            normalization=self.normalization(volume.array, modality),
            slice_size=list(self.model.slice_size),
        )
        inplace = release_input and volume.array.dtype == np.float32
        t_body = time.perf_counter()
        centre = self.locate_body(volume, modality)  # before the input is normalised in place
        t_body = time.perf_counter() - t_body
        slices, _, reorient = prepare_slices(volume.array, volume.geometry, plans, inplace=inplace)
        if release_input:
            volume.array = np.empty((0, 0, 0), volume.array.dtype)  # released: the memory goes back
        canonical = reorient.canonical_geometry(volume.geometry)
        canonical_shape = canonical.shape
        seconds["preprocess"] = time.perf_counter() - t - t_body
        nz, ny, nx = canonical_shape
        mask = np.empty(canonical_shape, np.uint8)
        probs = np.empty(canonical_shape, np.float32) if keep_probabilities else None
        seconds.update({"backbone": 0.0, "head_decoder": 0.0, "resample": 0.0})
        t = time.perf_counter()
        for start, stop, x in slice_batches(slices, self.batch_size, self.device, self.model.context):
            with autocast(self.device, self.amp):
                logits, teacher_seconds = self.model.segment(x)
                p = torch.sigmoid(logits.float())
            self._sync()
            t2 = time.perf_counter()
            t1 = t + teacher_seconds
            if (ny, nx) != tuple(p.shape[-2:]):
                p = F.interpolate(p, size=(ny, nx), mode="bilinear", align_corners=False)
            mask[start:stop] = (p[:, 0] >= 0.5).to(torch.uint8).cpu().numpy()  # thresholded where computed
            if probs is not None:
                probs[start:stop] = p[:, 0].cpu().numpy()
            t3 = time.perf_counter()
            seconds["backbone"] += t1 - t
            seconds["head_decoder"] += t2 - t1
            seconds["resample"] += t3 - t2
            t = t3  # the next batch's transfer counts as its backbone stage
        t = time.perf_counter()
        mask, check = self.finish_liver(mask, canonical, centre)
        seconds["postprocess"] = time.perf_counter() - t + t_body
        stored = np.ascontiguousarray(reorient.from_canonical(mask))
        stored_probs = np.ascontiguousarray(reorient.from_canonical(probs)) if probs is not None else None
        info = {"modality": modality, "normalization": plans.normalization, "plausibility": check}
        return stored, stored_probs, info, seconds

    @staticmethod
    def load(path) -> tuple:
        """``(volume, seconds)``: the scan read and checked (a constant image is an error)."""
        t = time.perf_counter()
        volume = read_image(path)
        check_not_constant(volume)
        return volume, time.perf_counter() - t

    def segment_loaded(self, name: str, path, volume: Volume, save_probabilities=False, keep_volume=False) -> tuple:
        """``(ScanResult, mask, probabilities or None)`` of a loaded scan (masks in its stored layout).
        Unless ``keep_volume``, ``volume.array`` is used up (its geometry stays)."""
        result = ScanResult(name, str(path))
        mask, probs, info, seconds = self.predict_volume(volume, save_probabilities, release_input=not keep_volume)
        result.modality, result.normalization = info["modality"], info["normalization"]
        if info.get("plausibility") is not None:
            result.flags, result.extent_mm = info["plausibility"]["flags"], info["plausibility"]["extent_mm"]
        result.seconds.update(seconds)
        result.slices = int(volume.geometry.shape[0])
        result.liver_ml = float(mask.sum() * np.prod(volume.geometry.spacing) / 1000)
        return result, mask, probs

    def write_outputs(self, result: ScanResult, volume: Volume, mask, probs, output_dir, overlay=False) -> ScanResult:
        """Write ``<name>.nii.gz`` (and the probabilities, the overlay) in the input geometry; returns
        ``result`` completed with the output path and the seconds of every stage."""
        name, t = result.name, time.perf_counter()
        out = Path(output_dir) / f"{name}.nii.gz"
        write_mask(mask, volume.geometry, out)
        if probs is not None:
            write_volume(probs, volume.geometry, Path(output_dir) / f"{name}_prob.nii.gz", dtype=np.float32)
        result.seconds["write"] = time.perf_counter() - t
        if overlay:
            from ..visualization import canonical_views, overlay_grid

            names = self.label_names()
            several = len(names) > 2
            overlay_grid(
                [(name, result.modality, canonical_views(volume, mask))],
                Path(output_dir) / "overlays" / f"{name}.png",
                title=f"{name}: organ masks" if several else f"{name}: liver mask (red)",
                label_names=names if several else None,
            )
        result.output = str(out)
        result.seconds = {k: round(result.seconds.get(k, 0.0), 4) for k in self.stages}
        return result

    def predict_path(self, name: str, path, output_dir, save_probabilities=False, overlay=False) -> ScanResult:
        """Read, segment and write one scan (the stages :func:`segment_all` overlaps across scans)."""
        volume, read_seconds = self.load(path)
        result, mask, probs = self.segment_loaded(name, path, volume, save_probabilities, keep_volume=overlay)
        result.seconds["read"] = read_seconds
        return self.write_outputs(result, volume, mask, probs, output_dir, overlay)


def make_predictor(
    model: TrainedModel,
    device,
    batch_size: int | None = None,
    postprocess: bool | Iterable[str] = True,
    modality: str = "auto",
    liver_only: bool = False,
    save_probabilities: bool = False,
) -> Predictor:
    """The predictor of ``model``'s configuration: slices (2D) or whole volumes (``3d``). ``batch_size``
    (slices per pass) is refused for a ``3d`` model, which segments one whole volume per pass."""
    if model.configuration == "3d":
        from .volumetric import VolumePredictor

        if batch_size is not None:
            raise ConfigurationError(
                f"--batch-size {batch_size}: a 3d model segments one whole volume per pass; drop --batch-size"
            )

        return VolumePredictor(
            model, device, postprocess, modality=modality, liver_only=liver_only, save_probabilities=save_probabilities
        )
    return Predictor(model, device, batch_size, postprocess, modality=modality)


def guarded(name: str, path, work, *args):
    """``work(*args)``, or the failed :class:`ScanResult` of this scan (logged with a one-line reason) if it
    raises: bad input (LiverwildError) as a warning, anything else as an error with its traceback."""
    try:
        return work(*args)
    except LiverwildError as exc:
        logger.warning(f"FAILED {exc}")
        return ScanResult(name, str(path), error=str(exc))
    except Exception as exc:
        message = f"{path}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        logger.error(f"FAILED {message}", exc_info=True)  # unexpected: the traceback helps a bug report
        return ScanResult(name, str(path), error=message)


def segment_all(
    predictor: Predictor,
    scans,
    rejected,
    output: Path,
    input_paths: set,
    save_probabilities: bool,
    overlays: bool,
    progress: bool,
    reader=None,
    first=None,
) -> tuple:
    """Every scan into ``output``, one failure never stopping the others; ``(results, seconds)``.

    Pipelined: a reader thread loads the next scan and a writer thread writes the previous one's mask
    while the model works on the current scan, so a folder takes about the time of its slowest stage
    (reading and writing are mostly compression, which leaves the GIL). At most one scan waits read and
    two wait written, so memory stays bounded. ``reader`` (a one-thread executor, shut down here) and
    ``first`` (its read of the first scan) let the caller start reading before the model is loaded.
    """
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    results: dict[int, ScanResult] = {}  # by position: rejected inputs first, then the scans in order
    for position, (p, reason) in enumerate(rejected):
        results[position] = ScanResult(Path(p).name, str(p), error=f"{p}: {reason}")
        logger.warning(f"FAILED {results[position].error}")
    todo: list[tuple] = []  # (position, name, path) of the scans to segment
    for position, (name, path) in enumerate(scans, start=len(rejected)):
        if (output / f"{name}.nii.gz").resolve() in input_paths:
            results[position] = ScanResult(name, str(path), error=f"{path}: output would overwrite an input")
            logger.warning(f"FAILED {results[position].error}")
        else:
            todo.append((position, name, path))
    start = time.perf_counter()
    reader = reader or ThreadPoolExecutor(1, thread_name_prefix="lw-read")
    if first is None or not todo or todo[0][2] != scans[0][1]:
        first = reader.submit(predictor.load, todo[0][2]) if todo else None
    with reader, ThreadPoolExecutor(1, thread_name_prefix="lw-write") as writer:
        reads = deque([first] if first is not None else [])
        writes: deque = deque()

        def collect_write():
            index, name, path, future = writes.popleft()
            results[index] = guarded(name, path, future.result)

        def segment(name, path, pending):
            volume, read_seconds = pending.result()
            result, mask, probs = predictor.segment_loaded(name, path, volume, save_probabilities, overlays)
            result.seconds["read"] = read_seconds
            return result, volume, mask, probs

        for k, (index, name, path) in enumerate(tqdm(todo, desc="predict", unit="scan", disable=not progress)):
            pending = reads.popleft()
            if k + 1 < len(todo):
                reads.append(reader.submit(predictor.load, todo[k + 1][2]))
            outcome = guarded(name, path, segment, name, path, pending)
            if isinstance(outcome, ScanResult):
                results[index] = outcome
                continue
            if len(writes) >= 2:
                collect_write()
            result, volume, mask, probs = outcome
            job = writer.submit(predictor.write_outputs, result, volume, mask, probs, output, overlays)
            writes.append((index, name, path, job))
        while writes:
            collect_write()
    return [results[i] for i in sorted(results)], time.perf_counter() - start


def software_provenance() -> dict:
    """``git_revision`` and ``versions`` (:func:`liverwild.revision.provenance_fields`) with the libraries
    prediction runs on."""
    import SimpleITK
    import timm

    return provenance_fields(
        torch=torch.__version__,
        timm=timm.__version__,
        SimpleITK=SimpleITK.Version.VersionString(),
        numpy=np.__version__,
    )


def predict(
    inputs,
    output,
    *,
    model="default",
    results=None,
    trainer=None,
    checkpoint="best",
    device="auto",
    batch_size=None,
    postprocess=True,
    save_probabilities=False,
    overlays=False,
    modality="auto",
    backbone_weights=None,
    progress=True,
    part: int = 0,
    num_parts: int = 1,
    int8_teacher: bool = False,
    liver_only: bool = False,
) -> dict:
    """Segment every scan in ``inputs`` into ``output`` — what ``lw_predict`` runs.

    Args:
        inputs: a scan file (NIfTI, NRRD, MHA), a DICOM series folder, or a folder of them.
        output: folder for ``<scan>.nii.gz`` masks (uint8, the input's size, spacing, origin and
            direction: liver 0/1, or a 3d model's organ labels as the report's ``classes`` says) and
            ``prediction_report.json``; must differ from the input folder.
        model: a trained model folder, a fold name under ``results``, or ``"default"`` (the shipped model).
        results, trainer: where to look up a fold name, and which trainer's model when a fold has several.
        checkpoint: ``"best"``, ``"final"``, ``"latest"`` or a file name in the model folder.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
        batch_size: slices per forward pass (default 128 on GPU, 16 on CPU).
        postprocess: ``True`` (default) every post-processing step of the liver mask
            (:data:`.postprocessing.STEPS`: ``largest_component``, ``bridges``, ``location``,
            ``z_continuity``, ``fill_holes``, ``plausibility``), ``False`` none, or a list of step names;
            a 3d model's organ map takes ``largest_component`` (of every organ) alone.
        save_probabilities: also write ``<scan>_prob.nii.gz`` (float32; the liver's probability — for a
            3d model with ``liver_only``).
        overlays: also write ``overlays/<scan>.png``.
        modality: ``"auto"`` (from the intensities), ``"CT"`` or ``"MR"``.
        backbone_weights: the teacher's weights file when it moved since training.
        progress: show a progress bar.
        int8_teacher: CPU only: run the teacher with int8 linear layers (faster; off by default, see
            :mod:`liverwild.backbones.quantization`).
        liver_only: a 3d (multi-organ) model writes the liver alone as a 0/1 mask (its organ map's liver
            label), to compare it with the 2D models; 2D models always do.
        part, num_parts: segment only scans ``part``, ``part + num_parts``, ... of the sorted list
            (nnU-Net's convention), so that ``num_parts`` processes or machines share one folder
            without writing a scan twice; each part writes ``prediction_report.part<K>of<N>.json``.
            Under ``torchrun`` the ranks are the parts (leave these at 0 and 1): each rank uses its own
            GPU and rank 0 writes one merged ``prediction_report.json``.

    Returns:
        The report written to ``prediction_report.json``: model, device, git revision and versions, the
        post-processing steps applied, per-scan seconds per stage, liver volume (ml), plausibility
        ``flags`` and ``extent_mm``, and error; ``n_ok`` and ``n_failed``.

    Failures are reported per scan (a warning naming the file) and do not stop the others; a folder
    without any scan is an error.

    Example::

        from liverwild.inference import predict
        report = predict("scans/", "masks/", device="cpu")
        print(report["n_ok"], "masks written")
    """

    steps_from(postprocess)  # unknown steps are refused before anything is read
    inputs, output = Path(inputs), Path(output)
    if output.resolve() == (inputs.resolve() if inputs.is_dir() else inputs.resolve().parent):
        raise LiverwildError(
            f"{output}: the output folder must differ from the input folder (inputs are never overwritten)"
        )
    scans, rejected = find_scans(inputs, exclude=output)
    if not scans and not rejected:
        raise LiverwildError(f"{inputs}: no scans found (NIfTI, NRRD, MHA or DICOM series folders)")
    input_paths = {Path(p).resolve() for _, p in scans}
    with distributed_session(device) as (context, dev):
        if context.enabled:
            if num_parts != 1:
                raise ConfigurationError(
                    "under torchrun every rank is one part: leave out --part and --num-parts (or run without torchrun)"
                )
            part, num_parts = context.rank, context.world_size
        if not 0 <= part < num_parts:
            raise ConfigurationError(f"--part {part} --num-parts {num_parts}: need 0 ≤ part < num-parts")
        share = (sorted(scans)[part::num_parts], rejected if part == 0 else [])
        report = _predict_share(
            inputs,
            output,
            share,
            input_paths,
            dev,
            model=model,
            results=results,
            trainer=trainer,
            checkpoint=checkpoint,
            batch_size=batch_size,
            postprocess=postprocess,
            save_probabilities=save_probabilities,
            overlays=overlays,
            modality=modality,
            backbone_weights=backbone_weights,
            progress=progress and context.is_main,
            part=part,
            num_parts=num_parts,
            int8_teacher=int8_teacher,
            liver_only=liver_only,
        )
        if context.enabled:
            report = {**merge_reports(distributed.gather_objects(report)), "job": distributed.describe_job(context)}
            if context.is_main:
                write_json_atomic(output / "prediction_report.json", report)
            distributed.barrier()
    return report


def merge_reports(reports: list) -> dict:
    """One report from the reports of the parts of a folder (scans in input order, counts summed)."""
    merged = dict(reports[0])
    merged["scans"] = sorted((s for r in reports for s in r["scans"]), key=lambda s: s["input"])
    merged["n_ok"] = sum(r["n_ok"] for r in reports)
    merged["n_failed"] = sum(r["n_failed"] for r in reports)
    merged["seconds_total"] = max(r["seconds_total"] for r in reports)
    merged["devices"] = [r["device"] for r in reports]
    merged["part"], merged["num_parts"] = "all", len(reports)
    return merged


def _predict_share(
    inputs: Path,
    output: Path,
    share: tuple,
    input_paths: set,
    dev: torch.device,
    *,
    model,
    results,
    trainer,
    checkpoint,
    batch_size,
    postprocess,
    save_probabilities,
    overlays,
    modality,
    backbone_weights,
    progress,
    part: int,
    num_parts: int,
    int8_teacher: bool,
    liver_only: bool,
) -> dict:
    """:func:`predict` of this process's ``(scans, rejected)``; writes and returns its report."""
    from concurrent.futures import ThreadPoolExecutor

    from .model import resolve_model_dir

    scans, rejected = share
    reader = ThreadPoolExecutor(1, thread_name_prefix="lw-read")
    first = reader.submit(Predictor.load, scans[0][1]) if scans else None  # read while the model loads
    try:
        trained = TrainedModel(
            resolve_model_dir(model, results, trainer), checkpoint, dev, backbone_weights, int8_teacher
        )
    except BaseException:
        reader.shutdown(cancel_futures=True)
        raise
    if trained.config.get("default_model"):
        from ..default_model import DISCLAIMER

        logger.info(f"NOTE: {DISCLAIMER}")
    if trained.random_backbone and distributed.current().is_main:
        logger.warning(
            "WARNING: this model was trained on a RANDOMLY initialised backbone (demo/test setting): its masks "
            "are not meant for real use."
        )
    try:
        predictor = make_predictor(trained, dev, batch_size, postprocess, modality, liver_only, save_probabilities)
    except BaseException:
        reader.shutdown(cancel_futures=True)
        raise
    tag = f".part{part}of{num_parts}" if num_parts > 1 else ""
    try:
        lock = acquire(output, "lw_predict", f".lw{tag}.lock")  # one writer per output folder (or part)
    except OSError as exc:
        raise LiverwildError(
            f"{output}: the output folder cannot be written ({exc.strerror or exc}); nothing was segmented"
        ) from exc
    try:
        results_list, seconds = segment_all(
            predictor, scans, rejected, output, input_paths, save_probabilities, overlays, progress, reader, first
        )
        report = {
            "inputs": str(inputs),
            "output": str(output),
            "model": trained.describe(),
            "plans": {source: plans.to_json() for source, plans in trained.plans.items()},
            "device": str(dev),
            "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu",
            **predictor.describe(),
            **software_provenance(),
            "seconds_total": round(seconds, 3),
            "warmup_seconds": round(predictor.warmup_seconds, 3),
            "scans": [asdict(r) for r in results_list],
            "n_ok": sum(not r.error for r in results_list),
            "n_failed": sum(bool(r.error) for r in results_list),
            "part": part,
            "num_parts": num_parts,
        }
        if not distributed.current().enabled:  # under torchrun rank 0 writes the merged report
            write_json_atomic(output / f"prediction_report{tag}.json", report)
    finally:
        release(lock)
    return report

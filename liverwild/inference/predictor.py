"""Segment scans with a trained model and write masks in the input geometry.

Per scan: read → canonical axial slices normalised with the model's plans and resized to 224² →
frozen backbone → head + decoder (batches of slices, mixed precision on GPU) → probabilities resized
back to the canonical in-plane grid (bilinear, on probabilities) → threshold 0.5 → optional
post-processing (largest 3D component, hole filling) → inverse reorientation → uint8 mask with exactly
the input's size, spacing, origin and direction. Seconds per stage are recorded.
"""

from __future__ import annotations

import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from preprocessing.features import slice_batches

from .. import __version__
from ..atomic import write_json_atomic
from ..device import autocast, resolve_device
from ..errors import LiverwildError
from ..io import Volume, check_not_constant, read_image, write_mask, write_volume
from ..locking import acquire, release
from ..log import get_logger
from .discovery import find_scans
from .model import TrainedModel
from .postprocessing import postprocess

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
    seconds: dict = field(default_factory=dict)
    error: str = ""


class Predictor:
    """``predict_volume`` for arrays in memory; ``predict_path`` for a file or DICOM folder."""

    def __init__(
        self,
        model: TrainedModel,
        device,
        batch_size: int | None = None,
        postprocess: bool = True,
        amp: bool = True,
        modality: str = "auto",
    ):
        self.model, self.device = model, device
        self.batch_size = batch_size or (128 if device.type == "cuda" else 16)
        self.postprocess, self.amp, self.modality = postprocess, amp, modality

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def normalization(self, image: np.ndarray, modality: str, canonical=None) -> dict:
        from planning.plans import default_normalization

        plan = self.model.normalization_for(modality)
        if plan is not None:
            return plan
        aggregate = None
        if modality == "MR":  # no MR source: derive the window from this scan
            from planning.fingerprint import body_mask

            values = image[body_mask(image, "MR")]
            p50, p995 = np.percentile(values, [50, 99.5])
            aggregate = {"n_cases": 1, "median_ratio_p99.5_to_p50_body": float(p995 / max(p50, 1e-6))}
        return default_normalization(modality, aggregate)

    @torch.inference_mode()
    def predict_volume(self, volume: Volume, keep_probabilities: bool = False, release_input: bool = False) -> tuple:
        """``(mask uint8 in stored layout, probabilities float32 or None, {modality, normalization}, seconds
        per stage)``.

        ``release_input=True`` normalises ``volume.array`` in place and empties it afterwards (large scans
        then need about one copy of the volume in memory); the caller must not use it again.
        """
        from planning.plans import Plans
        from preprocessing.transform import prepare_slices

        seconds = {}
        t = time.perf_counter()
        modality = guess_modality(volume.array) if self.modality == "auto" else self.modality
        plans = Plans(
            dataset="input",
            modality=modality,
            normalization=self.normalization(volume.array, modality),
            slice_size=list(self.model.slice_size),
        )
        inplace = release_input and volume.array.dtype == np.float32
        slices, _, reorient = prepare_slices(volume.array, volume.geometry, plans, inplace=inplace)
        if release_input:
            volume.array = np.empty((0, 0, 0), volume.array.dtype)  # released: the memory goes back
        canonical_shape = reorient.canonical_geometry(volume.geometry).shape
        seconds["preprocess"] = time.perf_counter() - t
        nz, ny, nx = canonical_shape
        mask = np.empty(canonical_shape, np.uint8)
        probs = np.empty(canonical_shape, np.float32) if keep_probabilities else None
        seconds.update({"backbone": 0.0, "head_decoder": 0.0, "resample": 0.0})
        t = time.perf_counter()
        for start, stop, x in slice_batches(slices, self.batch_size, self.device):
            with autocast(self.device, self.amp):
                logits, teacher_seconds = self.model.segment(x)
                p = torch.sigmoid(logits.float())
            self._sync()
            t2 = time.perf_counter()
            t1 = t + teacher_seconds
            if (ny, nx) != tuple(p.shape[-2:]):
                p = F.interpolate(p, size=(ny, nx), mode="bilinear", align_corners=False)
            chunk = p[:, 0].cpu().numpy()
            mask[start:stop] = chunk >= 0.5
            if probs is not None:
                probs[start:stop] = chunk
            t3 = time.perf_counter()
            seconds["backbone"] += t1 - t
            seconds["head_decoder"] += t2 - t1
            seconds["resample"] += t3 - t2
            t = t3  # the next batch's transfer counts as its backbone stage
        t = time.perf_counter()
        if self.postprocess:
            mask = postprocess(mask)
        seconds["postprocess"] = time.perf_counter() - t
        stored = np.ascontiguousarray(reorient.from_canonical(mask))
        stored_probs = np.ascontiguousarray(reorient.from_canonical(probs)) if probs is not None else None
        return stored, stored_probs, {"modality": modality, "normalization": plans.normalization}, seconds

    def predict_path(self, name: str, path, output_dir, save_probabilities=False, overlay=False) -> ScanResult:
        result = ScanResult(name, str(path))
        t = time.perf_counter()
        volume = read_image(path)
        check_not_constant(volume)
        result.seconds["read"] = time.perf_counter() - t
        mask, probs, info, seconds = self.predict_volume(volume, save_probabilities, release_input=not overlay)
        result.modality, result.normalization = info["modality"], info["normalization"]
        n_slices = volume.geometry.shape[0]
        result.seconds.update(seconds)
        t = time.perf_counter()
        out = Path(output_dir) / f"{name}.nii.gz"
        write_mask(mask, volume.geometry, out)
        if probs is not None:
            write_volume(probs, volume.geometry, Path(output_dir) / f"{name}_prob.nii.gz", dtype=np.float32)
        result.seconds["write"] = time.perf_counter() - t
        if overlay:
            from ..visualization import canonical_views, overlay_grid

            overlay_grid(
                [(name, result.modality, canonical_views(volume, mask))],
                Path(output_dir) / "overlays" / f"{name}.png",
                title=f"{name}: liver mask (red)",
            )
        result.output, result.slices = str(out), int(n_slices)
        result.liver_ml = float(mask.sum() * np.prod(volume.geometry.spacing) / 1000)
        result.seconds = {k: round(result.seconds.get(k, 0.0), 4) for k in STAGES}
        return result


def segment_all(
    predictor: Predictor,
    scans,
    rejected,
    output: Path,
    input_paths: set,
    save_probabilities: bool,
    overlays: bool,
    progress: bool,
) -> tuple:
    """Every scan into ``output``, one failure never stopping the others; ``(results, seconds)``."""
    from tqdm import tqdm

    results = [ScanResult(Path(p).name, str(p), error=f"{p}: {reason}") for p, reason in rejected]
    for r in results:
        logger.warning(f"FAILED {r.error}")
    start = time.perf_counter()
    for name, path in tqdm(scans, desc="predict", unit="scan", disable=not progress):
        if (output / f"{name}.nii.gz").resolve() in input_paths:
            results.append(ScanResult(name, str(path), error=f"{path}: output would overwrite an input"))
            logger.warning(f"FAILED {results[-1].error}")
            continue
        try:
            results.append(predictor.predict_path(name, path, output, save_probabilities, overlays))
        except LiverwildError as exc:
            results.append(ScanResult(name, str(path), error=str(exc)))
            logger.warning(f"FAILED {exc}")
        except Exception as exc:
            message = f"{path}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            results.append(ScanResult(name, str(path), error=message))
            logger.error(f"FAILED {message}", exc_info=True)  # unexpected: the traceback helps a bug report
    return results, time.perf_counter() - start


def versions() -> dict:
    import SimpleITK
    import timm

    return {
        "liverwild": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "SimpleITK": SimpleITK.Version.VersionString(),
        "numpy": np.__version__,
    }


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
) -> dict:
    """Segment every scan in ``inputs`` into ``output`` — what ``lw_predict`` runs.

    Args:
        inputs: a scan file (NIfTI, NRRD, MHA), a DICOM series folder, or a folder of them.
        output: folder for ``<scan>.nii.gz`` masks (uint8, the input's size, spacing, origin and
            direction) and ``prediction_report.json``; must differ from the input folder.
        model: a trained model folder, a fold name under ``results``, or ``"default"`` (the shipped model).
        results, trainer: where to look up a fold name, and which trainer's model when a fold has several.
        checkpoint: ``"best"``, ``"final"``, ``"latest"`` or a file name in the model folder.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
        batch_size: slices per forward pass (default 128 on GPU, 16 on CPU).
        postprocess: keep the largest 3D component and fill holes.
        save_probabilities: also write ``<scan>_prob.nii.gz`` (float32).
        overlays: also write ``overlays/<scan>.png``.
        modality: ``"auto"`` (from the intensities), ``"CT"`` or ``"MR"``.
        backbone_weights: the teacher's weights file when it moved since training.
        progress: show a progress bar.

    Returns:
        The report written to ``prediction_report.json``: model, device, versions, per-scan seconds per
        stage, liver volume (ml) and error; ``n_ok`` and ``n_failed``.

    Failures are reported per scan (a warning naming the file) and do not stop the others; a folder
    without any scan is an error.

    Example::

        from liverwild.inference import predict
        report = predict("scans/", "masks/", device="cpu")
        print(report["n_ok"], "masks written")
    """
    from .model import resolve_model_dir

    inputs, output = Path(inputs), Path(output)
    if output.resolve() == (inputs.resolve() if inputs.is_dir() else inputs.resolve().parent):
        raise LiverwildError(
            f"{output}: the output folder must differ from the input folder (inputs are never overwritten)"
        )
    scans, rejected = find_scans(inputs, exclude=output)
    input_paths = {Path(p).resolve() for _, p in scans}
    dev = resolve_device(device)
    trained = TrainedModel(resolve_model_dir(model, results, trainer), checkpoint, dev, backbone_weights)
    if trained.config.get("default_model"):
        from ..default_model import DISCLAIMER

        logger.info(f"NOTE: {DISCLAIMER}")
    if trained.random_backbone:
        logger.warning(
            "WARNING: this model was trained on a RANDOMLY initialised backbone (demo/test setting): its masks "
            "are not meant for real use."
        )
    predictor = Predictor(trained, dev, batch_size, postprocess, modality=modality)
    try:
        lock = acquire(output, "lw_predict")  # one writer per output folder
    except OSError as exc:
        raise LiverwildError(
            f"{output}: the output folder cannot be written ({exc.strerror or exc}); nothing was segmented"
        ) from exc
    try:
        results_list, seconds = segment_all(
            predictor, scans, rejected, output, input_paths, save_probabilities, overlays, progress
        )
        report = {
            "inputs": str(inputs),
            "output": str(output),
            "model": trained.describe(),
            "plans": {source: plans.to_json() for source, plans in trained.plans.items()},
            "device": str(dev),
            "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu",
            "postprocessing": ["largest_component", "fill_holes"] if postprocess else [],
            "threshold": 0.5,
            "versions": versions(),
            "seconds_total": round(seconds, 3),
            "scans": [asdict(r) for r in results_list],
            "n_ok": sum(not r.error for r in results_list),
            "n_failed": sum(bool(r.error) for r in results_list),
        }
        write_json_atomic(output / "prediction_report.json", report)
    finally:
        release(lock)
    if not scans and not rejected:
        raise LiverwildError(f"{inputs}: no scans found (NIfTI, NRRD, MHA or DICOM series folders)")
    return report

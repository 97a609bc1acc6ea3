"""What every predictor shares: :class:`ScanResult` (one scan's line of the report), :func:`guess_modality`,
and :class:`BasePredictor`, the methods ``lw_predict``'s driver calls on a predictor (``load``,
``segment_loaded``, ``write_outputs``, ``predict_path``, ``label_names``, ``describe``, ``stages``,
``warmup_seconds``) with the post-processing shared by the liver masks.

A configuration's predictor subclasses :class:`BasePredictor`, implements ``predict_volume`` and
``warm_up``, refuses in its constructor the :class:`PredictorOptions` it cannot honour, and registers
itself with ``@register_predictor("<configuration>")``; :mod:`.registry` finds it by a model's
``configuration``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np

from planning.sections import Normalization

from ..errors import ConfigurationError
from ..io import Geometry, Volume, check_not_constant, read_image, write_mask, write_volume
from .discovery import PROBABILITY_SUFFIX
from .postprocessing import body_centre_mm, plausibility, postprocess, steps_from

OVERLAYS = "overlays"  # the output's subfolder of --overlays pictures, one PNG per scan


class BodyCentre:
    """The body centre of a scan (LPS mm, :func:`.postprocessing.body_centre_mm`), computed in a thread of
    its own from the 2× subsampled copy of the image taken when this is made (so the scan may then be
    normalised in place). :meth:`start` begins the work (once); calling the object waits for the result."""

    def __init__(self, volume: Volume, modality: str):
        sample = np.ascontiguousarray(volume.array[::2, ::2, ::2])  # 1/8 of the scan: a copy
        self.work = partial(body_centre_mm, sample, volume.geometry, modality, subsampled=True)
        self.pending: Future | None = None

    def start(self) -> Future:
        if self.pending is None:
            pool = ThreadPoolExecutor(1, thread_name_prefix="lw-body")
            self.pending = pool.submit(self.work)
            pool.shutdown(wait=False)  # its thread ends with this one piece of work
        return self.pending

    def __call__(self) -> np.ndarray:
        return self.start().result()


class PredictionModel(Protocol):
    """What :class:`BasePredictor` reads of a model: :class:`~.model.TrainedModel` (torch) or
    :class:`~.onnx_runtime.OnnxModel` (an exported graph)."""

    def normalization_for_scan(self, image, modality: str) -> Normalization: ...


class DeviceLike(Protocol):
    """A ``torch.device``, or the ONNX runtime path's :class:`~.onnx_runtime.OrtDevice`."""

    @property
    def type(self) -> str: ...


def guess_modality(image: np.ndarray) -> str:
    """'CT' when the 1st percentile is below −500 (air in HU), else 'MR'."""
    sample = image[::4, ::4, ::4] if image.size > 1e6 else image
    return "CT" if float(np.percentile(sample, 1)) < -500 else "MR"


def modality_of(volume: Volume) -> str:
    """'CT' or 'MR': a DICOM series' own Modality when it says one of them (a CT cropped to the abdomen
    holds no air to guess from), else :func:`guess_modality` of the voxels."""
    return volume.modality if volume.modality in ("CT", "MR") else guess_modality(volume.array)


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
    dicom_seg: str = ""  # the DICOM Segmentation written (--output-type dicom-seg)
    components_removed: dict = field(default_factory=dict)  # organ → 26-connected pieces post-processing dropped
    statistics: list = field(default_factory=list)  # per organ (:mod:`.statistics`), with --statistics
    warnings: list = field(default_factory=list)  # one line each, also logged
    resumed: bool = False  # --continue: segmented by an interrupted run with the same model and options


@dataclass(frozen=True)
class PredictorOptions:
    """How a predictor segments (``lw_predict``'s options); a predictor refuses what its configuration
    cannot honour with a :class:`~liverwild.errors.ConfigurationError`, before any work."""

    batch_size: int | None = None  # slices per forward (2d models); None: the runtime's default for the device
    postprocess: bool | Iterable[str] = True  # all steps, none, or the named ones (.postprocessing)
    modality: str = "auto"  # "CT", "MR" or "auto" (guess_modality)
    liver_only: bool = False  # 3d models: write the liver's mask alone
    save_probabilities: bool = False  # also write the liver probability map
    amp: bool = True  # mixed precision on GPU

    def __post_init__(self):
        if self.batch_size is not None and self.batch_size < 1:  # 0 would mean the default, -1 no batch at all
            raise ConfigurationError(f"--batch-size {self.batch_size}: must be at least 1")


class BasePredictor:
    """``predict_volume`` for arrays in memory; ``predict_path`` for a file or DICOM folder. Subclasses:
    :class:`~liverwild.inference.slices.SlicePredictor` (``2d``: the liver, slice by slice) and
    :class:`~liverwild.inference.volumetric.VolumePredictor` (``3d``: organ maps)."""

    stages: tuple[str, ...] = ()  # the seconds recorded per scan, in order
    batch_sizes = {"cuda": 128, "cpu": 16}  # slices per forward when --batch-size is not given, per device type
    warm_up_on_cpu = False  # also warm up on the CPU (lw_predict makes the predictor while the first scan is read)

    def __init__(self, model: PredictionModel, device: DeviceLike, options: PredictorOptions | None = None):
        self.options = options or PredictorOptions()
        self.model, self.device = model, device
        self.batch_size = self.options.batch_size or self.batch_sizes.get(device.type, self.batch_sizes["cpu"])
        self.steps = self.steps_for(self.options.postprocess)
        self.amp, self.modality = self.options.amp, self.options.modality
        self.warmup_seconds = self.warm_up() if device.type == "cuda" or self.warm_up_on_cpu else 0.0

    def warm_up(self) -> float:
        """One forward on zeros, so that CUDA's lazy set-up is paid once per process; returns its seconds."""
        raise NotImplementedError

    def predict_volume(self, volume: Volume, keep_probabilities: bool = False, release_input: bool = False) -> tuple:
        """``(mask uint8 in stored layout, probabilities float32 or None, {modality, normalization,
        plausibility}, seconds per stage)``."""
        raise NotImplementedError

    def steps_for(self, option: bool | Iterable[str]) -> tuple[str, ...]:
        """The post-processing steps of a ``postprocess`` option (:func:`.postprocessing.steps_from`)."""
        return steps_from(option)

    def locate_body(self, volume: Volume, modality: str) -> BodyCentre | None:
        """The scan's :class:`BodyCentre` when a step uses it, else None; called before the input is
        normalised in place. An MR's is started at once, beside the model (its Otsu threshold imports
        scikit-image, about 0.25 s, which would otherwise wait for the post-processing); a CT's by
        :meth:`finish_liver`, beside the labelling of the mask."""
        if not {"location", "plausibility"} & set(self.steps):
            return None
        centre = BodyCentre(volume, modality)
        if modality != "CT":
            centre.start()
        return centre

    def finish_liver(self, mask: np.ndarray, geometry: Geometry, centre: BodyCentre | None) -> tuple:
        """``(mask, plausibility or None, {"liver": components removed})``: the post-processing steps on a
        canonical liver mask ``(z, y, x)`` on its canonical ``geometry``. ``centre`` (from
        :meth:`locate_body`) is computed in its thread while this one labels the mask (both release the GIL:
        on 2 cores the body centre costs nothing)."""
        record = {"components_removed": 0}
        if centre is not None:
            centre.start()
        if self.steps:
            mask = postprocess(mask, geometry, self.steps, centre, record)
        check = None
        if "plausibility" in self.steps:
            check = plausibility(mask, geometry, centre() if centre is not None else None)
        return mask, check, {"liver": record["components_removed"]}

    def _sync(self):
        if self.device.type == "cuda":
            import torch

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

    @staticmethod
    def in_stored_layout(reorient, labels, probabilities, record: dict) -> tuple:
        """``(labels, probabilities or None, info)`` of a scan segmented on its canonical grid, back in its
        stored layout; ``record``: its modality, normalisation, plausibility and components removed."""
        stored = np.ascontiguousarray(reorient.from_canonical(labels))
        stored_probs = (
            np.ascontiguousarray(reorient.from_canonical(probabilities)) if probabilities is not None else None
        )
        return stored, stored_probs, record

    def normalization(self, image: np.ndarray, modality: str) -> Normalization:
        """The training plans' normalisation for ``modality``, or the default one for a modality no source
        had: :meth:`TrainedModel.normalization_for_scan`."""
        return self.model.normalization_for_scan(image, modality)

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
        result.components_removed = dict(info.get("components_removed") or {})
        result.slices = int(volume.geometry.shape[0])
        result.liver_ml = float(np.count_nonzero(mask) * np.prod(volume.geometry.spacing) / 1000)
        return result, mask, probs

    def write_outputs(
        self, result: ScanResult, volume: Volume, mask, probs, output_dir, overlay=False, nifti=True
    ) -> ScanResult:
        """Write ``<name>.nii.gz`` (unless not ``nifti``; and the probabilities, the overlay) in the input
        geometry; returns ``result`` completed with the output path and the seconds of every stage."""
        name, t = result.name, time.perf_counter()
        out = Path(output_dir) / f"{name}.nii.gz"
        if nifti:
            write_mask(mask, volume.geometry, out)
        if probs is not None:
            write_volume(
                probs, volume.geometry, Path(output_dir) / f"{name}{PROBABILITY_SUFFIX}.nii.gz", dtype=np.float32
            )
        result.seconds["write"] = time.perf_counter() - t
        if overlay:
            from ..visualization import canonical_views, overlay_grid

            names = self.label_names()
            several = len(names) > 2
            overlay_grid(
                [(name, result.modality, canonical_views(volume, mask))],
                Path(output_dir) / OVERLAYS / f"{name}.png",
                title=f"{name}: organ masks" if several else f"{name}: liver mask (red)",
                label_names=names if several else None,
            )
        result.output = str(out) if nifti else ""
        result.seconds = {k: round(result.seconds.get(k, 0.0), 4) for k in self.stages}
        return result

    def predict_path(self, name: str, path, output_dir, save_probabilities=False, overlay=False) -> ScanResult:
        """Read, segment and write one scan (the stages :func:`.pipeline.segment_all` overlaps across scans)."""
        volume, read_seconds = self.load(path)
        result, mask, probs = self.segment_loaded(name, path, volume, save_probabilities, keep_volume=overlay)
        result.seconds["read"] = read_seconds
        return self.write_outputs(result, volume, mask, probs, output_dir, overlay)


P = TypeVar("P", bound=type[BasePredictor])

PREDICTORS: dict[str, type[BasePredictor]] = {}  # configuration ("2d", "3d") → its predictor class


def register_predictor(configuration: str) -> Callable[[P], P]:
    """Class decorator registering a predictor for the models of ``configuration`` (as a trainer's
    ``configuration`` says; :func:`.registry.get_predictor` looks it up)."""

    def wrap(cls: P) -> P:
        PREDICTORS[configuration] = cls
        return cls

    return wrap

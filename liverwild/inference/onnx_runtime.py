"""``lw_predict --runtime onnx``: a 2D model's exported graph (``lw_export MODEL --onnx``,
:mod:`.export`) run by onnxruntime, with NumPy/SciPy/SimpleITK around it — this module and everything it
imports never import torch, torchvision or timm, so the process skips their ~2.5 s of imports and the
model's ~1.5 s of building.

Files, beside the checkpoint they come from (``<checkpoint>`` is e.g. ``checkpoint_best``):

- ``<checkpoint>.onnx``: teacher + head + decoder; input ``slices`` float32 ``(B, C, h, w)`` (normalised
  canonical slices at the model's slice size, 224²; ``C`` = 1, or 3 with the ``neighbours`` context),
  output ``probabilities`` float32 ``(B, 1, h, w)``: the liver's sigmoid probability. ``B`` is dynamic.
- ``<checkpoint>.onnx.json``: what the runtime needs besides (:func:`.export.sidecar`): slice size and
  context, the plans (normalisation per modality), post-processing defaults, the model's description
  and provenance, the exporting liverwild version, and the checkpoint's SHA-256. An export whose
  checkpoint changed, or made by another liverwild version or format, is *stale*: ``--runtime onnx``
  refuses it, ``--runtime auto`` uses torch.

The per-scan steps are :class:`~.slices.SlicePredictor`'s, in NumPy: canonical slices normalised with
the plans and resized to 224² (:func:`preprocessing.lean.resize_slices`, torch's antialiased bilinear
weights) → graph → probabilities resized back (bilinear, ``align_corners=False``) → threshold 0.5 →
post-processing → stored layout. Masks agree with the torch path's (Dice ≥ 0.999, tested).
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import __version__
from ..errors import ConfigurationError
from ..hashing import file_sha256
from ..log import get_logger
from ..parallel import cpu_threads, thread_map
from .base import PredictorOptions
from .model_folder import ModelPlans, checkpoint_path
from .slicewise import SlicewisePredictor

if TYPE_CHECKING:
    from .options import PredictOptions

logger = get_logger(__name__)

ONNX_FORMAT = 1  # the sidecar's format_version; another one is stale
RUNTIMES = ("auto", "torch", "onnx")
STAGES = ("read", "preprocess", "model", "resample", "postprocess", "write")


def export_paths(model_dir, checkpoint: str = "best") -> tuple[Path, Path]:
    """``(graph, sidecar)``: ``<checkpoint stem>.onnx`` and ``.onnx.json`` beside the checkpoint."""
    path = checkpoint_path(model_dir, checkpoint)
    return path.with_suffix(".onnx"), path.with_suffix(".onnx.json")


def export_status(model_dir, checkpoint: str = "best") -> tuple[dict | None, str]:
    """``(sidecar, "")`` for a current export of ``checkpoint``, else ``(None, why not)`` — missing, or
    stale: another format or liverwild version, or a checkpoint that changed since the export."""
    graph, side = export_paths(model_dir, checkpoint)
    redo = f"run lw_export {model_dir} --onnx" + (f" --checkpoint {checkpoint}" if checkpoint != "best" else "")
    if not (graph.is_file() and side.is_file()):
        return None, f"{model_dir}: no ONNX export of checkpoint '{checkpoint}' ({graph.name}); {redo}"
    sidecar = json.loads(side.read_text(encoding="utf-8"))
    source = checkpoint_path(model_dir, checkpoint)
    if sidecar.get("format_version") != ONNX_FORMAT or sidecar.get("exported_by", {}).get("liverwild") != __version__:
        made = f"format {sidecar.get('format_version')}, liverwild {sidecar.get('exported_by', {}).get('liverwild')}"
        return None, f"{graph}: exported with {made}, not format {ONNX_FORMAT}, liverwild {__version__}; {redo}"
    if not source.is_file() or file_sha256(source) != sidecar.get("checkpoint", {}).get("sha256"):
        return None, f"{graph}: stale — {source.name} changed since it was exported; {redo}"
    return sidecar, ""


@dataclass(frozen=True)
class OrtDevice:
    """Where onnxruntime runs: ``type`` ``cpu`` or ``cuda`` (device ``index``); :class:`~.base.BasePredictor`
    reads ``type`` as it reads a ``torch.device``'s."""

    type: str = "cpu"
    index: int = 0

    def __str__(self) -> str:
        return "cpu" if self.type == "cpu" else f"cuda:{self.index}"

    def providers(self) -> list:
        if self.type == "cuda":
            return [("CUDAExecutionProvider", {"device_id": self.index}), "CPUExecutionProvider"]
        return ["CPUExecutionProvider"]


def ort_device(name) -> tuple[OrtDevice | None, str]:
    """``(device, "")`` for ``--device`` ``name`` under onnxruntime, or ``(None, why not)``: ``auto`` is
    CUDA where this onnxruntime has its CUDA provider, else the CPU; ``cuda[:N]`` needs that provider
    (onnxruntime-gpu); ``mps`` has none."""
    import onnxruntime

    cuda = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    name = str(name or "auto").lower()
    if name == "auto":
        return OrtDevice("cuda" if cuda else "cpu"), ""
    if name == "cpu":
        return OrtDevice("cpu"), ""
    if name.startswith("cuda"):
        if not cuda:
            return None, f"--device {name} with --runtime onnx needs onnxruntime-gpu (CUDAExecutionProvider)"
        return OrtDevice("cuda", int(name.partition(":")[2] or 0)), ""
    return None, f"--device {name}: not available with --runtime onnx (use cpu or cuda, or --runtime torch)"


def needs_torch(options: PredictOptions) -> str:
    """Why ``options`` cannot run on the ONNX graph ("" when they can)."""
    if options.int8_teacher:
        return "--int8-teacher quantises the torch teacher: use --runtime torch"
    if options.backbone_weights:
        return "--backbone-weights: the ONNX export holds the teacher's weights; use --runtime torch"
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return "under torchrun the ranks share the folder through torch.distributed: use --runtime torch"
    return ort_device(options.device)[1]


def nvidia_gpu_present() -> bool:
    """An NVIDIA driver on this machine (torch would run on its GPU), found without importing torch."""
    return Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidiactl").exists()


def choose_runtime(options: PredictOptions, model_dir) -> str:
    """``"onnx"`` or ``"torch"`` for ``options.runtime``: ``torch`` as asked; ``onnx`` when the export is
    current and every option can act on it (else a :class:`ConfigurationError` saying why); ``auto`` the
    ONNX graph when ``onnx`` would be accepted and torch would not run on a GPU that onnxruntime lacks."""
    if options.runtime not in RUNTIMES:
        raise ConfigurationError(f"--runtime {options.runtime}: choose one of {', '.join(RUNTIMES)}")
    if options.runtime == "torch":
        return "torch"
    if importlib.util.find_spec("onnxruntime") is None:  # an optional dependency
        if options.runtime == "onnx":
            raise ConfigurationError("--runtime onnx needs onnxruntime (pip install onnxruntime)")
        return "torch"
    why = export_status(model_dir, options.checkpoint)[1] or needs_torch(options)
    if options.runtime == "onnx":
        if why:
            raise ConfigurationError(why)
        return "onnx"
    if not why and str(options.device) == "auto" and ort_device("auto")[0] == OrtDevice("cpu") and nvidia_gpu_present():
        why = "an NVIDIA GPU is present and this onnxruntime has no CUDA provider"
    if why:
        logger.debug(f"runtime auto → torch: {why}")
        return "torch"
    return "onnx"


class OnnxModel(ModelPlans):
    """An exported 2D model: the onnxruntime session and the sidecar's plans and description."""

    def __init__(self, model_dir, checkpoint: str = "best", device: OrtDevice | None = None):
        from planning.plans import Plans

        sidecar, why = export_status(model_dir, checkpoint)
        if sidecar is None:
            raise ConfigurationError(why)
        if sidecar["configuration"] != "2d":
            raise ConfigurationError(f"{model_dir}: --runtime onnx runs 2d models only")
        import onnxruntime

        self.folder, self.sidecar = Path(model_dir), sidecar
        self.device = device or OrtDevice()
        self.config = json.loads((self.folder / "config.json").read_text(encoding="utf-8"))
        self.plans = {source: Plans.from_json(plans) for source, plans in sidecar["plans"].items()}
        self.slice_size = list(sidecar["slice_size"])
        self.context = sidecar["input"]["context"]
        self.configuration, self.adaptation = sidecar["configuration"], sidecar.get("adaptation")
        self.random_backbone = bool(sidecar["model"].get("random_backbone"))
        self.graph = export_paths(model_dir, checkpoint)[0]
        threads = cpu_threads()
        # on the CPU, batches run side by side (``workers`` threads calling the session, one thread each):
        # no synchronisation between the threads at each of the graph's ~300 operators (126-slice graph,
        # 2-core Xeon: 1.44 s against 1.94 s with one batch at a time on two intra-op threads)
        self.workers = threads if self.device.type == "cpu" else 1
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1 if self.device.type == "cpu" else threads
        options.inter_op_num_threads = 1
        # idle intra-op workers (on a GPU) sleep instead of spinning: spinning took the cores of the threads
        # that resize and threshold (on a shared 2-core machine 15–20 % slower with spinning, measured)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(str(self.graph), options, providers=self.device.providers())

    def probabilities(self, slices: np.ndarray) -> np.ndarray:
        """Liver probabilities ``(B, 1, h, w)`` float32 of normalised slices ``(B, C, h, w)``."""
        return self.session.run(["probabilities"], {"slices": np.ascontiguousarray(slices, np.float32)})[0]

    def describe(self) -> dict:
        return {
            **self.sidecar["model"],
            "folder": str(self.folder),
            "checkpoint": str(checkpoint_path(self.folder, self.sidecar["checkpoint"]["file"])),
            "onnx": str(self.graph),
            "int8_teacher": False,
        }


class OnnxSlicePredictor(SlicewisePredictor):
    """:class:`~.slices.SlicePredictor` on an :class:`OnnxModel`; every :class:`~.base.PredictorOptions`
    acts (``amp`` does nothing: the graph runs in float32; ``liver_only`` changes nothing for a 2D model)."""

    stages = STAGES
    # on CPU a few slices per run beat 16: the decoder's 224² maps of 16 slices leave the cache (graph of
    # 126 slices, two batches side by side, 2-core Xeon, median of 4: 1.49 s at 2, 1.54 at 4, 1.77 at 8 and 16)
    batch_sizes = {"cuda": 128, "cpu": 4}
    warm_up_on_cpu = True  # onnxruntime's first run allocates and pre-packs (about 0.04 s), paid during the read
    model: OnnxModel
    device: OrtDevice

    def __init__(self, model: OnnxModel, options: PredictorOptions | None = None):
        super().__init__(model, model.device, options)

    def warm_up(self) -> float:
        """One run on a zero batch (CUDA's lazy set-up paid once per process); returns its seconds."""
        start = time.perf_counter()
        channels = 1 if self.model.context == "slice" else 3
        self.model.probabilities(np.zeros((self.batch_size, channels, *self.model.slice_size), np.float32))
        return time.perf_counter() - start

    def report_fields(self) -> dict:
        """The prediction report's runtime fields: runtime, device, device name, provenance."""
        import onnxruntime
        import SimpleITK

        from ..revision import provenance_fields

        return {
            "runtime": "onnx",
            "device": str(self.device),
            "device_name": (platform.processor() or "cpu") if self.device.type == "cpu" else str(self.device),
            **provenance_fields(
                onnxruntime=onnxruntime.__version__,
                SimpleITK=SimpleITK.Version.VersionString(),
                numpy=np.__version__,
            ),
        }

    def slice_resize(self) -> Callable:
        """NumPy's resize with torch's antialiased bilinear weights (:mod:`preprocessing.lean`): no torch."""
        from preprocessing.lean import resize_slices

        return resize_slices

    def segment_slices(self, slices: np.ndarray, mask: np.ndarray, probs: np.ndarray | None, seconds: dict) -> None:
        """Batches of ``batch_size`` slices through the graph (on the CPU, ``model.workers`` batches at a
        time); then the probabilities, 16 slices at a time shared by the threads (``$LW_THREADS``, else the
        cores), resized to the canonical grid (:mod:`preprocessing.lean`, torch's bilinear weights) and
        thresholded; without ``probs``, only where a probability can reach 0.5
        (:func:`~preprocessing.lean.upsample_threshold`)."""
        from preprocessing.lean import context_slices, resize_slices, upsample_threshold

        nz, ny, nx = mask.shape
        t = time.perf_counter()
        small = np.empty((nz, *self.model.slice_size), np.float32)  # 126 slices at 224²: 25 MB

        def segment_batch(start: int) -> None:
            stop = min(start + self.batch_size, nz)
            small[start:stop] = self.model.probabilities(context_slices(slices, start, stop, self.model.context))[:, 0]

        thread_map(segment_batch, range(0, nz, self.batch_size), self.model.workers)
        t1 = time.perf_counter()
        if probs is None:  # the mask alone: interpolated only where the liver can be
            upsample_threshold(small, mask)
            seconds.update({"model": t1 - t, "resample": time.perf_counter() - t1})
            return
        kept = probs  # narrowed for the closure

        def upsample(start: int, chunk: int = 16) -> None:  # full-size temporaries of one chunk per thread
            p = resize_slices(small[start : start + chunk], (ny, nx), antialias=False, workers=1)
            np.greater_equal(p, 0.5, out=mask[start : start + chunk].view(bool))
            kept[start : start + chunk] = p

        thread_map(upsample, range(0, nz, 16))
        seconds.update({"model": t1 - t, "resample": time.perf_counter() - t1})

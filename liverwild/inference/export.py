"""``lw_export MODEL --onnx``: a trained 2D model's teacher + head + decoder as one ONNX graph beside its
checkpoint, with the sidecar JSON the torch-free runtime path reads (:mod:`.onnx_runtime` describes both
files). The export is checked before it is kept: onnxruntime's probabilities on a few slices must match
torch's (max abs difference ≤ :data:`TOLERANCE`, recorded in the sidecar)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..atomic import atomic_path, write_json_atomic
from ..backbones import centre_slice
from ..errors import ConfigurationError, LiverwildError
from ..hashing import file_sha256
from ..log import get_logger
from ..nets import liver_logits
from ..revision import provenance_fields
from .model import TrainedModel
from .model_folder import checkpoint_path, resolve_model_dir
from .onnx_runtime import ONNX_FORMAT, export_paths
from .postprocessing import DEFAULT_STEPS, STEPS

logger = get_logger(__name__)

OPSET = 17
TOLERANCE = 1e-3  # max abs difference of probabilities, onnxruntime vs torch, for an export to be kept


class LiverGraph(nn.Module):
    """What the ONNX graph computes: normalised slices ``(B, C, h, w)`` → the liver's sigmoid probability
    ``(B, 1, h, w)`` (:meth:`TrainedModel.segment` then the sigmoid, as the slice predictor does)."""

    def __init__(self, trained: TrainedModel):
        super().__init__()
        self.backbone, self.net = trained.backbone, trained.net

    def forward(self, slices: torch.Tensor) -> torch.Tensor:
        if self.backbone is None:
            logits = self.net(centre_slice(slices))
        else:
            logits = liver_logits(self.net(self.backbone(slices), centre_slice(slices))[0])
        return torch.sigmoid(logits.float())


def sidecar(trained: TrainedModel, checkpoint: Path, difference: float) -> dict:
    """The ``.onnx.json`` beside the graph: everything the runtime path needs besides it."""
    import onnx
    import timm

    channels = 1 if trained.context == "slice" else 3
    provenance = trained.folder / "provenance.json"
    return {
        "format": "liverwild-onnx",
        "format_version": ONNX_FORMAT,
        "input": {"name": "slices", "shape": ["batch", channels, *trained.slice_size], "context": trained.context},
        "output": {"name": "probabilities", "shape": ["batch", 1, *trained.slice_size], "meaning": "liver sigmoid"},
        "slice_size": list(trained.slice_size),
        "configuration": trained.configuration,
        "classes": list(trained.classes),
        "normalization": {plans.modality: plans.normalization.to_json() for plans in trained.plans.values()},
        "plans": {source: plans.to_json() for source, plans in trained.plans.items()},
        "adaptation": trained.adaptation,
        "threshold": 0.5,
        "postprocessing": {"default": list(DEFAULT_STEPS), "available": list(STEPS)},
        # where the model sits is the reader's business (OnnxModel.describe): no path of the exporting machine
        "model": {
            **{k: v for k, v in trained.describe().items() if k not in ("folder", "checkpoint")},
            "name": trained.config.get("fold_name"),
        },
        "model_provenance": json.loads(provenance.read_text(encoding="utf-8")) if provenance.is_file() else None,
        "checkpoint": {"file": checkpoint.name, "sha256": file_sha256(checkpoint)},
        "exported_by": {
            "liverwild": __version__,
            "opset": OPSET,
            **provenance_fields(torch=torch.__version__, timm=timm.__version__, onnx=onnx.__version__),
        },
        "max_abs_difference": difference,
    }


def export_onnx(model="default", checkpoint: str = "best", results=None, trainer=None) -> Path:
    """Write ``<checkpoint>.onnx`` and ``<checkpoint>.onnx.json`` into the model folder of ``model`` (a
    folder, a fold name under ``results``, or ``"default"``); returns the graph's path. Refused for a 3d
    model, an int8 teacher, or a folder that cannot be written."""
    import importlib.util

    for package in ("onnx", "onnxruntime"):  # the exporter writes with onnx; the check runs onnxruntime
        if importlib.util.find_spec(package) is None:
            raise ConfigurationError(f"lw_export --onnx needs {package}: pip install 'liverwild[export]'")
    folder = resolve_model_dir(model, results, trainer)
    trained = TrainedModel(folder, checkpoint, "cpu")
    if trained.configuration != "2d":
        raise ConfigurationError(
            f"{folder}: lw_export --onnx exports 2d models only (this one is {trained.configuration})"
        )
    graph_path, side_path = export_paths(folder, checkpoint)
    graph = LiverGraph(trained).eval()
    channels = 1 if trained.context == "slice" else 3
    example = torch.from_numpy(np.random.default_rng(0).standard_normal((4, channels, *trained.slice_size), np.float32))
    try:
        with atomic_path(graph_path, ".onnx") as tmp, warnings.catch_warnings(), torch.inference_mode(False):
            warnings.simplefilter("ignore")  # the tracer's notes on shape-dependent Python branches
            torch.onnx.export(
                graph,
                (example[:2],),
                str(tmp),
                input_names=["slices"],
                output_names=["probabilities"],
                dynamic_axes={"slices": {0: "batch"}, "probabilities": {0: "batch"}},
                opset_version=OPSET,
                dynamo=False,
            )
            difference = _difference(graph, Path(tmp), example)
            if difference > TOLERANCE:
                raise LiverwildError(f"{graph_path}: onnxruntime differs from torch by {difference:.2g}; not kept")
    except PermissionError as exc:
        raise LiverwildError(
            f"{folder}: cannot be written ({exc.strerror}); copy the model folder and export that"
        ) from exc
    write_json_atomic(side_path, sidecar(trained, checkpoint_path(folder, checkpoint), difference))
    return graph_path


def torch_until(folder) -> str:
    return f"lw_predict uses torch until lw_export {folder} --onnx succeeds"


def export_after_training(folder) -> Path | None:
    """What ``lw_train`` does with a finished run: the ONNX export of a 2D model's best checkpoint, so that
    ``lw_predict`` (``--runtime auto``) runs it without torch, about 3× faster on a CPU. Returns the graph,
    or None with a log line saying why not: a 3d model, an export already current, ``onnx`` not
    installed, or an export that failed (the trained model itself is never touched)."""
    import importlib.util

    from .onnx_runtime import export_status

    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    if config.get("configuration", "2d") != "2d" or not checkpoint_path(folder, "best").is_file():
        return None
    missing = [package for package in ("onnx", "onnxruntime") if importlib.util.find_spec(package) is None]
    if missing:
        logger.info(
            f"{folder}: not exported to ONNX ({' and '.join(missing)} missing: pip install 'liverwild[export]', "
            f"then lw_export {folder} --onnx: lw_predict about 3× faster on a CPU)"
        )
        return None
    try:
        if export_status(folder)[0] is not None:
            logger.info(f"{folder}: its ONNX export is current")
            return None
        graph = export_onnx(folder)
    except LiverwildError as exc:  # the model is trained and saved: the export's failure must not fail the run
        logger.warning(f"WARNING: the model is trained, but its ONNX export failed ({exc}); {torch_until(folder)}")
        return None
    except Exception as exc:  # unexpected (a tracer error, a full disk): its traceback helps a bug report
        reason = str(exc).splitlines()[0] if str(exc) else ""
        logger.warning(
            f"WARNING: the model is trained, but its ONNX export failed ({type(exc).__name__}: {reason}); "
            f"{torch_until(folder)}",
            exc_info=True,
        )
        return None
    logger.info(f"exported {graph.name} (lw_predict runs it without torch)")
    return graph


def _difference(graph: LiverGraph, path: Path, example: torch.Tensor) -> float:
    """Max abs difference of probabilities, onnxruntime on ``path`` vs torch, on ``example`` (4 slices:
    a batch size other than the traced one checks the dynamic batch axis)."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.inference_mode():
        expected = graph(example).numpy()
    got = session.run(["probabilities"], {"slices": example.numpy()})[0]
    return float(np.abs(got - expected).max())

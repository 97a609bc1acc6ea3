"""The runtime ``lw_predict`` segments with: the torch model and its predictor on a device, or the exported
ONNX graph run by onnxruntime without importing torch (:mod:`.onnx_runtime`)."""

from __future__ import annotations

import platform
from typing import TYPE_CHECKING

from ..revision import provenance_fields
from .model_folder import resolve_model_dir

if TYPE_CHECKING:  # torch is imported by the torch runtime's branch only
    import torch

    from .options import PredictOptions


def load_runtime(dev: torch.device | None, options: PredictOptions) -> tuple:
    """``(model, predictor, report fields of the runtime)``: the torch model on ``dev``, or (``dev`` None)
    the exported ONNX graph (:mod:`.onnx_runtime`)."""
    folder = resolve_model_dir(options.model, options.results, options.trainer)
    if dev is None:
        from .onnx_runtime import OnnxModel, OnnxSlicePredictor, ort_device

        onnx_model = OnnxModel(folder, options.checkpoint, ort_device(options.device)[0])
        onnx_predictor = OnnxSlicePredictor(onnx_model, options.predictor_options())
        return onnx_model, onnx_predictor, onnx_predictor.report_fields()
    import torch

    from .model import TrainedModel
    from .registry import make_predictor

    trained = TrainedModel(folder, options.checkpoint, dev, options.backbone_weights, options.int8_teacher)
    predictor = make_predictor(trained, dev, options.predictor_options())
    fields = {
        "runtime": "torch",
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu",
        **software_provenance(),
    }
    return trained, predictor, fields


def under_torchrun(dev) -> tuple[bool, bool]:
    """``(under torchrun, main process)`` — without importing torch on the ONNX runtime path (``dev`` None)."""
    if dev is None:
        return False, True
    from .. import distributed

    context = distributed.current()
    return context.enabled, context.is_main


def software_provenance() -> dict:
    """``git_revision`` and ``versions`` (:func:`liverwild.revision.provenance_fields`) with the libraries
    prediction runs on."""
    import numpy
    import SimpleITK
    import timm
    import torch

    return provenance_fields(
        torch=torch.__version__,
        timm=timm.__version__,
        SimpleITK=SimpleITK.Version.VersionString(),
        numpy=numpy.__version__,
    )

"""Prediction: scan discovery, model loading, the predictors (by configuration), post-processing, and
``lw_predict``'s driver.

Layers inside the package, lowest first: ``discovery``, ``model_folder``, ``postprocessing``, ``model`` →
``base`` (what every predictor shares, ``@register_predictor``) → ``slices`` (2D), ``volumetric`` (``3d``),
``onnx_runtime`` (a 2D model's exported ONNX graph, torch-free) → ``registry`` (``get_predictor``,
``make_predictor``), ``options`` (``PredictOptions``) → ``loading`` (the chosen runtime), ``pipeline``
(``segment_all``), ``outputs`` → ``driver`` (``predict``); ``export`` writes the ONNX graph (``lw_export``).

The names below are imported on first use (PEP 562), so that ``lw_predict --runtime onnx`` imports
neither torch nor timm: only the torch path's modules import them."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .base import BasePredictor, PredictorOptions, ScanResult, guess_modality, register_predictor
    from .discovery import find_scans, scan_name
    from .driver import predict, predict_with
    from .model import TrainedModel
    from .model_folder import resolve_model_dir
    from .options import PredictOptions
    from .postprocessing import postprocess
    from .registry import get_predictor, make_predictor
    from .slices import SlicePredictor
    from .volumetric import VolumePredictor

_HOMES = {
    "find_scans": "discovery",
    "scan_name": "discovery",
    "TrainedModel": "model",
    "resolve_model_dir": "model_folder",
    "postprocess": "postprocessing",
    "BasePredictor": "base",
    "PredictorOptions": "base",
    "ScanResult": "base",
    "SlicePredictor": "slices",
    "VolumePredictor": "volumetric",
    "register_predictor": "base",
    "get_predictor": "registry",
    "make_predictor": "registry",
    "guess_modality": "base",
    "PredictOptions": "options",
    "predict": "driver",
    "predict_with": "driver",
}

__all__ = [
    "find_scans",
    "scan_name",
    "TrainedModel",
    "resolve_model_dir",
    "postprocess",
    "BasePredictor",
    "PredictorOptions",
    "ScanResult",
    "SlicePredictor",
    "VolumePredictor",
    "register_predictor",
    "get_predictor",
    "make_predictor",
    "guess_modality",
    "PredictOptions",
    "predict",
    "predict_with",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_HOMES[name]}", __name__), name)

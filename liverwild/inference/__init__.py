"""Prediction: scan discovery, model loading, the predictors (by configuration), post-processing, and
``lw_predict``'s driver.

Layers inside the package, lowest first: ``discovery``, ``postprocessing``, ``model`` → ``base`` (what
every predictor shares, ``@register_predictor``) → ``slices`` (2D), ``volumetric`` (``3d``) →
``registry`` (``get_predictor``, ``make_predictor``) → ``pipeline`` (``segment_all``) → ``driver``
(``PredictOptions``, ``predict``)."""

from .base import BasePredictor, PredictorOptions, ScanResult, guess_modality, register_predictor
from .discovery import find_scans, scan_name
from .driver import PredictOptions, predict, predict_with
from .model import TrainedModel, resolve_model_dir
from .postprocessing import postprocess
from .registry import get_predictor, make_predictor
from .slices import SlicePredictor
from .volumetric import VolumePredictor

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

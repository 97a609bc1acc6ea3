"""Prediction: scan discovery, model loading, the predictor, post-processing."""

from .discovery import find_scans, scan_name
from .model import TrainedModel, resolve_model_dir
from .postprocessing import postprocess
from .predictor import Predictor, guess_modality, predict

__all__ = [
    "find_scans",
    "scan_name",
    "TrainedModel",
    "resolve_model_dir",
    "postprocess",
    "Predictor",
    "guess_modality",
    "predict",
]

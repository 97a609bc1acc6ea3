"""Predictors by configuration, in the style of the trainers' registry: a model's checkpoint says its
``configuration`` (``"2d"`` or ``"3d"``), :func:`get_predictor` gives the class registered for it with
``@register_predictor`` (:mod:`.base`), and :func:`make_predictor` builds it from ``lw_predict``'s
options. Importing this module imports every predictor module, so that all of them are registered."""

from __future__ import annotations

from ..errors import ConfigurationError
from . import slices, volumetric
from .base import PREDICTORS, BasePredictor, PredictorOptions
from .model import TrainedModel

BUILT_IN = (slices.SlicePredictor, volumetric.VolumePredictor)  # registered on import: "2d", "3d"


def get_predictor(configuration: str) -> type[BasePredictor]:
    """The predictor class of ``configuration``'s models."""
    if configuration not in PREDICTORS:
        raise ConfigurationError(
            f"no predictor for configuration {configuration!r}; known: {', '.join(sorted(PREDICTORS))}"
        )
    return PREDICTORS[configuration]


def make_predictor(model: TrainedModel, device, options: PredictorOptions | None = None) -> BasePredictor:
    """The predictor of ``model``'s configuration: slices (2D) or whole volumes (``3d``). An option that
    configuration cannot honour is refused (``batch_size``, slices per pass, for a ``3d`` model)."""
    return get_predictor(model.configuration)(model, device, options)

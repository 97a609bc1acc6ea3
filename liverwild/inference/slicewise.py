"""What the 2D (liver, slice by slice) predictors share, torch-free: :class:`SlicewisePredictor` runs a
scan through reading the modality and normalisation, the canonical 224² slices, the model's batches
(:meth:`~SlicewisePredictor.segment_slices`, the one step each runtime implements), the liver's
post-processing and the inverse reorientation. Its runtimes: :class:`~.slices.SlicePredictor` (torch) and
:class:`~.onnx_runtime.OnnxSlicePredictor` (onnxruntime)."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from ..io import Volume
from .base import BasePredictor, modality_of
from .model_folder import ModelPlans


class SlicewisePredictor(BasePredictor):
    """A 2D model's liver predictor; subclasses implement :meth:`segment_slices` (and ``warm_up``)."""

    model: ModelPlans  # narrowed by the runtimes: TrainedModel, OnnxModel

    def slice_resize(self) -> Callable | None:
        """``prepare_slices``' resize of the canonical slices to the model's size (None: its default)."""
        return None

    def segment_slices(self, slices: np.ndarray, mask: np.ndarray, probs: np.ndarray | None, seconds: dict) -> None:
        """Fill ``mask`` ``(z, y, x)`` uint8 (probability ≥ 0.5) and, when given, ``probs`` float32 on the
        canonical grid from the normalised model-size ``slices`` ``(z, H, W)``; add the seconds of its stages
        to ``seconds``."""
        raise NotImplementedError

    def describe(self) -> dict:
        """:meth:`BasePredictor.describe` and the slices per forward (``batch_size``)."""
        return {**super().describe(), "batch_size": self.batch_size}

    def predict_volume(self, volume: Volume, keep_probabilities: bool = False, release_input: bool = False) -> tuple:
        """``(mask uint8 in stored layout, probabilities float32 or None, {modality, normalization,
        plausibility, components_removed}, seconds per stage)``; ``plausibility`` is
        :func:`.postprocessing.plausibility`'s dict, or None when that step is off.

        ``release_input=True`` normalises ``volume.array`` in place and empties it afterwards (large scans
        then need about one copy of the volume in memory); the caller must not use it again.
        """
        from planning.plans import Plans
        from preprocessing.transform import prepare_slices

        seconds: dict = {}
        t = time.perf_counter()
        modality = modality_of(volume) if self.modality == "auto" else self.modality
        self.model.check_modality(modality)
        normalization = self.normalization(volume.array, modality)
        plans = Plans("input", modality, normalization, slice_size=list(self.model.slice_size))
        inplace = release_input and volume.array.dtype == np.float32
        t_body = time.perf_counter()
        centre = self.locate_body(volume, modality)  # its copy of the image: before normalising in place
        t_body = time.perf_counter() - t_body
        slices, _, reorient = prepare_slices(
            volume.array, volume.geometry, plans, inplace=inplace, resize=self.slice_resize()
        )
        if release_input:
            volume.array = np.empty((0, 0, 0), volume.array.dtype)  # released: the memory goes back
        canonical = reorient.canonical_geometry(volume.geometry)
        seconds["preprocess"] = time.perf_counter() - t - t_body
        mask = np.empty(canonical.shape, np.uint8)
        probs = np.empty(canonical.shape, np.float32) if keep_probabilities else None
        self.segment_slices(slices, mask, probs, seconds)
        t = time.perf_counter()
        mask, check, removed = self.finish_liver(mask, canonical, centre)
        seconds["postprocess"] = time.perf_counter() - t + t_body
        record = {
            "modality": modality,
            "normalization": normalization.to_json(),
            "plausibility": check,
            "components_removed": removed,
        }
        return (*self.in_stored_layout(reorient, mask, probs, record), seconds)

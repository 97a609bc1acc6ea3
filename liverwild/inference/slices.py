"""Segment scans with a trained model and write masks in the input geometry.

Per scan: read → canonical axial slices normalised with the model's plans and resized to 224² →
frozen backbone → head + decoder (batches of slices, mixed precision on GPU) → probabilities resized
back to the canonical in-plane grid (bilinear, on probabilities) → threshold 0.5 → anatomical
post-processing on the canonical grid (:mod:`.postprocessing`: bridges cut, one piece kept by size and
side of the body, one run of slices, holes filled, plausibility flags; each step switchable) → inverse
reorientation → uint8 mask with exactly the input's size, spacing, origin and direction. Seconds per
stage are recorded.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from preprocessing.features import context_slices, slice_batches

from ..device import autocast
from .base import register_predictor
from .model import TrainedModel
from .slicewise import SlicewisePredictor

STAGES = ("read", "preprocess", "backbone", "head_decoder", "resample", "postprocess", "write")


@register_predictor("2d")
class SlicePredictor(SlicewisePredictor):
    """A 2D model's predictor (the liver, slice by slice, batches of ``batch_size`` slices); every
    :class:`~.base.PredictorOptions` acts (``liver_only`` changes nothing: a 2D model's mask is the liver's)."""

    stages = STAGES
    model: TrainedModel
    device: torch.device

    @torch.inference_mode()
    def warm_up(self) -> float:
        """One forward on a zero batch of the prediction batch size, so that CUDA's lazy set-up (kernel
        loading, library handles, algorithm choice) is paid once per process, not inside the first
        scan's model time. Returns its seconds."""
        start = time.perf_counter()
        zeros = np.zeros((self.batch_size, *self.model.slice_size), np.float32)
        x = torch.from_numpy(context_slices(zeros, 0, self.batch_size, self.model.context)).to(self.device)
        with autocast(self.device, self.amp):
            self.model.segment(x)
        self._sync()
        return time.perf_counter() - start

    @torch.inference_mode()
    def segment_slices(self, slices: np.ndarray, mask: np.ndarray, probs: np.ndarray | None, seconds: dict) -> None:
        """Batches of ``batch_size`` slices through teacher, head and decoder (mixed precision on GPU),
        probabilities resized to the canonical grid (bilinear) and thresholded where they are computed."""
        ny, nx = mask.shape[1:]
        seconds.update({"backbone": 0.0, "head_decoder": 0.0, "resample": 0.0})
        t = time.perf_counter()
        for start, stop, x in slice_batches(slices, self.batch_size, self.device, self.model.context):
            with autocast(self.device, self.amp):
                logits, teacher_seconds = self.model.segment(x)
                p = torch.sigmoid(logits.float())
            self._sync()
            t2 = time.perf_counter()
            t1 = t + teacher_seconds
            if (ny, nx) != tuple(p.shape[-2:]):
                p = F.interpolate(p, size=(ny, nx), mode="bilinear", align_corners=False)
            mask[start:stop] = (p[:, 0] >= 0.5).to(torch.uint8).cpu().numpy()  # thresholded where computed
            if probs is not None:
                probs[start:stop] = p[:, 0].cpu().numpy()
            t3 = time.perf_counter()
            seconds["backbone"] += t1 - t
            seconds["head_decoder"] += t2 - t1
            seconds["resample"] += t3 - t2
            t = t3  # the next batch's transfer counts as its backbone stage

"""Segment scans with a ``3d`` model (the multi-organ 3D U-Net) and write organ label maps in the input
geometry.

Per scan: read → canonical volume normalised with the model's ``3d`` plans (CT window, MR relative to
the body median; z-score) and resized to its ``volume_size`` (``preprocessing.volumes``) → 3D U-Net →
softmax → class probabilities resized back to the canonical grid with the same separable operator
(along z first, then in-plane in chunks of slices, so a 512 × 512 × 800 scan never holds all its class
maps at full resolution) → argmax → post-processing (largest component of every organ) → inverse
reorientation → uint8 label map: 0 background, ``k + 1`` = the model's ``classes[k]``. With
``liver_only`` the liver label alone is written as a 0/1 mask, post-processed as a 2D model's liver
(:mod:`.postprocessing`), the view that compares a 3d model with the 2D ones.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from preprocessing.volumes import prepare_volume, resample

from ..device import autocast
from ..errors import ConfigurationError
from ..io import Volume
from .base import BasePredictor, PredictorOptions, ScanResult, modality_of, register_predictor
from .model import TrainedModel
from .postprocessing import largest_component_per_class

VOLUME_STAGES = ("read", "preprocess", "network", "resample", "postprocess", "write")


def upsampled_chunks(maps: torch.Tensor, shape: tuple, chunk: int = 16) -> Iterator[tuple[int, torch.Tensor]]:
    """``(first slice, maps (C, n, Y, X))`` covering ``maps`` ``(C, d, h, w)`` resized to ``shape`` (Z, Y, X)
    with :func:`~preprocessing.volumes.resample`: along z once, then in-plane ``chunk`` slices at a time
    with the 2D form of the same operator (it is separable, so this equals resizing the whole stack at
    once, with half the reads of a 3D kernel)."""
    nz, ny, nx = shape
    channels, _, h, w = maps.shape
    along_z = resample(maps[None], (nz, h, w))[0]
    for start in range(0, nz, chunk):
        part = along_z[:, start : start + chunk]
        n = part.shape[1]
        yield start, resample_2d(part.reshape(1, channels * n, h, w), (ny, nx)).reshape(channels, n, ny, nx)


def resample_2d(x: torch.Tensor, size: tuple) -> torch.Tensor:
    """:func:`~preprocessing.volumes.resample` in the plane: ``(N, C, h, w)`` → ``(N, C, *size)``, box
    average along the axes that shrink, then bilinear interpolation along those that grow."""
    shape = tuple(x.shape[2:])
    shrunk = tuple(min(n, s) for n, s in zip(shape, size))
    if shrunk != shape:
        x = F.interpolate(x, size=shrunk, mode="area")
    if shrunk != tuple(size):
        x = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)
    return x


@register_predictor("3d")
class VolumePredictor(BasePredictor):
    """The predictor of ``3d`` models (``model.configuration == "3d"``): one forward per scan."""

    stages = VOLUME_STAGES
    model: TrainedModel
    device: torch.device

    def __init__(self, model, device: torch.device, options: PredictorOptions | None = None):
        """Refused: ``batch_size`` (a ``3d`` model segments one whole volume per pass), ``liver_only`` for a
        model without a liver, ``save_probabilities`` without ``liver_only``."""
        options = options or PredictorOptions()
        liver_only, save_probabilities = options.liver_only, options.save_probabilities
        if options.batch_size is not None:
            raise ConfigurationError(
                f"--batch-size {options.batch_size}: a 3d model segments one whole volume per pass; drop --batch-size"
            )
        if liver_only and "liver" not in model.classes:
            raise ConfigurationError(f"--liver-only: this model segments {', '.join(model.classes)}, not the liver")
        if save_probabilities and not liver_only:
            raise ConfigurationError(
                "--save-probabilities with a 3d (multi-organ) model needs --liver-only: it writes the liver's "
                "probability map (one map per organ at the scan's resolution would take gigabytes)"
            )
        self.liver_only = liver_only
        self.liver = model.classes.index("liver") + 1 if "liver" in model.classes else 0
        super().__init__(model, device, replace(options, batch_size=1))

    @torch.inference_mode()
    def warm_up(self) -> float:
        """One forward on a zero volume (CUDA's lazy set-up paid once per process)."""
        start = time.perf_counter()
        with autocast(self.device, self.amp):
            self.model.net(torch.zeros(1, 1, *list(self.model.volume_size or ()), device=self.device))
        self._sync()
        return time.perf_counter() - start

    def steps_for(self, option: bool | Iterable[str]) -> tuple[str, ...]:
        """A liver mask (``liver_only``): the 2D models' steps; an organ map: ``largest_component`` (of every
        organ) or nothing; the liver's other steps are refused."""
        steps = super().steps_for(option)
        if self.liver_only:
            return steps
        others = [s for s in steps if s != "largest_component"]
        if others and option is not True:
            raise ConfigurationError(
                f"post-processing {', '.join(others)}: steps of a liver mask; a 3d (multi-organ) model's organ map "
                "takes largest_component alone (or use --liver-only)"
            )
        return ("largest_component",) if "largest_component" in steps else ()

    def label_names(self) -> dict[int, str]:
        if self.liver_only:
            return {0: "background", 1: "liver"}
        return {0: "background", **{k: name for k, name in enumerate(self.model.classes, start=1)}}

    def describe(self) -> dict:
        steps = list(self.steps) if self.liver_only else ["largest_component_per_class"] if self.steps else []
        return {
            "classes": {name: value for value, name in self.label_names().items()},
            "threshold": "argmax over the classes" + (" (the liver label kept)" if self.liver_only else ""),
            "postprocessing": steps,
        }

    @torch.inference_mode()
    def predict_volume(self, volume: Volume, keep_probabilities: bool = False, release_input: bool = False) -> tuple:
        """``(label map uint8 in stored layout, the liver's probabilities float32 or None, {modality,
        normalization, plausibility, components_removed (organ → pieces dropped)}, seconds per stage)``;
        ``release_input`` as in :meth:`.slices.SlicePredictor.predict_volume`."""
        if keep_probabilities and not self.liver_only:
            raise ConfigurationError("a 3d model's probabilities are kept for the liver alone: use liver_only")
        seconds = {}
        t = time.perf_counter()
        modality = modality_of(volume) if self.modality == "auto" else self.modality
        normalization = self.normalization(volume.array, modality)
        inplace = release_input and volume.array.dtype == np.float32
        t_body = time.perf_counter()
        centre = self.locate_body(volume, modality) if self.liver_only else None  # before normalising in place
        t_body = time.perf_counter() - t_body
        data, _, reorient = prepare_volume(
            volume.array, volume.geometry, modality, self.model.volume_size, normalization, inplace=inplace
        )
        if release_input:
            volume.array = np.empty((0, 0, 0), volume.array.dtype)
        canonical = reorient.canonical_geometry(volume.geometry)
        shape = canonical.shape
        seconds["preprocess"] = time.perf_counter() - t - t_body
        t = time.perf_counter()
        x = torch.from_numpy(data)[None, None].to(self.device)
        with autocast(self.device, self.amp):
            logits = self.model.net(x)
        probabilities = torch.softmax(logits.float(), dim=1)[0]
        self._sync()
        seconds["network"] = time.perf_counter() - t
        t = time.perf_counter()
        labels = np.empty(shape, np.uint8)
        liver_probs = np.empty(shape, np.float32) if keep_probabilities else None
        for start, part in upsampled_chunks(probabilities, shape):
            chosen = part.max(0).indices  # argmax; torch's max(dim) is several times faster on CPU
            if self.liver_only:
                chosen = chosen == self.liver
            labels[start : start + part.shape[1]] = chosen.to(torch.uint8).cpu().numpy()
            if liver_probs is not None:
                liver_probs[start : start + part.shape[1]] = part[self.liver].cpu().numpy()
        seconds["resample"] = time.perf_counter() - t
        t = time.perf_counter()
        check, removed, names = None, {}, self.label_names()
        if self.liver_only:
            labels, check, removed = self.finish_liver(labels, canonical, centre)
        elif self.steps:
            by_value: dict = {}
            labels = largest_component_per_class(labels, by_value)
            removed = {organ: by_value.get(value, 0) for value, organ in names.items() if value > 0}
        seconds["postprocess"] = time.perf_counter() - t + t_body
        record = {
            "modality": modality,
            "normalization": normalization.to_json(),
            "plausibility": check,
            "components_removed": removed,
        }
        return (*self.in_stored_layout(reorient, labels, liver_probs, record), seconds)

    def segment_loaded(self, name: str, path, volume: Volume, save_probabilities=False, keep_volume=False) -> tuple:
        """:meth:`BasePredictor.segment_loaded`, with the volume of every organ written (``organ_ml``)."""
        result: ScanResult
        result, mask, probs = super().segment_loaded(name, path, volume, save_probabilities, keep_volume)
        names = self.label_names()
        counts = np.bincount(mask.ravel(), minlength=len(names))
        voxel_ml = float(np.prod(volume.geometry.spacing)) / 1000
        result.organ_ml = {organ: round(float(counts[v]) * voxel_ml, 3) for v, organ in names.items() if v > 0}
        result.liver_ml = result.organ_ml.get("liver", 0.0)
        return result, mask, probs

"""``PredictOptions``: every option of ``lw_predict`` but the input and output paths, as one frozen object
that the driver hands down to the runtime it chooses (:mod:`.loading`, :mod:`.onnx_runtime`) and to the
predictor (:meth:`PredictOptions.predictor_options`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .base import PredictorOptions

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class PredictOptions:
    """Every option of :func:`predict` but the input and output paths, as one object handed down the layers
    (the meaning of each is in :func:`predict`'s docstring)."""

    model: str | Path | None = "default"
    results: str | Path | None = None
    trainer: str | None = None
    checkpoint: str = "best"
    device: str | torch.device = "auto"
    batch_size: int | None = None
    postprocess: bool | Iterable[str] = True
    save_probabilities: bool = False
    overlays: bool = False
    modality: str = "auto"
    backbone_weights: str | Path | None = None
    progress: bool = True
    part: int = 0
    num_parts: int = 1
    int8_teacher: bool = False
    liver_only: bool = False
    output_types: tuple[str, ...] = ("nifti",)
    statistics: bool = False
    report: str = "auto"
    runtime: str = "auto"  # "torch", "onnx" (the exported graph, no torch) or "auto" (.onnx_runtime.choose_runtime)
    resume: bool = False  # --continue: skip the scans an interrupted run finished with this model and options

    def predictor_options(self) -> PredictorOptions:
        """The options the predictor itself takes."""
        return PredictorOptions(
            self.batch_size, self.postprocess, self.modality, self.liver_only, self.save_probabilities
        )

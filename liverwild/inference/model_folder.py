"""Which model folder and checkpoint a prediction uses — torch-free, so that both the torch path
(:mod:`.model`) and the ONNX runtime path (:mod:`.onnx_runtime`) find them the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from planning.sections import Normalization

from ..errors import ConfigurationError, LiverwildError
from ..shipped import default_model_dir

CHECKPOINTS = {"best": "checkpoint_best.pth", "final": "checkpoint_final.pth", "latest": "checkpoint_latest.pth"}


def resolve_model_dir(model, results=None, trainer: str | None = None) -> Path:
    """A trained model folder, a fold name under ``$LW_results`` (one trainer folder, or ``trainer``), or
    ``None``/``'default'`` for the default model shipped with liverwild — always, even where the working
    directory holds a folder named ``default`` (give that one as ``./default``). ``results`` and ``trainer``
    choose among a fold's models: with the default model or a model folder they are refused."""
    chooser = " and ".join(name for name, value in (("--results", results), ("--trainer", trainer)) if value)
    if model is None or (isinstance(model, str) and model == "default"):
        if chooser:
            raise ConfigurationError(f"{chooser}: picks a fold's model under $LW_results, not the default model")
        return default_model_dir()
    path = Path(model)
    if (path / "config.json").is_file():
        if chooser:
            raise ConfigurationError(f"{chooser}: picks a fold's model under $LW_results; {path} is a model folder")
        return path
    from ..paths import results_folder

    fold_dir = results_folder(results) / str(model)
    if not fold_dir.is_dir():
        raise LiverwildError(f"{model}: neither a model folder (with config.json) nor a fold under {fold_dir.parent}")
    runs = sorted(p for p in fold_dir.iterdir() if (p / "config.json").is_file())
    if trainer:
        runs = [p for p in runs if p.name.startswith(trainer + "__")]
    if len(runs) != 1:
        names = ", ".join(p.name for p in runs) or "none"
        raise LiverwildError(
            f"fold {model} holds {len(runs)} trained models ({names}); pass the model folder with -m "
            "or choose one with --trainer"
        )
    return runs[0]


def checkpoint_path(model_dir, checkpoint: str = "best") -> Path:
    """The checkpoint file ``checkpoint`` (``best``, ``final``, ``latest`` or a file name) of ``model_dir``."""
    return Path(model_dir) / CHECKPOINTS.get(checkpoint, checkpoint)


class ModelPlans:
    """What a model's training plans answer, shared by :class:`~.model.TrainedModel` (torch) and
    :class:`~.onnx_runtime.OnnxModel` (an exported graph): which normalisation a scan gets, and whether an
    adapted model takes its modality. Needs ``plans`` (source → :class:`planning.plans.Plans`),
    ``configuration``, ``adaptation`` and ``folder``."""

    plans: dict[str, Any]
    configuration: str
    adaptation: dict | None
    folder: Path
    slice_size: list  # (H, W) of the model's input slices

    def normalization_for(self, modality: str) -> Normalization | None:
        """The training plans' normalisation for ``modality`` (of the model's configuration), or None if
        no source had it."""
        for plans in self.plans.values():
            if plans.modality == modality:
                return plans.planned_3d().normalization if self.configuration == "3d" else plans.normalization
        return None

    def check_modality(self, modality: str, name: str = "the scan") -> None:
        """Refuse a scan of another modality than the one an adapted model (``lw_adapt``) was adapted to."""
        if self.adaptation and modality != self.adaptation["modality"]:
            raise ConfigurationError(
                f"{name} is {modality}, but model {self.folder} was adapted by lw_adapt to "
                f"{self.adaptation['modality']} scans only; segment it with the source model "
                f"{self.adaptation['source_model']}, or pass --modality if the guess is wrong"
            )

    def normalization_for_scan(self, image, modality: str) -> Normalization:
        """The normalisation a scan of ``modality`` gets, in the model's configuration: the training plans'
        (:meth:`normalization_for`; ``3d``: their ``3d`` normalisation); with no source of that
        modality, the default one (:func:`planning.plans.scan_normalization`) — for MR with the window
        derived from this scan's body intensities."""
        from planning.plans import scan_normalization

        plan = self.normalization_for(modality)
        return plan if plan is not None else scan_normalization(image, modality, self.configuration)

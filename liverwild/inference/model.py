"""Load a trained model folder: network weights, the plans it was trained with, the backbone."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from planning.plans import OutdatedPlansError, Plans, check_plans_version

from ..backbones import (
    FrozenBackbone,
    TeacherConfig,
    centre_slice,
    describe_teacher,
    slice_context,
    with_weights,
)
from ..checkpoints import load_checkpoint
from ..errors import ConfigurationError, LiverwildError
from ..nets import build_network, liver_logits, uses_teacher
from ..shipped import DISCLAIMER
from .model_folder import CHECKPOINTS, ModelPlans, resolve_model_dir

__all__ = ["CHECKPOINTS", "TrainedModel", "resolve_model_dir"]


def configuration_of(network_config: dict) -> str:
    """The configuration a network belongs to, for checkpoints written before they recorded it: ``3d`` for
    the 3D U-Net, ``2d`` for every slice network."""
    return "3d" if network_config.get("architecture") == "unet3d" else "2d"


def verify_against_provenance(folder: Path, checkpoint: Path) -> None:
    """Refuse a checkpoint whose SHA-256 differs from the one its folder's ``provenance.json`` records
    (the shipped default model, ``lw_build_default_model`` and ``lw_adapt`` outputs): the file was changed
    or damaged after it was built. Folders without that record (``lw_train`` outputs) are not checked."""
    record = folder / "provenance.json"
    if checkpoint.name != "checkpoint_best.pth" or not record.is_file():
        return
    expected = json.loads(record.read_text(encoding="utf-8")).get("checkpoint_sha256")
    if expected is None:
        return
    from ..hashing import file_sha256

    actual = file_sha256(checkpoint)
    if actual != expected:
        raise LiverwildError(
            f"{checkpoint}: its SHA-256 ({actual[:12]}…) is not the {expected[:12]}… that {record.name} records — "
            "the file was changed or damaged after it was built; rebuild it or reinstall liverwild"
        )


class TrainedModel(ModelPlans):
    """Everything prediction needs from a training output folder (its plans' questions: :class:`ModelPlans`)."""

    def __init__(
        self, model_dir, checkpoint: str = "best", device="cpu", backbone_weights=None, int8_teacher: bool = False
    ):
        device = torch.device(device)
        self.folder = Path(model_dir)
        self.config = json.loads((self.folder / "config.json").read_text(encoding="utf-8"))
        name = CHECKPOINTS.get(checkpoint, checkpoint)
        path = self.folder / name
        if not path.is_file():
            raise LiverwildError(f"{path}: missing; is the training finished (try --checkpoint latest)?")
        verify_against_provenance(self.folder, path)
        state = load_checkpoint(path)
        self.checkpoint = str(path)
        self.plans = self._checked_plans(state["plans"], path)  # per source dataset
        self.net = build_network(state["network_config"])
        self.net.load_state_dict(state["network"])
        self.net.eval().to(device)
        first = next(iter(self.plans.values()))
        self.backbone_spec = first.backbone  # TeacherConfig, None for plans without a teacher
        self.context = slice_context(self.backbone_spec) if uses_teacher(state["network_config"]) else "slice"
        self.slice_size = first.slice_size
        self.configuration = state.get("configuration") or configuration_of(state["network_config"])
        self.classes = list(state.get("classes") or ["liver"])  # names of the label values 1, 2, …
        self.volume_size = state.get("volume_size")  # (z, y, x) network input of a 3d model
        self.adaptation = state.get("adaptation")  # lw_adapt's record: the target modality, method, scans
        self.uses_teacher = uses_teacher(state["network_config"])
        self.backbone = None  # image baselines (U-Nets) segment the slices themselves
        if self.uses_teacher:
            self.backbone = FrozenBackbone.from_config(self._teacher_config(backbone_weights), self.slice_size[0]).to(
                device
            )
        self.random_backbone = (
            self.backbone_spec is not None and self.uses_teacher and self.backbone_spec.weights == "random"
        )
        self.int8_teacher = int8_teacher
        if int8_teacher:
            if device.type != "cpu" or self.backbone is None:
                raise ConfigurationError(
                    "--int8-teacher is a CPU option for models with a teacher: use it with --device cpu"
                )
            from ..backbones.quantization import quantize_teacher_int8

            quantize_teacher_int8(self.backbone)

    @staticmethod
    def _checked_plans(saved: dict, path) -> dict[str, Plans]:
        """The sources' plans from a checkpoint, refused when made before the input-scaling fix."""
        for source, plans in saved.items():
            try:
                check_plans_version(plans, f"{path} (source {source})")
            except OutdatedPlansError as exc:
                raise ConfigurationError(
                    f"{path}: this model was trained on features of plans version "
                    f"{plans.get('plans_version', 1)}, made with the wrong teacher input "
                    "scaling; it is not used. Re-run lw_plan_and_preprocess --replan on its "
                    "sources and retrain it with lw_train."
                ) from exc
        return {source: Plans.from_json(plans) for source, plans in saved.items()}

    def _teacher_config(self, backbone_weights) -> TeacherConfig:
        """The teacher the model was trained with; ``backbone_weights`` replaces a moved weights file."""
        spec = next(iter(self.plans.values())).teacher()
        weights = str(backbone_weights) if backbone_weights else spec.weights
        named = weights in ("random", "timm-cache") or str(weights).startswith("package:")
        if weights is None or not (named or Path(weights).is_file()):
            raise ConfigurationError(
                f"the backbone weights this model was trained with ({weights}) are not "
                "available: pass --backbone-weights FILE"
            )
        config = with_weights(spec, weights)
        if config.weights_tag != spec.weights_tag:
            raise ConfigurationError(
                f"{weights}: not the backbone weights this model was trained with "
                f"(expected {spec.weights_tag}, got {config.weights_tag})"
            )
        return config

    def segment(self, slices: torch.Tensor) -> tuple:
        """``(liver logits (B, 1, H, W), seconds in the frozen teacher)`` of normalised slices ``(B, C, H, W)``
        (``C`` = 3 for a teacher with the ``neighbours`` context: below, the slice, above; the decoder sees
        the middle one). A net with organ classes gives the logit of its softmax liver probability
        (:func:`liver_logits`)."""
        import time

        if self.backbone is None:
            return self.net(centre_slice(slices)), 0.0
        start = time.perf_counter()
        features = self.backbone(slices)
        if slices.device.type == "cuda":
            torch.cuda.synchronize()
        teacher_seconds = time.perf_counter() - start
        return liver_logits(self.net(features, centre_slice(slices))[0]), teacher_seconds

    def describe(self) -> dict:
        return {
            "folder": str(self.folder),
            "checkpoint": self.checkpoint,
            "trainer": self.config.get("trainer"),
            "default_model": bool(self.config.get("default_model")),
            "note": DISCLAIMER if self.config.get("default_model") else "",
            "fold": self.config.get("fold_name"),
            "backbone": self.backbone_spec.to_json() if self.backbone_spec is not None else {},
            "teacher": describe_teacher(self.backbone_spec)
            if self.uses_teacher and self.backbone_spec is not None
            else "none (image model)",
            "network": self.net.config.get("architecture", "contrastive_distillation"),
            "configuration": self.configuration,
            "classes": list(self.classes),
            "sources": list(self.plans),
            "random_backbone": self.random_backbone,
            "adapted": {k: self.adaptation[k] for k in ("method", "modality", "source_model")}
            if self.adaptation
            else None,
            "int8_teacher": self.int8_teacher,
        }

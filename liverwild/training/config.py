"""Trainer configuration, one typed dataclass per family of trainers: :class:`TrainerConfig` (what every
trainer's loop reads), :class:`SliceTrainerConfig` (the ``2d`` trainers: the paper's method and the image
baselines, with the paper's recipe as defaults) and :class:`VolumeTrainerConfig` (the ``3d`` trainers, with
the voxel-level Siamese paper's recipe). A trainer's ``config_class`` names its family's.

Every change goes through :meth:`TrainerConfig.updated`, which checks each value against the field's
declared type (``--set`` values arrive as JSON: :func:`parse_settings`). Which of its family's fields a
trainer reads is declared per trainer (``config_groups``: names of :data:`FIELD_GROUPS`), so that a setting
the chosen trainer would ignore — another family's field, or one its variant never reads — is refused
instead of silently recorded (:func:`liverwild.training.registry.check_changes`).
"""

from __future__ import annotations

import json
import typing
from dataclasses import asdict, dataclass, field, fields, replace

from ..errors import ConfigurationError
from .field_types import convert, describe

LOSS_TERMS = ("distillation", "focal", "tversky", "log_iou", "entropy")  # the keys of ``loss_weights``
CHOICES = {
    "sampling": ("neighbours", "neighbours2", "two_negatives"),
    "augmentation": ("cached", "online"),
    "entropy_form": ("charbonnier", "plain"),  # liverwild.losses.ENTROPY_FORMS
    "compile_mode": ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"),  # torch.compile's
    "positive_pairs": ("all", "one"),
    "feature_placement": ("encoder", "decoder"),  # the 3D U-Net path whose last layers get feature layers
}

# The fields each family of trainers reads. A trainer lists the groups it reads in ``config_groups``;
# ``loss_weights.<term>`` names one key of the ``loss_weights`` dict. Every field is in at least one
# group (tested), so a new field needs a group here and the trainers that read it need that group.
FIELD_GROUPS: dict[str, tuple[str, ...]] = {
    # the loop every trainer runs (Trainer.fit, data, optimiser, validation, the Table 4 scan cap)
    "loop": (
        "epochs",
        "batch_size",
        "lr",
        "weight_decay",
        "steps_per_epoch",
        "val_batch_size",
        "num_workers",
        "amp",
        "compile",
        "compile_mode",
        "seed",
        "max_scans_per_source",
    ),
    "plateau": ("plateau_patience", "plateau_factor"),  # the 2D trainers' reduce-on-plateau schedule
    # the 2D segmentation losses (the method's and every 2D baseline's)
    "segmentation": (
        "loss_weights.focal",
        "loss_weights.tversky",
        "loss_weights.log_iou",
        "loss_weights.entropy",
        "entropy_form",
        "focal_alpha",
        "focal_gamma",
        "tversky_alpha",
        "tversky_beta",
    ),
    # the paper's network on teacher features and its contrastive distillation loss
    "distillation": (
        "loss_weights.distillation",
        "b_self",
        "b_pos",
        "b_neg",
        "sampling",
        "positive_pairs",
        "code_channels",
        "head_dropout",
        "decoder_channels",
        "decoder_dropout",
    ),
    "augmentation": ("augmentation",),  # cached views or online augmentation of the 2D cache
    "cached_views": ("use_augmented_views",),  # whether the cached augmented views are drawn
    "organ_classes": ("organ_classes",),  # OrganCompetitionTrainer
    "unet": ("unet_channels", "unet_depth", "unet_dropout"),  # the 2D baselines' U-Net
    "episodic": (  # MASF, TaskAug
        "inner_lr",
        "inner_clip",
        "global_weight",
        "local_weight",
        "temperature",
        "pixels_per_class",
        "embedding_channels",
    ),
    "triplet": ("triplet_margin",),  # MASF
    "modality_distillation": ("kd_weight", "temperature"),  # MultiModalKDTrainer
    "synthesis": ("background_classes", "max_slice_thickness_mm", "deformation_sd_px"),  # DomainRandomizationTrainer
    "unet3d": ("unet3d_channels", "unet3d_depth", "poly_power"),  # the 3d trainers
    "voxel_features": (  # Siamese3DTrainer, SupervisedContrastive3DTrainer and their variants
        "feature_weight",
        "feature_hidden",
        "feature_placement",
        "feature_layers",
        "feature_layer_weights",
        "voxel_samples",
        "false_negative_samples",
    ),
    "supervised_contrastive": ("scl_temperature",),  # SupervisedContrastive3DTrainer
}


def setting_names(changes: dict) -> list[str]:
    """The names a change sets: its fields, with ``loss_weights`` as one ``loss_weights.<term>`` per term."""
    names = []
    for key, value in changes.items():
        if key == "loss_weights" and isinstance(value, dict):
            names += [f"loss_weights.{term}" for term in value]
        else:
            names.append(key)
    return names


_Config = typing.TypeVar("_Config", bound="TrainerConfig")
EXECUTION_FIELDS = frozenset({"num_workers", "val_batch_size", "compile", "compile_mode"})  # how, not what, is trained


@dataclass
class TrainerConfig:
    """What every trainer's loop reads (group ``loop``); the defaults are the 2D paper's recipe."""

    epochs: int = 150
    batch_size: int = 8
    lr: float = 1e-4
    weight_decay: float = 1e-5
    max_scans_per_source: int | None = None  # Table 4 ablation: 5 / 10 / 15 training scans per source
    steps_per_epoch: int | None = None  # None: one pass over the training items
    val_batch_size: int = 32
    num_workers: int | None = None  # None: 0 on CPU, up to 8 loader processes on GPU
    amp: bool = True  # mixed precision on GPU (no effect on CPU)
    compile: bool = False  # torch.compile the training forward (GPU: fewer kernel launches; compiles first)
    # torch.compile's mode (with compile=true): "reduce-overhead" captures the network's forward and backward
    # as CUDA graphs on a GPU, replayed in one launch each step (the fixed-shape step was bound by launches)
    compile_mode: str = "default"
    seed: int = 0

    def updated(self: _Config, **changes) -> _Config:
        """A copy with ``changes``, each checked against its field's type (:meth:`checked`); a change of a
        dict field (``loss_weights``) replaces only the keys it names."""
        changes = {key: self.checked(key, value) for key, value in changes.items()}
        for key, value in changes.items():
            if isinstance(value, dict):
                changes[key] = {**getattr(self, key), **value}
        return replace(self, **changes)

    def to_json(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls: type[_Config], d: dict) -> _Config:
        """From :meth:`to_json`'s dict (keys that are not this family's fields are left out)."""
        return cls(**{k: cls.checked(k, v) for k, v in d.items() if k in cls.field_names()})

    @classmethod
    def field_names(cls) -> frozenset[str]:
        return frozenset(f.name for f in fields(cls))

    @classmethod
    def checked(cls, key: str, value):
        """``value`` as field ``key`` holds it (an integer for a float field becomes a float, a list for a
        tuple field a tuple), or a :class:`ConfigurationError` naming the key, the expected type and the
        value given. ``loss_weights`` takes some or all of :data:`LOSS_TERMS`; the fields of
        :data:`CHOICES` one of their choices."""
        hints = _field_types(cls)
        if key not in hints:
            raise ConfigurationError(f"{key}: not a field of {cls.__name__}")
        expected = hints[key]
        try:
            converted = convert(value, expected)
        except (TypeError, ValueError):
            keys = LOSS_TERMS if key == "loss_weights" else ()
            raise ConfigurationError(
                f"{key} expects {describe(expected, keys)}; the value given is {json.dumps(value, default=repr)}"
            ) from None
        if key == "loss_weights":
            unknown = [term for term in converted if term not in LOSS_TERMS]
            if unknown:
                raise ConfigurationError(
                    f"loss_weights has no term {', '.join(map(repr, unknown))} (its terms: {', '.join(LOSS_TERMS)})"
                )
        if key in CHOICES and converted not in CHOICES[key]:
            raise ConfigurationError(
                f"{key} expects one of {', '.join(CHOICES[key])}; the value given is {json.dumps(value, default=repr)}"
            )
        return converted


@dataclass
class SliceTrainerConfig(TrainerConfig):
    """The ``2d`` trainers (:class:`~liverwild.training.slices.SliceTrainer`): the paper's network on
    teacher features and its losses (defaults: the paper's recipe), and the 2D baselines' networks."""

    plateau_patience: int = 10  # epochs without validation-Dice improvement
    plateau_factor: float = 0.1  # the paper does not give it: torch's default
    loss_weights: dict[str, float] = field(
        default_factory=lambda: {"distillation": 1.0, "focal": 1.0, "tversky": 1.0, "log_iou": 1.0, "entropy": 0.01}
    )  # Table 4: entropy values in [0, 0.02) → small weight
    # the entropy term's per-pixel penalty: FDA's robust ((H / log C)² + 1e-8)² (the paper's ref. 21) or the
    # plain entropy H (ablation); see documentation/training.md, "Where the paper is ambiguous"
    entropy_form: str = "charbonnier"
    focal_alpha: float = 0.5
    focal_gamma: float = 3.0
    tversky_alpha: float = 0.5  # not given in the paper
    tversky_beta: float = 0.5
    b_self: float = 0.55
    b_pos: float = 0.5
    b_neg: float = 0.6
    sampling: str = "neighbours"  # neighbours | neighbours2 | two_negatives
    positive_pairs: str = "all"  # all: both neighbours per slice, as the paper; one: one drawn at random
    code_channels: int = 70
    head_dropout: float = 0.1
    decoder_channels: tuple[int, ...] = (70, 40, 20, 10, 5)
    decoder_dropout: float = 0.3
    use_augmented_views: bool = True
    augmentation: str = "cached"  # cached: the K views made at preprocessing; online: augment on the fly
    # and run the frozen teacher in the training loop (as the paper)
    organ_classes: list[str] | None = None  # OrganCompetitionTrainer: the classes, liver first (names of
    # liverwild.datasets.organs.COMPETING_CLASSES); None: the liver and every class all sources' organ maps name
    # image baselines (SupervisedUNet, MASF, TaskAug, DualNorm, DomainRandomization): the 2D U-Net
    unet_channels: int = 32  # channels of the first level (doubled per level, nnU-Net's 32)
    unet_depth: int = 4  # poolings: 224 → 14
    unet_dropout: float = 0.0
    # episodic baselines (MASF, TaskAug)
    inner_lr: float | None = None  # first-order inner step size α; None: lr
    inner_clip: float = 2.0  # the inner gradient is clipped to this global norm
    global_weight: float = 1.0  # β1: class alignment (symmetric KL of soft class labels)
    local_weight: float = 0.1  # β2: triplet clustering (MASF) / centroid-cosine alignment (TaskAug)
    temperature: float = 2.0  # τ of the soft class labels (also MultiModalKDTrainer's T)
    triplet_margin: float = 0.5  # ξ, on unit-length embeddings
    pixels_per_class: int = 64  # pixels sampled per class and domain for the metric terms
    embedding_channels: int = 32  # width of the metric embedding M_φ
    # MultiModalKDTrainer (Dou et al., TMI 2020): weight of the CT/MR knowledge-distillation loss
    kd_weight: float = 0.5
    # domain randomisation
    background_classes: int = 4  # intensity classes split off the unlabelled background
    max_slice_thickness_mm: float = 8.0  # thickest simulated axial slice (≤ the cache's spacing: none)
    deformation_sd_px: float = 3.5  # largest s.d. of the nonlinear deformation's velocity field (0: none)


@dataclass
class VolumeTrainerConfig(TrainerConfig):
    """The ``3d`` trainers (:class:`~liverwild.training.volumetric.VolumeTrainer`): the voxel-level Siamese
    paper's recipe — 500 epochs, batch 4, Adam lr 1e-3 with polynomial decay — its 3D U-Net and its voxel
    feature layers."""

    epochs: int = 500
    batch_size: int = 4
    lr: float = 1e-3
    val_batch_size: int = 1
    unet3d_channels: int = 16  # channels of the first 3D U-Net level (doubled per level)
    unet3d_depth: int = 4  # poolings: 64 × 128 × 128 → 4 × 8 × 8
    poly_power: float = 0.9  # lr · (1 − epoch / epochs) ** power
    feature_weight: float = 0.1  # λ: Dice + λ · feature loss; measured choice, see documentation/multi_organ_3d.md
    feature_hidden: int = 64  # projection/prediction MLP width (the paper's implementation details)
    # the feature layers sit on the last feature_layers hidden layers of this path: "encoder" (the paper:
    # f^1 = the bottleneck, f^2, f^3) or "decoder" (the last decoder levels, up to full resolution)
    feature_placement: str = "encoder"
    feature_layers: int = 3  # multi-resolution context aggregation over the last N layers (the paper's N = 3)
    # w_l, one per layer in the network's order (encoder: bottleneck last; decoder: finest last); None: 1 each
    feature_layer_weights: list[float] | None = None
    voxel_samples: int = 1700  # voxels sampled per layer and step
    false_negative_samples: int = 1000  # of which at most this many are voxels the network still gets wrong
    scl_temperature: float = 0.1  # the supervised-contrastive row's temperature


FAMILIES: tuple[type[TrainerConfig], ...] = (SliceTrainerConfig, VolumeTrainerConfig)


def parse_settings(assignments) -> dict:
    """``KEY=VALUE`` strings (``--set``) → ``{field: value}``: VALUE parsed as JSON (else kept as text) and
    checked against the type of the field KEY in whichever family declares it (a command line may feed
    several trainers). An unknown KEY is an error listing the fields; a value of the wrong type one naming
    the key, the expected type and the value given. Whether the chosen trainer reads KEY is checked later
    (:func:`~liverwild.training.registry.check_changes`)."""
    names = sorted(set().union(*(family.field_names() for family in FAMILIES)))
    changes = {}
    for item in assignments or []:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in names:
            raise ConfigurationError(f"--set {item!r}: expected KEY=VALUE with KEY one of {', '.join(names)}")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        family = next(f for f in FAMILIES if key in f.field_names())
        try:
            changes[key] = family.checked(key, value)
        except ConfigurationError as exc:
            raise ConfigurationError(f"--set {item}: {exc}") from None
    return changes


def flat_settings(config: dict) -> dict:
    """A configuration's JSON with ``loss_weights`` as one ``loss_weights.<term>`` entry per term, the
    names :data:`FIELD_GROUPS` uses."""
    flat = {k: v for k, v in config.items() if k != "loss_weights"}
    return flat | {f"loss_weights.{t}": w for t, w in (config.get("loss_weights") or {}).items()}


_FIELD_TYPES: dict[type, dict] = {}


def _field_types(cls: type) -> dict:
    """The fields' declared types (resolved from their annotations once per class)."""
    if cls not in _FIELD_TYPES:
        hints = typing.get_type_hints(cls)
        _FIELD_TYPES[cls] = {f.name: hints[f.name] for f in fields(cls)}
    return _FIELD_TYPES[cls]

"""Turn a fingerprint and the user's choices into :class:`~planning.plans.Plans`: new plans
(``plan_dataset``), or an existing — possibly hand-edited — ``plans.json`` updated with what the user
passed (``make_plans``)."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from liverwild.backbones import DEFAULT_TEACHER, teacher_config
from liverwild.errors import ConfigurationError

from .plans import Plans, default_augmentation, default_config_3d, default_normalization, load_plans


def plan_dataset(
    fingerprint: dict,
    backbone: str = DEFAULT_TEACHER,
    weights=None,
    views: int = 2,
    slice_size: int = 224,
    feature_dtype: str = "float16",
    seed: int = 0,
    tap: str | None = None,
    normalization: str = "default",
    organ_labels: dict | None = None,
    context: str | None = None,
) -> Plans:
    """Plans for one dataset (both configurations: 2D and ``3d``).

    ``backbone``: a teacher name (``liverwild.backbones.TEACHERS``) or a timm model name. ``weights``: file
    path, ``'package:<pip name>'``, ``'timm-cache'``, ``'random'`` or None (the teacher's own pip package
    if it has one, else decided later). ``tap``: feature tap text (``liverwild.backbones.registry``).
    ``context``: the teacher's slice context, ``slice`` (default) or ``neighbours`` (2.5D).
    ``normalization``: preset of :func:`~planning.plans.default_normalization` (``single-dg``: CT window [−125, 275] HU;
    ``single-dg-0-125``: [0, 125] HU).
    ``organ_labels``: ``dataset.json``'s organ map labels (name → value), for the ``3d`` classes.
    ``seed``: the augmentation's seed — which augmented views are cached (part of the data identifier).
    """
    return Plans(
        dataset=fingerprint["dataset"],
        modality=fingerprint["modality"],
        normalization=default_normalization(fingerprint["modality"], fingerprint.get("aggregate"), normalization),
        slice_size=[slice_size, slice_size],
        backbone=teacher_config(backbone, weights, tap, context),
        feature_dtype=feature_dtype,
        augmentation=default_augmentation(views, seed),
        config_3d=default_config_3d(fingerprint["modality"], fingerprint.get("aggregate"), organ_labels),
    )


def resolve_weights(weights=None, random_backbone: bool = False):
    """The weights source to record: ``"random"``, a named source, or an existing file's absolute path."""
    if random_backbone and weights not in (None, "random"):
        raise ConfigurationError("--random-backbone and --backbone-weights exclude each other")
    if random_backbone:
        return "random"
    if weights in (None, "random", "timm-cache") or str(weights).startswith("package:"):
        return weights
    path = Path(weights).expanduser()
    if not path.is_file():
        raise ConfigurationError(f"{path}: backbone weights file does not exist")
    return str(path.resolve())


@dataclass(frozen=True)
class PlanRequest:
    """What the user asked of the plans (``lw_plan_and_preprocess``'s plan options). ``None`` (and
    ``replan=False``) keeps what ``plans.json`` holds, or the default for new plans."""

    backbone: str | None = None  # a registered teacher or a timm name
    weights: str | None = None  # the teacher's weights: a file, "package:…", "timm-cache" or "random"
    views: int | None = None  # augmented views cached per slice
    replan: bool = False  # plan from the defaults again
    tap: str | None = None  # the teacher's feature tap
    normalization: str | None = None  # a preset of planning.plans.NORMALIZATION_PRESETS
    volume_size: tuple | None = None  # the 3d volumes' (z, y, x) voxels
    slice_context: str | None = None  # "slice" or "neighbours"
    seed: int | None = None  # the augmentation's seed (which views are cached)

    OPTIONS = {  # the command-line option of each field
        "backbone": "--backbone",
        "weights": "--backbone-weights/--random-backbone",
        "views": "--views",
        "replan": "--replan",
        "tap": "--feature-tap",
        "normalization": "--normalization",
        "volume_size": "--volume-size",
        "slice_context": "--slice-context",
        "seed": "--seed",
    }

    def changes(self) -> list[str]:
        """The options of this request that would change stored plans (``--seed`` aside: it changes them
        only when it differs from the stored seed)."""
        return [
            self.OPTIONS[f.name]
            for f in fields(self)
            if f.name != "seed" and getattr(self, f.name) not in (None, False)
        ]


def make_plans(
    fingerprint: dict,
    plans_path: Path,
    request: PlanRequest | None = None,
    organ_labels: dict | None = None,
) -> Plans:
    """Keep an existing (possibly hand-edited) plans.json, overriding only what ``request`` asks for
    (its ``seed``: the augmentation's seed, the cached views; default: the stored one, 0 for new plans).

    A new ``backbone`` starts from that teacher's own weights source and tap (and the ``slice`` context)
    unless ``weights``/``tap``/``context`` are given too; the same teacher keeps its recorded weights, tap
    and context unless overridden. Plans without
    a ``3d`` entry (written before it existed) get the default one.
    """
    r = request or PlanRequest()
    backbone, weights, views, tap, context, seed = r.backbone, r.weights, r.views, r.tap, r.slice_context, r.seed
    normalization, volume_size = r.normalization, r.volume_size
    if plans_path.is_file() and not r.replan:
        plans = load_plans(plans_path)
        current = plans.backbone
        asked = weights is not None or tap is not None or context is not None
        if current is None:  # plans without a teacher get one only when asked for
            plans.backbone = teacher_config(backbone, weights, tap, context) if backbone or asked else None
        elif backbone and backbone not in (current.teacher, current.name):
            plans.backbone = teacher_config(backbone, weights, tap, context)
        elif asked:
            plans.backbone = teacher_config(
                current.teacher or current.name,
                weights if weights is not None else current.weights,
                tap or current.tap.spec,
                context or current.context,
            )
        if views is not None:
            plans.augmentation = replace(plans.augmentation, views_per_slice=int(views))
        if seed is not None:
            plans.augmentation = replace(plans.augmentation, seed=int(seed))
        if normalization is not None:
            plans.normalization = default_normalization(plans.modality, fingerprint.get("aggregate"), normalization)
        if plans.config_3d is None:
            plans.config_3d = default_config_3d(plans.modality, fingerprint.get("aggregate"), organ_labels)
    else:
        kwargs: dict[str, Any] = {
            "weights": weights,
            "tap": tap,
            "context": context,
            "normalization": normalization or "default",
            "organ_labels": organ_labels,
        }
        if backbone:
            kwargs["backbone"] = backbone
        if views is not None:
            kwargs["views"] = int(views)
        if seed is not None:
            kwargs["seed"] = int(seed)
        plans = plan_dataset(fingerprint, **kwargs)
    if volume_size is not None and plans.config_3d is not None:
        plans.config_3d = replace(plans.config_3d, volume_size=checked_volume_size(volume_size))
    return plans


def checked_volume_size(volume_size) -> list:
    """``(z, y, x)`` voxels of the ``3d`` configuration's volumes: three positive integers."""
    size = [int(v) for v in volume_size]
    if len(size) != 3 or min(size) < 1:
        raise ConfigurationError(f"--volume-size {' '.join(map(str, volume_size))}: give three positive sizes Z Y X")
    return size

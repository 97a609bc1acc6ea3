"""Turn a fingerprint and the user's choices into :class:`~planning.plans.Plans`."""

from __future__ import annotations

from liverwild.backbones import DEFAULT_TEACHER, teacher_config

from .plans import Plans, default_augmentation, default_normalization


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
) -> Plans:
    """Plans for one dataset.

    ``backbone``: a teacher name (``liverwild.backbones.TEACHERS``) or a timm model name. ``weights``: file
    path, ``'package:<pip name>'``, ``'timm-cache'``, ``'random'`` or None (the teacher's own pip package
    if it has one, else decided later). ``tap``: feature tap text (``liverwild.backbones.registry``).
    ``normalization``: preset of :func:`~planning.plans.default_normalization` (``single-dg``: CT at 125 HU).
    """
    return Plans(
        dataset=fingerprint["dataset"],
        modality=fingerprint["modality"],
        normalization=default_normalization(fingerprint["modality"], fingerprint.get("aggregate"), normalization),
        slice_size=[slice_size, slice_size],
        backbone=teacher_config(backbone, weights, tap),
        feature_dtype=feature_dtype,
        augmentation=default_augmentation(views, seed),
    )

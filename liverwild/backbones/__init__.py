"""Frozen teachers (timm): named registry, weights from local files or pip packages, input scaling,
feature taps. See :mod:`.registry` for the names and tap syntax, :mod:`.scaling` for the input rule.

The names below are imported on first use (PEP 562): :class:`~.config.TeacherConfig`, which plans hold,
is read by prediction paths that must not import torch (the ONNX runtime)."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import TeacherConfig, TeacherInput, TeacherTap
    from .frozen import FrozenBackbone, create_teacher_network
    from .registry import (
        DEFAULT_TEACHER,
        MISSING_WEIGHTS,
        SLICE_CONTEXTS,
        TEACHERS,
        TeacherSpec,
        describe_teacher,
        register_teacher,
        resolve_tap,
        slice_context,
        teacher_config,
        unchanged_weights,
        with_weights,
    )
    from .scaling import IMAGENET_MEAN, IMAGENET_STD, RULE, centre_slice, scale_and_shift, teacher_input
    from .weights import (
        PACKAGED_WEIGHTS,
        RANDOM_WEIGHTS_SEED,
        cached_timm_weights,
        load_state_dict_file,
        map_by_order,
        packaged_weights_file,
        weights_tag,
    )

_HOMES = {
    "FrozenBackbone": "frozen",
    "create_teacher_network": "frozen",
    "DEFAULT_TEACHER": "registry",
    "MISSING_WEIGHTS": "registry",
    "SLICE_CONTEXTS": "registry",
    "TEACHERS": "registry",
    "TeacherSpec": "registry",
    "describe_teacher": "registry",
    "register_teacher": "registry",
    "resolve_tap": "registry",
    "slice_context": "registry",
    "teacher_config": "registry",
    "with_weights": "registry",
    "unchanged_weights": "registry",
    "IMAGENET_MEAN": "scaling",
    "IMAGENET_STD": "scaling",
    "RULE": "scaling",
    "centre_slice": "scaling",
    "scale_and_shift": "scaling",
    "teacher_input": "scaling",
    "PACKAGED_WEIGHTS": "weights",
    "RANDOM_WEIGHTS_SEED": "weights",
    "cached_timm_weights": "weights",
    "load_state_dict_file": "weights",
    "map_by_order": "weights",
    "packaged_weights_file": "weights",
    "weights_tag": "weights",
    "TeacherConfig": "config",
    "TeacherInput": "config",
    "TeacherTap": "config",
}

__all__ = [
    "DEFAULT_TEACHER",
    "FrozenBackbone",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MISSING_WEIGHTS",
    "PACKAGED_WEIGHTS",
    "RANDOM_WEIGHTS_SEED",
    "RULE",
    "SLICE_CONTEXTS",
    "TEACHERS",
    "TeacherConfig",
    "TeacherInput",
    "TeacherSpec",
    "TeacherTap",
    "cached_timm_weights",
    "centre_slice",
    "create_teacher_network",
    "describe_teacher",
    "load_state_dict_file",
    "map_by_order",
    "packaged_weights_file",
    "register_teacher",
    "resolve_tap",
    "scale_and_shift",
    "slice_context",
    "teacher_config",
    "teacher_input",
    "weights_tag",
    "with_weights",
    "unchanged_weights",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_HOMES[name]}", __name__), name)

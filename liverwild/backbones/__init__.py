"""Frozen teachers (timm): named registry, weights from local files or pip packages, input scaling,
feature taps. See :mod:`.registry` for the names and tap syntax, :mod:`.scaling` for the input rule."""

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

DEFAULT_BACKBONE = DEFAULT_TEACHER

__all__ = [
    "DEFAULT_BACKBONE",
    "DEFAULT_TEACHER",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MISSING_WEIGHTS",
    "PACKAGED_WEIGHTS",
    "RANDOM_WEIGHTS_SEED",
    "RULE",
    "SLICE_CONTEXTS",
    "TEACHERS",
    "FrozenBackbone",
    "TeacherSpec",
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
]

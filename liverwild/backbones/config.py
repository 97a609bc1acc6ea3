"""A teacher's configuration, as plans, caches and models record it (the plans' ``backbone`` section).

:func:`~.registry.teacher_config` resolves command-line choices into one; :class:`~.frozen.FrozenBackbone`
builds the network from it. :meth:`TeacherConfig.to_json` writes the same entries, in the same order,
as the plain dict it replaced (``model_args`` and ``context`` only where set), so the data identifiers
hashed from it do not change.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from ..errors import ConfigurationError


def _check_entries(cls: type, data: Any, where: str, optional: set | None = None) -> None:
    """Refuse a ``data`` that is not an object with exactly the fields of ``cls`` (``optional`` ones may be
    absent): a default filled in would change the data identifier of the plans it was left out of."""
    if not isinstance(data, dict):
        raise ConfigurationError(f"{where}: expected an object, got {data!r}")
    names = [f.name for f in fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigurationError(f"{where}: unknown entr{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown)}")
    missing = [name for name in names if name not in data and name not in (optional or set())]
    if missing:
        raise ConfigurationError(f"{where}: missing {', '.join(missing)}")


@dataclass(frozen=True)
class TeacherInput:
    """How z-scored slices become the teacher's input: ``rule`` (:data:`.scaling.RULE`) with the weights'
    per-channel ``pixel_mean`` and ``pixel_std``."""

    rule: str
    pixel_mean: list
    pixel_std: list


@dataclass(frozen=True)
class TeacherTap:
    """Where the features are read (:func:`~.registry.resolve_tap`): ``spec`` as written, ``kind``
    (``final`` or ``intermediates``), the stage ``indices`` and ``modules``, and whether the final
    ``norm`` is applied."""

    spec: str
    kind: str
    indices: list = field(default_factory=list)
    modules: list = field(default_factory=list)
    norm: bool = False


@dataclass(frozen=True)
class TeacherConfig:
    """One frozen teacher: registry ``teacher`` name (None for a plain timm name), timm architecture
    ``name``, ``weights`` source (a file, ``package:…``, ``timm-cache``, ``random``; None: undecided) and
    its ``weights_tag``, the packaged weights' ``key_mapping``, the ``input`` scaling, the feature ``tap``,
    extra timm ``model_args`` (e.g. ``img_size``) and the slice ``context`` (None: the slice alone)."""

    name: str
    input: TeacherInput
    tap: TeacherTap
    teacher: str | None = None
    weights: str | None = None
    weights_tag: str | None = None
    key_mapping: str | None = None
    model_args: dict | None = None
    context: str | None = None

    def with_weights(self, weights: str | None, weights_tag: str | None, key_mapping: str | None) -> TeacherConfig:
        return replace(self, weights=weights, weights_tag=weights_tag, key_mapping=key_mapping)

    @classmethod
    def from_json(cls, data: Any, where: str = "backbone") -> TeacherConfig:
        _check_entries(cls, data, where, optional={"model_args", "context"})
        for key, kind in (("input", TeacherInput), ("tap", TeacherTap)):
            _check_entries(kind, data[key], f"{where}.{key}")
        return cls(**{**data, "input": TeacherInput(**data["input"]), "tap": TeacherTap(**data["tap"])})

    def to_json(self) -> dict:
        d: dict = {
            "teacher": self.teacher,
            "name": self.name,
            "weights": self.weights,
            "weights_tag": self.weights_tag,
            "key_mapping": self.key_mapping,
            "input": {"rule": self.input.rule, "pixel_mean": self.input.pixel_mean, "pixel_std": self.input.pixel_std},
            "tap": {
                "spec": self.tap.spec,
                "kind": self.tap.kind,
                "indices": self.tap.indices,
                "modules": self.tap.modules,
                "norm": self.tap.norm,
            },
        }
        if self.model_args:
            d["model_args"] = dict(self.model_args)
        if self.context is not None:
            d["context"] = self.context
        return d

"""The typed sections of ``plans.json``: intensity normalisation, augmentation and the ``3d`` configuration.

Each section reads its JSON entry with :meth:`from_json`, which refuses an unknown or mistyped entry with
its dotted name (``plans.json: augmentation.noise.sigma: expected a number, got 'high'``), and writes it
back with :meth:`to_json`. Numbers keep the type the JSON gave them (``500`` stays an int), so the data
identifiers hashed from ``to_json()`` are those of the plain dicts these sections replaced. The teacher
section is :class:`liverwild.backbones.TeacherConfig` (it lives with the teachers, below planning).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from liverwild.errors import ConfigurationError

Number = (int, float)
KINDS = {
    "number": "a number",
    "int": "an integer",
    "bool": "true or false",
    "str": "a string",
    "numbers": "a list of numbers",
    "ints": "a list of integers",
    "strs": "a list of strings",
}


def _expect(where: str, value: Any, kind: str) -> Any:
    """``value`` if it is of ``kind`` (number, int, bool, str, numbers, ints, strs); else a ConfigurationError."""
    ok = {
        "number": lambda v: isinstance(v, Number) and not isinstance(v, bool),
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "bool": lambda v: isinstance(v, bool),
        "str": lambda v: isinstance(v, str),
        "numbers": lambda v: isinstance(v, list) and all(_is_number(x) for x in v),
        "ints": lambda v: isinstance(v, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in v),
        "strs": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    }[kind]
    if not ok(value):
        raise ConfigurationError(f"{where}: expected {KINDS[kind]}, got {value!r}")
    return value


def _is_number(v: Any) -> bool:
    return isinstance(v, Number) and not isinstance(v, bool)


def _entries(cls: type, data: Any, where: str, optional: frozenset = frozenset()) -> dict:
    """``data`` as a dict holding every field of ``cls`` but the ``optional`` ones, and nothing else: an
    unknown entry is refused, and so is a missing one (a default filled in would change the data identifier
    of the plans it was left out of)."""
    if not isinstance(data, dict):
        raise ConfigurationError(f"{where}: expected an object, got {data!r}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigurationError(f"{where}: unknown entr{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown)}")
    missing = [name for name in (f.name for f in fields(cls)) if name not in data and name not in optional]
    if missing:
        raise ConfigurationError(f"{where}: missing {', '.join(missing)}")
    return data


def _pair(where: str, value: Any, strict: bool = True) -> list:
    """``[low, high]`` with low < high (``strict``) or low ≤ high."""
    _expect(where, value, "numbers")
    if len(value) != 2 or not (value[0] < value[1] if strict else value[0] <= value[1]):
        raise ConfigurationError(f"{where}: expected [low, high] with low {'<' if strict else '≤'} high, got {value!r}")
    return list(value)


@dataclass(frozen=True)
class Normalization:
    """How one scan's intensities become network input (:func:`preprocessing.normalization.normalize_scan`).

    ``window``: [low, high] in HU (CT) or in multiples of the scan's body median (``relative_to_body_median``,
    MR); ``clip_percentiles``: the scan's own [low, high] percentiles clipped after the window (None: the
    window is the only clip); then ``rescale`` to [0, 1] and ``zscore`` per scan. ``preset``: the
    ``--normalization`` preset that chose the window (written only when not ``default``).
    """

    window: list
    relative_to_body_median: bool = False
    clip_percentiles: list | None = None
    rescale: bool = True
    zscore: bool = True
    preset: str = "default"

    @classmethod
    def from_json(cls, data: Any, where: str = "normalization") -> Normalization:
        d = _entries(cls, data, where, optional=frozenset({"preset"}))
        clip = d["clip_percentiles"]
        return cls(
            window=_pair(f"{where}.window", d["window"]),
            relative_to_body_median=_expect(f"{where}.relative_to_body_median", d["relative_to_body_median"], "bool"),
            clip_percentiles=None if clip is None else _pair(f"{where}.clip_percentiles", clip),
            rescale=_expect(f"{where}.rescale", d["rescale"], "bool"),
            zscore=_expect(f"{where}.zscore", d["zscore"], "bool"),
            preset=_expect(f"{where}.preset", d.get("preset", "default"), "str"),
        )

    def to_json(self) -> dict:
        d = asdict(self)
        if self.preset == "default":
            del d["preset"]
        return d


@dataclass(frozen=True)
class ElasticDeformation:
    """Per slice with probability ``p``: a smooth displacement field of ``sigma_px`` pixels drawn on a
    ``control_points`` × ``control_points`` grid; the masks follow the same field."""

    p: float = 0.9
    sigma_px: float = 3.5
    control_points: int = 8


@dataclass(frozen=True)
class GaussianNoise:
    """Per slice with probability ``p``: additive noise of standard deviation ``sigma`` (z-score units)."""

    p: float = 0.6
    sigma: float = 0.15


@dataclass(frozen=True)
class GaussianBlur:
    """Per slice with probability ``p``: Gaussian blur of ``sigma_px`` pixels."""

    p: float = 0.6
    sigma_px: float = 0.7


@dataclass(frozen=True)
class Gamma:
    """Per slice with probability ``p``: intensity gamma drawn from ``range``; ``retain_stats`` keeps the
    slice's mean and standard deviation."""

    p: float = 0.6
    # Table A1 is garbled here ('log [0.1, 0.9]', 'σ 0.15'); read as log-gamma ~ ±2σ → γ ∈ [0.74, 1.35]
    range: list = field(default_factory=lambda: [0.74, 1.35])
    retain_stats: bool = True


@dataclass(frozen=True)
class PixelDropout:
    """Per slice with probability ``p``: a ``fraction`` of the pixels set to 0 ('dropout augmentation p 0.2'
    of the paper; the dropped fraction is not given)."""

    p: float = 0.2
    fraction: float = 0.05


TRANSFORMS: dict[str, type] = {
    "elastic": ElasticDeformation,
    "noise": GaussianNoise,
    "blur": GaussianBlur,
    "gamma": Gamma,
    "dropout": PixelDropout,
}
"""The augmentation's transforms in the order they are applied, by their plans.json key."""


def _transform_from_json(cls: type, data: Any, where: str) -> Any:
    d = _entries(cls, data, where)
    values = {}
    for f in fields(cls):
        kind = {"control_points": "int", "retain_stats": "bool", "range": "numbers"}.get(f.name, "number")
        value = _expect(f"{where}.{f.name}", d[f.name], kind)
        if f.name == "p" and not 0 <= value <= 1:
            raise ConfigurationError(f"{where}.p: a probability lies in [0, 1], got {value!r}")
        values[f.name] = _pair(f"{where}.range", value, strict=False) if f.name == "range" else value
    return cls(**values)


@dataclass(frozen=True)
class Augmentation:
    """Table A1 of the paper's supplement: ``views_per_slice`` augmented copies of every slice cached (or
    drawn online), from ``seed``, by the transforms of :data:`TRANSFORMS`."""

    views_per_slice: int = 2
    seed: int = 0
    elastic: ElasticDeformation = field(default_factory=ElasticDeformation)
    noise: GaussianNoise = field(default_factory=GaussianNoise)
    blur: GaussianBlur = field(default_factory=GaussianBlur)
    gamma: Gamma = field(default_factory=Gamma)
    dropout: PixelDropout = field(default_factory=PixelDropout)

    @classmethod
    def from_json(cls, data: Any, where: str = "augmentation") -> Augmentation:
        d = _entries(cls, data, where)
        values: dict[str, Any] = {
            key: _transform_from_json(kind, d[key], f"{where}.{key}") for key, kind in TRANSFORMS.items()
        }
        for key in ("views_per_slice", "seed"):
            values[key] = _expect(f"{where}.{key}", d[key], "int")
        if values["views_per_slice"] < 0:
            raise ConfigurationError(f"{where}.views_per_slice: must be 0 or more")
        return cls(**values)

    def to_json(self) -> dict:
        return asdict(self)


LABEL_MAPS = ("organs", "liver")


@dataclass(frozen=True)
class Config3D:
    """The ``3d`` configuration: whole canonical volumes resized to ``volume_size`` (z, y, x), normalised by
    ``normalization``; ``classes`` (organ names) each made of the ``label_values`` of the label maps named
    by ``label_maps`` (``organs``: ``labelsTr_organs``; ``liver``: ``labelsTr``)."""

    volume_size: list
    normalization: Normalization
    classes: list
    label_values: dict
    label_maps: str = "liver"

    @classmethod
    def from_json(cls, data: Any, where: str = "3d") -> Config3D:
        d = _entries(cls, data, where)
        size = _expect(f"{where}.volume_size", d["volume_size"], "ints")
        if len(size) != 3 or min(size) < 1:
            raise ConfigurationError(f"{where}.volume_size: expected three positive sizes (z, y, x), got {size!r}")
        classes = _expect(f"{where}.classes", d["classes"], "strs")
        values = d["label_values"]
        if not isinstance(values, dict):
            raise ConfigurationError(f"{where}.label_values: expected an object, got {values!r}")
        for name, value in values.items():
            _expect(f"{where}.label_values.{name}", value, "ints")
        label_maps = _expect(f"{where}.label_maps", d["label_maps"], "str")
        if label_maps not in LABEL_MAPS:
            raise ConfigurationError(f"{where}.label_maps: {label_maps!r} is not one of {', '.join(LABEL_MAPS)}")
        normalization = Normalization.from_json(d["normalization"], f"{where}.normalization")
        return cls(list(size), normalization, list(classes), dict(values), label_maps)

    def to_json(self) -> dict:
        return {
            "volume_size": list(self.volume_size),
            "normalization": self.normalization.to_json(),
            "classes": list(self.classes),
            "label_values": dict(self.label_values),
            "label_maps": self.label_maps,
        }

"""The registry of dataset kinds, in the style of the trainers' registry: ``lw_convert KIND`` and
``convert(kind, ...)`` look a kind up here, and ``@register_converter`` adds one (your own included)::

    @register_converter("mydata", default_name="MyData", layout="img/<n>.nii.gz + seg/<n>.nii.gz, liver = 1")
    def _mydata(**options):
        return [(MyDataConverter(), "")]

A kind's factory takes the conversion options it declares (``sequence``, ``liver_label``,
``amos_modalities``) and returns ``(converter, dataset-name suffix)`` pairs — one per written dataset.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ...errors import ConfigurationError


@dataclass(frozen=True)
class ConverterKind:
    kind: str
    default_name: str | None  # None: the source folder's name
    layout: str  # one line: the distributed layout the converter expects
    make: Callable[..., list]  # options → [(Converter, dataset-name suffix)]
    options: tuple = ()  # the conversion options it reads

    def converters(self, **options) -> list:
        return self.make(**{k: v for k, v in options.items() if k in self.options})


CONVERTERS: dict[str, ConverterKind] = {}


def register_converter(kind: str, *, default_name: str | None, layout: str, options: tuple = ()):
    """Decorator registering a factory of converters under ``kind``."""

    def wrap(make: Callable[..., list]) -> Callable[..., list]:
        CONVERTERS[kind] = ConverterKind(kind, default_name, layout, make, tuple(options))
        return make

    return wrap


def get_converter_kind(kind: str) -> ConverterKind:
    if kind not in CONVERTERS:
        raise ConfigurationError(f"unknown dataset kind {kind!r}; known: {', '.join(CONVERTERS)}")
    return CONVERTERS[kind]

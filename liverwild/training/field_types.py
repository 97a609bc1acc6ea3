"""Values checked against a dataclass field's declared type: ``convert`` (JSON value → the field's
type, or ``TypeError``) and ``describe`` (the type in words, for one-line error messages). The trainer
configuration (:mod:`.config`) checks every ``--set`` value with them."""

from __future__ import annotations

import numbers
import types
import typing


def convert(value, expected):
    """``value`` as type ``expected`` (int, float, bool, str, None, unions, ``tuple[T, ...]``,
    ``list[T]``, ``dict[str, T]``); a ``TypeError`` when it is not one."""
    origin, args = typing.get_origin(expected), typing.get_args(expected)
    if origin in (typing.Union, types.UnionType):
        for option in args:
            try:
                return convert(value, option)
            except (TypeError, ValueError):
                continue
        raise TypeError(value)
    if expected is type(None):
        if value is not None:
            raise TypeError(value)
        return None
    if expected is bool:
        if not isinstance(value, bool):
            raise TypeError(value)
        return value
    if expected is int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(value)
        return int(value)
    if expected is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(value)
        return float(value)
    if expected is str:
        if not isinstance(value, str):
            raise TypeError(value)
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise TypeError(value)
        items = [convert(v, args[0]) for v in value]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise TypeError(value)
        return {k: convert(v, args[1]) for k, v in value.items()}
    raise TypeError(f"unsupported field type {expected}")


def describe(expected, object_keys: tuple[str, ...] = ()) -> str:
    """``expected`` in words: "an integer", "a list of numbers or null", ..."""
    origin, args = typing.get_origin(expected), typing.get_args(expected)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(option, object_keys) for option in args)
    words = {type(None): "null", bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    if expected in words:
        return words[expected]
    plural = {bool: "true/false values", int: "integers", float: "numbers", str: "strings"}
    if origin in (tuple, list):
        return f"a JSON list of {plural.get(args[0], 'values')}"
    if origin is dict:
        terms = f" with some of the keys {', '.join(object_keys)}" if object_keys else ""
        return f"a JSON object of {plural.get(args[1], 'values')}{terms}"
    return str(expected)

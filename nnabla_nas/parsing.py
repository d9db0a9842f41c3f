"""The one value parser: JSON values into annotated types and typed dataclasses, strictly.

Every section of the experiment file, and every tool's input, goes through
:func:`parse_dataclass` (a JSON object into a dataclass) and :func:`parse_value` (a value into
an annotated type): an unknown or misspelled key, a wrong type or an impossible value raises a
:class:`~nnabla_nas.errors.ConfigError` naming the key's path (``optimizer.train.solver.lr``)
and what was expected. :func:`to_dict` is the inverse (the JSON form written back to
``config.json``).

This module sits below every component, so that a component may define the dataclass of its
own options (a search space's ``Config``, an estimator's ``Options``, a solver's arguments)
without importing the experiment file's layer (:mod:`nnabla_nas.config`).

Conventions understood by :func:`parse_dataclass`:

- ``field(metadata={"parse": f})``: ``f(value, key_path)`` parses that field instead of
  :func:`parse_value` (a section whose class depends on a ``name``);
- ``field(metadata={"key": "lambda"})``: the JSON key of a field whose name cannot be it (a
  Python keyword);
- ``ARGUMENTS_OF`` (a class attribute, e.g. ``"solver Momentum"``): an unknown key is then
  reported as ``unknown argument 'x' of solver Momentum; ... valid arguments: ...``;
- a ConfigError raised by the constructor (``__post_init__``) or by a ``check()`` method with a
  relative ``key`` is re-raised with the full path;
- :class:`GivenFields`: a dataclass that remembers which fields were given, written back alone.

Numbers are finite: ``NaN`` and ``Infinity`` are refused as values of a ``float`` field, and
:func:`load_json` (the one reader of JSON text) refuses them as literals, refuses duplicate keys
(JSON would silently keep the last) and nesting deeper than :data:`MAX_JSON_DEPTH`.
:func:`check_range` is the range check of a number (the valid interval in the message).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import re
import types
import typing
from typing import Any, Union

from .errors import ConfigError

__all__ = [
    "MAX_JSON_DEPTH",
    "GivenFields",
    "check_range",
    "describe",
    "json_key",
    "load_json",
    "parse_dataclass",
    "parse_value",
    "to_dict",
    "unknown_key",
]

_TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
_PLURALS = {int: "integers", float: "numbers", bool: "booleans", str: "strings"}


def describe(tp: Any) -> str:
    """What a value of the annotated type ``tp`` looks like, for messages (``a number``)."""
    origin = typing.get_origin(tp)
    if tp in _TYPE_NAMES:
        return _TYPE_NAMES[tp]
    if origin in (list, tuple):
        args = typing.get_args(tp)
        if not args:
            return "a list"
        return f"a list of {_PLURALS.get(args[0]) or describe(args[0])}"
    if origin is dict:
        return "an object"
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return " or ".join(describe(a) for a in args) + " or null"
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if dataclasses.is_dataclass(tp):
        return "an object"
    return getattr(tp, "__name__", str(tp))


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def parse_value(tp: Any, value: Any, path: str) -> Any:
    """Converts a JSON value to the annotated type ``tp``, or raises ConfigError at ``path``.

    Integers are accepted for numbers (and integral numbers for integers); ``true``/``false``
    are never numbers.
    """
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return parse_value(arg, value, path)
            except ConfigError:
                pass
        raise ConfigError(f"expected {describe(tp)}, got {value!r}", key=path)
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"expected {describe(tp)}, got {value!r}", key=path)
        return value
    if dataclasses.is_dataclass(tp):
        return parse_dataclass(tp, value, path)
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, list):
            raise ConfigError(f"expected {describe(tp)}, got {value!r}", key=path)
        args = typing.get_args(tp)
        item = args[0] if args else Any
        return [parse_value(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"expected an object, got {value!r}", key=path)
        args = typing.get_args(tp)
        vt = args[1] if args else Any
        return {k: parse_value(vt, v, _join(path, k)) for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"expected true or false, got {value!r}", key=path)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"expected an integer, got {value!r}", key=path)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"expected a number, got {value!r}", key=path)
        try:
            number = float(value)
        except OverflowError:  # an integer beyond any float
            number = math.inf
        if not math.isfinite(number):
            raise ConfigError(f"expected a finite number, got {value!r}", key=path)
        return number
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"expected a string, got {value!r}", key=path)
        return value
    raise TypeError(f"unsupported config type {tp!r} at {path}")


def json_key(f: dataclasses.Field) -> str:
    """The JSON key of a dataclass field (its name, or ``metadata["key"]``)."""
    return f.metadata.get("key", f.name)


def unknown_key(cls: type, key: str, path: str, valid: list[str]) -> ConfigError:
    """The error for a key that ``cls`` does not have (with the closest valid one)."""
    close = difflib.get_close_matches(str(key), valid, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    what = getattr(cls, "ARGUMENTS_OF", None)
    if what:
        listed = ", ".join(valid) or "(none)"
        message = f"unknown argument {key!r} of {what}; {hint}valid arguments: {listed}"
    else:
        message = f"unknown key {key!r} in {cls.__name__}; {hint}valid keys: {', '.join(valid)}"
    return ConfigError(message, key=_join(path, key))


def _rekeyed(err: ConfigError, path: str) -> ConfigError:
    """``err`` with its relative key prefixed by ``path`` (unchanged when already full)."""
    if path and err.key is not None and not err.key.startswith(path + "."):
        return type(err)(err.message, key=_join(path, err.key))
    return err


def parse_dataclass(cls: type, data: Any, path: str = "") -> Any:
    """Builds dataclass ``cls`` from the JSON object ``data`` strictly.

    Unknown keys, missing required keys and wrong types raise ConfigError naming the key's path.
    The constructor (``__post_init__``) and then the instance's ``check()`` method (if any)
    validate values; a ConfigError raised by either with a relative ``key="field"`` is re-raised
    with the full path.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"expected an object, got {data!r}", key=path or None)
    hints = typing.get_type_hints(cls)
    fields = {json_key(f): f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in fields:
            raise unknown_key(cls, key, path, list(fields))
    kwargs = {}
    for name, f in fields.items():
        key = _join(path, name)
        if name in data:
            parse = f.metadata.get("parse")
            value = data[name]
            kwargs[f.name] = parse(value, key) if parse else parse_value(hints[f.name], value, key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing required key ({describe(hints[f.name])})", key)
    try:
        obj = cls(**kwargs)
        check = getattr(obj, "check", None)
        if callable(check):
            check()
    except ConfigError as err:
        raise _rekeyed(err, path) from None
    return obj


def to_dict(obj: Any) -> Any:
    """The JSON form of a parsed config (the inverse of :func:`parse_dataclass`)."""
    if hasattr(obj, "to_dict") and dataclasses.is_dataclass(obj):
        return obj.to_dict()
    if dataclasses.is_dataclass(obj):
        return {json_key(f): to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


class GivenFields:
    """Mixin of a config dataclass that remembers which fields its constructor was given.

    :attr:`given` holds their names; :meth:`to_dict` writes those alone, so that a section is
    written back as the user wrote it (the others keep their defaults on a rerun). Used where
    a default must not be pinned in ``config.json``: a solver's ``wd`` next to ``weight_decay``
    would be refused as given twice.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        obj = super().__new__(cls)
        names = [f.name for f in dataclasses.fields(cls) if f.init]
        obj.__dict__["_given"] = frozenset(names[: len(args)]) | frozenset(kwargs)
        return obj

    @property
    def given(self) -> frozenset[str]:
        """The names of the fields given to the constructor."""
        return self.__dict__.get("_given", frozenset())

    def to_dict(self) -> dict[str, Any]:
        """The given fields, in field order, under their JSON keys."""
        return {
            json_key(f): to_dict(getattr(self, f.name))
            for f in dataclasses.fields(self)  # type: ignore[arg-type]
            if f.name in self.given
        }


# ---------------------------------------------------------------------------------------------
# Ranges and JSON text
# ---------------------------------------------------------------------------------------------


def check_range(
    value: float,
    key: str | None,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """Refuses a number that is not finite or lies outside ``[low, high]`` (``low_open``,
    ``high_open``: the bound itself excluded; None: no bound on that side).

    Raises:
        ConfigError: at ``key``, giving the interval (``must be in [0, 1), got 1.5``).
    """
    number = float(value)
    below = low is not None and (number <= low if low_open else number < low)
    above = high is not None and (number >= high if high_open else number > high)
    if math.isfinite(number) and not below and not above:
        return
    if low is not None and high is not None:
        interval = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    elif low is not None:
        interval = f"{'>' if low_open else '>='} {low:g}"
    elif high is not None:
        interval = f"{'<' if high_open else '<='} {high:g}"
    else:
        interval = "a finite number"
    raise ConfigError(f"must be {interval}, got {value!r}", key=key)


#: The deepest nesting of arrays and objects :func:`load_json` reads (an experiment file nests
#: five levels; Python's own reader would fail with a RecursionError near a thousand).
MAX_JSON_DEPTH = 64

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')


def json_depth(text: str) -> int:
    """The deepest nesting of ``[``/``{`` in the JSON text (brackets inside strings ignored)."""
    if text.count("[") + text.count("{") <= 1:
        return int("[" in text or "{" in text)
    depth = deepest = 0
    for char in re.sub(r"[^\[\]{}]", "", _STRINGS.sub('""', text)):
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def load_json(text: str, source: str, key: str | None = None) -> Any:
    """Reads JSON text strictly: the one reader of the experiment file and ``--set`` values.

    Beyond :func:`json.loads`: a key given twice in one object, the literals ``NaN``,
    ``Infinity`` and ``-Infinity`` (and numbers such as ``1e400`` that overflow to them), and
    nesting deeper than :data:`MAX_JSON_DEPTH` are refused.

    Args:
        text: the JSON text.
        source: what the text is (a file's path, ``--set epoch=3``), for messages.
        key: the key of the errors (``-f``, ``--set``).

    Raises:
        json.JSONDecodeError: the text is not JSON (the caller knows whether that is an error).
        ConfigError: at ``key``, a duplicate key, a non-finite literal or too deep a nesting.
    """
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise ConfigError(
            f"{source} nests arrays/objects {depth} levels deep; at most {MAX_JSON_DEPTH} are "
            "read (an experiment file needs about five)",
            key=key,
        )

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in items:
            if name in out:
                raise ConfigError(
                    f"{source} gives the key {name!r} twice in one object (JSON would keep the "
                    "last silently): remove one",
                    key=key,
                )
            out[name] = value
        return out

    def constant(name: str) -> Any:
        raise ConfigError(
            f"{source} holds {name}, which is not a number (JSON has no NaN or Infinity): "
            "give a finite value",
            key=key,
        )

    def number(literal: str) -> float:
        value = float(literal)
        if not math.isfinite(value):
            raise ConfigError(f"{source} holds {literal}, beyond the range of a number", key=key)
        return value

    return json.loads(text, object_pairs_hook=pairs, parse_constant=constant, parse_float=number)

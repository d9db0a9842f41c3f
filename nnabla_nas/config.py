"""The experiment file, parsed once and strictly into typed dataclasses.

The seed's flat JSON format (see ``docs/experiment.rst``) is accepted verbatim. Parsing happens
at the boundary (the CLI): an unknown or misspelled key, a wrong type or an impossible value is a
:class:`~nnabla_nas.errors.ConfigError` naming the key's path (``optimizer.train.solver.lr``) and
what was expected, before any work starts. Components receive typed objects, never raw dicts.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Union

from .errors import ConfigError

__all__ = [
    "ExperimentConfig",
    "NetworkConfig",
    "OptimizerConfig",
    "RegularizerConfig",
    "parse_dataclass",
    "to_dict",
]

_TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp in _TYPE_NAMES:
        return _TYPE_NAMES[tp]
    if origin in (list, tuple):
        args = typing.get_args(tp)
        return f"a list of {_describe(args[0])}" if args else "a list"
    if origin is dict:
        return "an object"
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return " or ".join(_describe(a) for a in args) + " or null"
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if dataclasses.is_dataclass(tp):
        return "an object"
    return getattr(tp, "__name__", str(tp))


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def parse_value(tp: Any, value: Any, path: str) -> Any:
    """Converts a JSON value to the annotated type ``tp``, or raises ConfigError at ``path``."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return parse_value(arg, value, path)
            except ConfigError as err:
                errors.append(err)
        raise ConfigError(f"expected {_describe(tp)}, got {value!r}", key=path)
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"expected {_describe(tp)}, got {value!r}", key=path)
        return value
    if dataclasses.is_dataclass(tp):
        return parse_dataclass(tp, value, path)
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, list):
            raise ConfigError(f"expected {_describe(tp)}, got {value!r}", key=path)
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
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"expected a string, got {value!r}", key=path)
        return value
    raise TypeError(f"unsupported config type {tp!r} at {path}")


def _unknown_key(cls: type, key: str, path: str, valid: list[str]) -> ConfigError:
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return ConfigError(
        f"unknown key {key!r} in {cls.__name__}; {hint}valid keys: {', '.join(valid)}",
        key=_join(path, key),
    )


def parse_dataclass(cls: type, data: Any, path: str = "") -> Any:
    """Builds dataclass ``cls`` from ``data`` strictly.

    Unknown keys, missing required keys and wrong types raise ConfigError naming the key's path.
    After construction, the instance's ``check()`` method (if any) validates values; a
    ConfigError it raises with ``key="field"`` is re-raised with the full path.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"expected an object, got {data!r}", key=path or None)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in fields:
            raise _unknown_key(cls, key, path, list(fields))
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            parse = f.metadata.get("parse")
            key = _join(path, name)
            kwargs[name] = (
                parse(data[name], key) if parse else parse_value(hints[name], data[name], key)
            )
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing required key ({_describe(hints[name])})", _join(path, name))
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if callable(check):
        try:
            check()
        except ConfigError as err:
            if path and err.key is not None and not err.key.startswith(path + "."):
                raise type(err)(err.message, key=_join(path, err.key)) from None
            raise
    return obj


def to_dict(obj: Any) -> Any:
    """The JSON form of a parsed config (the inverse of :func:`parse_dataclass`)."""
    if hasattr(obj, "to_dict") and dataclasses.is_dataclass(obj):
        return obj.to_dict()
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


# ---------------------------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------------------------


@dataclass
class OptimizerConfig:
    """One optimizer section (``train``, ``valid`` or ``warmup``)."""

    solver: dict[str, Any]
    grad_clip: float | None = None
    weight_decay: float | None = None
    lr_scheduler: dict[str, Any] | None = None

    def check(self) -> None:
        from .optimizer import check_optimizer_section

        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ConfigError(f"must be > 0 (or omitted), got {self.grad_clip}", key="grad_clip")
        if self.weight_decay is not None and self.weight_decay < 0:
            raise ConfigError(f"must be >= 0, got {self.weight_decay}", key="weight_decay")
        check_optimizer_section(self.solver, self.lr_scheduler, self.weight_decay)


#: Gradient-mode hardware losses (seed 001) and the keys of their ``grad_reg_loss_params``.
REGULARIZER_LOSSES = {"add#linear": ("lambda",), "mul#log": ("alpha", "beta")}


@dataclass
class RegularizerConfig:
    """A hardware constraint, e.g. ``{"name": "LatencyEstimator", "weight": 0.1, "bound": 2.0}``.

    Values are in the estimator's unit (ms, MACs, bytes). See ``docs/estimators.rst``.

    Attributes:
        name: the estimator (``LatencyEstimator``, ``MemoryEstimator``, ``FlopsEstimator``, ...).
        bound: the budget: REINFORCE's reward factor is ``min(1, bound / value) ** weight``; also
            the default ``ref_latency``.
        weight: REINFORCE's exponent, and the default ``lambda`` of ``add#linear``; 0 with the
            default loss: the value is only reported.
        grad_reg_loss_type: gradient-mode loss: ``add#linear`` (``CE + lambda * (E - ref) /
            ref``) or ``mul#log`` (``alpha * CE * (ln E / ln ref) ** beta``).
        grad_reg_loss_params: ``{"lambda": ...}`` (add#linear, default ``weight``) or
            ``{"alpha": ..., "beta": ...}`` (mul#log, defaults 0.2 and 0.3 as ProxylessNAS).
        ref_latency: the reference value ``ref`` of the gradient loss (default ``bound``).
        lookup_table: the latency lookup table file (LatencyEstimator; default: in memory, with
            the tables shipped for this machine).
        batch_size: the batch the value is estimated for.
        options: the estimator's own keys (e.g. LatencyEstimator ``warmup``, ``repeat``).
    """

    name: str
    bound: float
    weight: float = 0.0
    grad_reg_loss_type: str = "add#linear"
    grad_reg_loss_params: dict[str, float] = field(default_factory=dict)
    ref_latency: float | None = None
    lookup_table: str | None = None
    batch_size: int = 1
    options: Any = field(default_factory=dict)

    def check(self) -> None:
        from .estimator import ESTIMATORS

        self.name = ESTIMATORS.canonical(self.name, key="name")
        cls = ESTIMATORS.get(self.name)
        if not self.bound > 0:
            raise ConfigError(f"must be > 0 (the budget, in {cls.unit}), got {self.bound}", "bound")
        if self.weight < 0:
            raise ConfigError(f"must be >= 0, got {self.weight}", key="weight")
        loss = self.grad_reg_loss_type
        if loss not in REGULARIZER_LOSSES:
            raise ConfigError(
                f"unknown loss {loss!r}; valid: {', '.join(REGULARIZER_LOSSES)}",
                key="grad_reg_loss_type",
            )
        for k in self.grad_reg_loss_params:
            if k not in REGULARIZER_LOSSES[loss]:
                raise ConfigError(
                    f"not a parameter of {loss}; valid: {', '.join(REGULARIZER_LOSSES[loss])}",
                    key=f"grad_reg_loss_params.{k}",
                )
        if self.ref_latency is not None and not self.ref_latency > 0:
            raise ConfigError(f"must be > 0, got {self.ref_latency}", key="ref_latency")
        ref = self.ref_latency if self.ref_latency is not None else self.bound
        if loss == "mul#log" and not ref > 1:
            raise ConfigError(
                f"mul#log divides by ln(ref), so ref must be > 1, got {ref} (use a smaller unit)",
                key="ref_latency" if self.ref_latency is not None else "bound",
            )
        if self.batch_size < 1:
            raise ConfigError(f"must be >= 1, got {self.batch_size}", key="batch_size")
        if self.lookup_table is not None and not cls.accepts_lookup_table:
            raise ConfigError(f"{self.name} does not use a lookup table", key="lookup_table")
        if not dataclasses.is_dataclass(self.options):
            self.options = parse_dataclass(cls.Options, self.options, "options")


@dataclass
class NetworkConfig:
    """The ``network`` section: ``search_space`` plus that space's own keys."""

    search_space: str
    space: Any  # the space's own Config dataclass

    def to_dict(self) -> dict[str, Any]:
        return {"search_space": self.search_space, **to_dict(self.space)}


def parse_network(data: Any, path: str = "network") -> NetworkConfig:
    """Parses the network section with the registered space's own Config dataclass (a
    ``preset`` is expanded first: :func:`nnabla_nas.contrib.presets.expand_preset`)."""
    from .contrib import SPACES

    if not isinstance(data, dict):
        raise ConfigError(f"expected an object, got {data!r}", key=path)
    if "search_space" not in data:
        raise ConfigError(
            f"missing required key; valid search spaces: {', '.join(SPACES.names())}",
            key=f"{path}.search_space",
        )
    from .contrib.presets import expand_preset

    name = SPACES.canonical(data["search_space"], key=f"{path}.search_space")
    config_cls = SPACES.get(name).Config
    rest = expand_preset(config_cls, {k: v for k, v in data.items() if k != "search_space"}, path)
    space_cfg = parse_dataclass(config_cls, rest, path)
    return NetworkConfig(search_space=name, space=space_cfg)


_OPTIMIZER_SECTIONS = ("train", "valid", "warmup")


@dataclass
class ExperimentConfig:
    """The whole experiment file (seed format), with the additions documented in the docs."""

    network: NetworkConfig = field(metadata={"parse": parse_network})
    dataset: str = "cifar10"
    data_dir: str | None = None
    epoch: int = 1
    input_shape: list[int] = field(default_factory=lambda: [3, 32, 32])
    batch_size_train: int = 64
    batch_size_valid: int = 64
    mini_batch_train: int | None = None
    mini_batch_valid: int | None = None
    warmup: int = 0
    cutout: int = 0
    print_frequency: int = 25
    checkpoint_every: int = 0  # a checkpoint every N iterations too (0: after each epoch only)
    train_portion: float = 0.9
    valid_portion: float = 0.1
    aux_weight: float = 0.0
    seed: int = 0
    optimizer: dict[str, OptimizerConfig] = field(default_factory=dict)
    regularizer: dict[str, RegularizerConfig] = field(default_factory=dict)
    searcher: dict[str, Any] = field(default_factory=dict)
    # Keys the seed says may be given in the file instead of on the command line.
    algorithm: str | None = None
    context: str | None = None
    device_id: int | None = None
    type_config: str | None = None
    search: bool | None = None

    def check(self) -> None:
        from .data import DATASETS
        from .optimizer import check_accumulation

        DATASETS.canonical(self.dataset, key="dataset")
        self.dataset = DATASETS.canonical(self.dataset)
        if len(self.input_shape) != 3 or min(self.input_shape) <= 0:
            raise ConfigError(
                f"expected [channels, height, width] of positive integers, got {self.input_shape}",
                key="input_shape",
            )
        space = self.network.space
        if hasattr(space, "in_channels"):
            if space.in_channels is None:
                space.in_channels = self.input_shape[0]
            elif space.in_channels != self.input_shape[0]:
                raise ConfigError(
                    f"{space.in_channels} differs from the {self.input_shape[0]} channels of "
                    "input_shape",
                    key="network.in_channels",
                )
        for name in ("epoch", "warmup", "cutout"):
            if getattr(self, name) < 0:
                raise ConfigError(f"must be >= 0, got {getattr(self, name)}", key=name)
        if self.epoch + self.warmup <= 0:
            raise ConfigError("epoch + warmup must be at least 1", key="epoch")
        if self.print_frequency <= 0:
            raise ConfigError(f"must be >= 1, got {self.print_frequency}", key="print_frequency")
        if self.checkpoint_every < 0:
            raise ConfigError(
                f"must be >= 0 (0: a checkpoint after each epoch only), got "
                f"{self.checkpoint_every}",
                key="checkpoint_every",
            )
        for part in ("train", "valid"):
            batch = getattr(self, f"batch_size_{part}")
            if batch <= 0:
                raise ConfigError(f"must be >= 1, got {batch}", key=f"batch_size_{part}")
            if getattr(self, f"mini_batch_{part}") is None:
                setattr(self, f"mini_batch_{part}", batch)
            check_accumulation(batch, getattr(self, f"mini_batch_{part}"), f"mini_batch_{part}")
        for name in ("train_portion", "valid_portion"):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise ConfigError(
                    f"must be strictly between 0 and 1 (a fraction of the training set), "
                    f"got {value}",
                    key=name,
                )
        for key in self.optimizer:
            if key not in _OPTIMIZER_SECTIONS:
                raise _unknown_key(OptimizerConfig, key, "optimizer", list(_OPTIMIZER_SECTIONS))
        if self.type_config not in (None, "float", "half"):
            raise ConfigError(
                f"expected 'float' or 'half', got {self.type_config!r}", "type_config"
            )
        if self.context not in (None, "cpu", "cudnn"):
            raise ConfigError(f"expected 'cpu' or 'cudnn', got {self.context!r}", "context")

    @classmethod
    def from_dict(cls, data: Any) -> ExperimentConfig:
        """Parses the experiment file's JSON object strictly."""
        if not isinstance(data, dict):
            raise ConfigError(f"the experiment file must hold a JSON object, got {data!r}")
        return parse_dataclass(cls, data)

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None and f.name in ("algorithm", "context", "device_id", "type_config"):
                continue
            if f.name == "search" and value is None:
                continue
            out[f.name] = to_dict(value)
        return out

"""The experiment file, parsed once and strictly into typed dataclasses.

The seed's flat JSON format (see ``docs/experiment.rst``) is accepted verbatim. Parsing happens
at the boundary (the CLI): an unknown or misspelled key, a wrong type or an impossible value is a
:class:`~nnabla_nas.errors.ConfigError` naming the key's path (``optimizer.train.solver.lr``) and
what was expected, before any work starts. Components receive typed objects, never raw dicts.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .errors import ConfigError
from .optimizer import (
    OptimizerConfig,
    SchedulerConfig,
    SolverConfig,
    check_accumulation,
    parse_optimizers,
    parse_scheduler,
    parse_solver,
)
from .parsing import GivenFields, check_range, parse_dataclass, parse_value, to_dict

__all__ = [
    "AddLinearParams",
    "ExperimentConfig",
    "MulLogParams",
    "NetworkConfig",
    "OptimizerConfig",
    "RegularizerConfig",
    "SchedulerConfig",
    "SolverConfig",
    "TrialsConfig",
    "parse_dataclass",
    "parse_optimizers",
    "parse_scheduler",
    "parse_solver",
    "parse_value",
    "to_dict",
]

# The optimizer sections are defined next to the optimizer (nnabla_nas.optimizer.section) and
# exposed here with the rest of the experiment file.

#: The largest seed: numpy's generators (``RandomState``) take 32-bit seeds.
MAX_SEED = 2**32 - 1


def physical_memory() -> int:
    """The machine's memory in bytes (the bound of the sizes of an experiment)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # not POSIX: no bound worth computing
        return 1 << 50


def _gigabytes(num_bytes: float) -> str:
    return f"{num_bytes / 1e9:.3g} GB"


# ---------------------------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------------------------


@dataclass
class _LossParams(GivenFields):
    """The ``grad_reg_loss_params`` of one gradient-mode hardware loss."""


@dataclass
class AddLinearParams(_LossParams):
    """``grad_reg_loss_params`` of ``add#linear`` (``CE + lambda * (E - ref) / ref``).

    Attributes:
        lam: ``lambda`` (JSON key); None: the regularizer's ``weight``.
    """

    ARGUMENTS_OF: ClassVar[str] = "the add#linear loss"
    lam: float | None = field(default=None, metadata={"key": "lambda"})


@dataclass
class MulLogParams(_LossParams):
    """``grad_reg_loss_params`` of ``mul#log`` (``alpha * CE * (ln E / ln ref) ** beta``),
    defaults as ProxylessNAS."""

    ARGUMENTS_OF: ClassVar[str] = "the mul#log loss"
    alpha: float = 0.2
    beta: float = 0.3


#: Gradient-mode hardware losses (seed 001) and the dataclass of their ``grad_reg_loss_params``.
REGULARIZER_LOSSES: dict[str, type[_LossParams]] = {
    "add#linear": AddLinearParams,
    "mul#log": MulLogParams,
}


def _object(value: Any, key: str) -> Any:
    if not isinstance(value, dict):
        raise ConfigError(f"expected an object, got {value!r}", key=key)
    return value


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
        grad_reg_loss_params: the loss's parameters, :class:`AddLinearParams` (``{"lambda":
            ...}``, default ``weight``) or :class:`MulLogParams` (``{"alpha": ..., "beta":
            ...}``, defaults 0.2 and 0.3 as ProxylessNAS); parsed by :meth:`check` once the
            loss is known.
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
    grad_reg_loss_params: AddLinearParams | MulLogParams = field(
        default_factory=dict, metadata={"parse": _object}
    )
    ref_latency: float | None = None
    lookup_table: str | None = None
    batch_size: int = 1
    options: Any = field(default_factory=dict)

    def check(self) -> None:
        from .estimator import ESTIMATORS

        self.name = ESTIMATORS.canonical(self.name, key="name")
        cls = ESTIMATORS.get(self.name)
        if not (math.isfinite(self.bound) and self.bound > 0):
            raise ConfigError(f"must be > 0 (the budget, in {cls.unit}), got {self.bound}", "bound")
        check_range(self.weight, "weight", low=0)
        loss = self.grad_reg_loss_type
        if loss not in REGULARIZER_LOSSES:
            raise ConfigError(
                f"unknown loss {loss!r}; valid: {', '.join(REGULARIZER_LOSSES)}",
                key="grad_reg_loss_type",
            )
        params, params_cls = self.grad_reg_loss_params, REGULARIZER_LOSSES[loss]
        if isinstance(params, Mapping):
            self.grad_reg_loss_params = parse_dataclass(
                params_cls, dict(params), "grad_reg_loss_params"
            )
        elif not isinstance(params, params_cls):
            raise ConfigError(
                f"expected the parameters of {loss} ({params_cls.__name__}), got {params!r}",
                key="grad_reg_loss_params",
            )
        if self.ref_latency is not None:
            check_range(self.ref_latency, "ref_latency", low=0, low_open=True)
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
        if self.lookup_table is not None:
            from .utils.io import check_writable_folder

            # The estimator adds its new measurements to the table: refused now, not after the
            # first epoch.
            check_writable_folder(self.lookup_table, "lookup_table", "the latency lookup table")
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


def _trial_evaluator(value: Any, key: str) -> Any:
    from .trials.evaluator import parse_evaluator_section

    return parse_evaluator_section(value, key)


@dataclass
class TrialsConfig:
    """The ``trials`` section of a multi-trial search (``-a EvolutionSearcher``, ``RandomTrials``,
    ``TpeTrials``; the strategy's own options are the ``searcher`` section). See
    ``docs/trials.rst``.

    Attributes:
        budget: the number of trials (a resume may raise it).
        evaluator: ``{"name": "train", "trial_epochs": 2}`` or ``{"name": "table", "table":
            "nas-bench-macro"}``: how a trial is scored, with the evaluator's own keys.
        window: trials proposed ahead of the results (null: the number of workers at the start;
            the proposals depend on it, not on the workers).
        retries: submissions again of a trial whose worker died, before it is ``killed``.
        hard: labels of ``regularizer`` sections whose ``bound`` is a hard constraint (a trial
            above it is infeasible); the others scale the score by ``min(1, bound/value) **
            weight``.
        cost: the figure plotted against the score in ``pareto.png`` (null: latency, macs,
            flops or params, the first the trials have).
    """

    budget: int
    evaluator: Any = field(metadata={"parse": _trial_evaluator})
    window: int | None = None
    retries: int = 2
    hard: list[str] = field(default_factory=list)
    cost: str | None = None

    def check(self) -> None:
        for key, value, low in (("budget", self.budget, 1), ("retries", self.retries, 0),
                                ("window", self.window, 1)):  # fmt: skip
            if value is not None and value < low:
                raise ConfigError(f"must be >= {low}, got {value}", key)

    @staticmethod
    def parse(value: Any, key: str) -> TrialsConfig | None:
        """The section (null: none), its errors naming their full key."""
        return None if value is None else parse_dataclass(TrialsConfig, value, key)


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
    # Search-time evaluation (runner/options.py::LoopOptions; docs/experiment.rst).
    eval_every: int = 1
    eval_examples: int | None = None
    test_at_end: bool = False
    seed: int = 0
    optimizer: dict[str, OptimizerConfig] = field(
        default_factory=dict, metadata={"parse": parse_optimizers}
    )
    regularizer: dict[str, RegularizerConfig] = field(default_factory=dict)
    searcher: dict[str, Any] = field(default_factory=dict)
    trials: TrialsConfig | None = field(default=None, metadata={"parse": TrialsConfig.parse})
    # Keys the seed says may be given in the file instead of on the command line.
    algorithm: str | None = None
    context: str | None = None
    device_id: int | None = None
    type_config: str | None = None
    search: bool | None = None

    def check(self) -> None:
        from .data import DATASETS

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
        if not 0 <= self.seed <= MAX_SEED:
            raise ConfigError(
                f"must be in [0, {MAX_SEED}] (numpy's generators take 32-bit seeds), got "
                f"{self.seed}",
                key="seed",
            )
        check_range(self.aux_weight, "aux_weight", low=0)
        if self.device_id is not None and self.device_id < 0:
            raise ConfigError(f"must be >= 0, got {self.device_id}", key="device_id")
        if self.print_frequency <= 0:
            raise ConfigError(f"must be >= 1, got {self.print_frequency}", key="print_frequency")
        if self.eval_every <= 0:
            raise ConfigError(f"must be >= 1, got {self.eval_every}", key="eval_every")
        if self.eval_examples is not None and self.eval_examples <= 0:
            raise ConfigError(
                f"must be >= 1 (or null: every example), got {self.eval_examples}",
                key="eval_examples",
            )
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
        self._check_sizes(physical_memory())
        for name in ("train_portion", "valid_portion"):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise ConfigError(
                    f"must be strictly between 0 and 1 (a fraction of the training set), "
                    f"got {value}",
                    key=name,
                )
        if self.type_config not in (None, "float", "half"):
            raise ConfigError(
                f"expected 'float' or 'half', got {self.type_config!r}", "type_config"
            )
        if self.context not in (None, "cpu", "cudnn"):
            raise ConfigError(f"expected 'cpu' or 'cudnn', got {self.context!r}", "context")

    def _check_sizes(self, memory: int) -> None:
        """Refuses sizes that cannot fit in ``memory`` bytes, before anything is allocated: a
        batch of float32 inputs, and the float32 outputs of one mini-batch."""
        c, h, w = self.input_shape
        for part in ("train", "valid"):
            batch = getattr(self, f"batch_size_{part}")
            need = 4 * batch * c * h * w
            if need > memory:
                raise ConfigError(
                    f"a batch of {batch} inputs of shape {self.input_shape} takes "
                    f"{_gigabytes(need)} as float32, more than this machine's memory "
                    f"({_gigabytes(memory)}): lower it",
                    key=f"batch_size_{part}",
                )
        mini = max(self.mini_batch_train or 1, self.mini_batch_valid or 1)
        for name in ("num_classes", "n_classes"):
            classes = getattr(self.network.space, name, None)
            if isinstance(classes, int) and 4 * mini * classes > memory:
                raise ConfigError(
                    f"{classes} classes make outputs of {_gigabytes(4 * mini * classes)} per "
                    f"mini-batch of {mini}, more than this machine's memory "
                    f"({_gigabytes(memory)}): lower it",
                    key=f"network.{name}",
                )

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
            skip = ("algorithm", "context", "device_id", "type_config", "trials")
            if value is None and f.name in skip:
                continue
            if f.name == "search" and value is None:
                continue
            out[f.name] = to_dict(value)
        return out

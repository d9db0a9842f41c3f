"""What ``-a`` names: an :class:`Algorithm` (the :class:`~nnabla_nas.runner.trainer.Trainer` or a
searcher) is built with the model, the data and the loop's options, and :meth:`Algorithm.run`
runs the loop (:class:`~nnabla_nas.runner.loop.Loop`) with it. The loop owns epochs,
accumulation, clipping, evaluation, logging, checkpoints and faults; the algorithm owns its steps
and its state, through the protocol below (the defaults are the Trainer's)::

    from nnabla_nas import ProxylessNasSearcher, LoopOptions
    searcher = ProxylessNasSearcher(model, data, "log/mine", loop=LoopOptions(epochs=10))
    results = searcher.run()          # the CLI's outputs in log/mine

The protocol (called by the loop, in this order):

- :meth:`Algorithm.setup` -- once, with the :class:`RunContext` (model, data, ready-made
  optimizers, the pass services, the regularizers); returns the architecture parameters the
  ``valid`` optimizer trains (``{}``: none).
- :meth:`Algorithm.parameters` -- the algorithm's own parameters (logits, a controller),
  checkpointed beside the model's.
- :meth:`Algorithm.train_step` -- one weight update; :meth:`Algorithm.arch_step` -- one
  architecture update after it (searchers, once warm-up is over).
- :meth:`Algorithm.evaluating` -- the network that is evaluated.
- :meth:`Algorithm.export` -- the found architecture (by label), and its probabilities and
  logits where the algorithm has them.
- :meth:`Algorithm.state_dict` / :meth:`Algorithm.load_state_dict` -- the rest of its state
  (RNGs, baselines) for exact resume.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterator, Mapping

import nnabla as nn
import numpy as np

from ..distributed import Communicator, SingleProcess
from .checkpoint import rng_state, set_rng_state
from .options import DataBundle, LoopOptions, NoOptions
from .steps import Batch, Steps

if TYPE_CHECKING:  # pragma: no cover
    from ..optimizer import Optimizer
    from .searcher.export import ArchExport

__all__ = ["Algorithm", "RunContext"]

#: The optimizer sections a run may have.
OPTIMIZER_SECTIONS = ("train", "warmup", "valid")


def _optimizer_configs(sections: Mapping[str, Any]) -> dict[str, Any]:
    """``{name: OptimizerConfig}`` from configs or dicts (parsed strictly)."""
    from ..config import OptimizerConfig, parse_dataclass
    from ..errors import ConfigError

    out = {}
    for name, section in sections.items():
        if name not in OPTIMIZER_SECTIONS:
            raise ConfigError(
                f"unknown optimizer section; valid: {', '.join(OPTIMIZER_SECTIONS)}",
                key=f"optimizer.{name}",
            )
        if not isinstance(section, OptimizerConfig):
            section = parse_dataclass(OptimizerConfig, section, f"optimizer.{name}")
        out[name] = section
    return out


@dataclass
class RunContext:
    """What the loop hands an algorithm at :meth:`Algorithm.setup`.

    Attributes:
        model: the network.
        data: the loaders.
        optimizers: ``train`` and ``warmup`` (the weights); ``valid`` (the parameters
            :meth:`Algorithm.setup` returned) is added right after set-up.
        steps: forward/backward passes (:meth:`~nnabla_nas.runner.steps.Steps.accumulate`,
            :meth:`~nnabla_nas.runner.steps.Steps.whole_batch`).
        comm: the data-parallel processes.
        regularizers: the hardware constraints, label -> Regularizer.
        options: the loop's options.
        input_shape: one example's shape.
        phase_iteration: ``phase_iteration(phase)`` -> the iteration the optimizer of ``phase``
            schedules its learning rate at.
    """

    model: Any
    data: DataBundle
    optimizers: dict[str, Optimizer]
    steps: Steps
    comm: Communicator
    regularizers: dict[str, Any]
    options: LoopOptions
    input_shape: tuple[int, ...]
    phase_iteration: Callable[[str], int]


class Algorithm:
    """Base of the Trainer and the searchers (see the module docstring).

    Args:
        model: the network (a registered space, or your own
            :class:`~nnabla_nas.contrib.model.Model`).
        data: the loaders (:func:`nnabla_nas.data.make_loaders`).
        output: the output folder (created if missing; the CLI's outputs are written there).
        options: the algorithm's own options: its :attr:`Config` dataclass, or a dict of its keys
            (the experiment file's ``searcher`` section), parsed strictly.
        loop: the loop's options (epochs, warm-up, mini-batches, ...).
        optimizers: ``{"train"|"warmup"|"valid": OptimizerConfig or dict}``: the experiment
            file's ``optimizer`` sections; missing ones get the defaults
            (``docs/optimizer.rst``).
        regularizers: hardware constraints, label -> Regularizer
            (:func:`nnabla_nas.estimator.regularizer.build_regularizer`).
        seed: the experiment's seed (the CLI's ``--seed``): the algorithm's random draws and
            nnabla's generator at every step use ``seed + 1`` (the data splits and the weight
            initialisation use ``seed`` itself).
        comm: the data-parallel processes (default: one process).
    """

    #: The algorithm's options (the ``searcher`` section of the experiment file).
    Config: ClassVar[type] = NoOptions
    #: Searchers split the training data and update an architecture.
    search: ClassVar[bool] = False

    def __init__(
        self,
        model: Any,
        data: DataBundle,
        output: str | os.PathLike,
        options: Any = None,
        loop: LoopOptions | None = None,
        optimizers: Mapping[str, Any] | None = None,
        regularizers: Mapping[str, Any] | None = None,
        seed: int = 0,
        comm: Communicator | None = None,
    ) -> None:
        from ..config import parse_dataclass

        if options is None or isinstance(options, Mapping):
            options = parse_dataclass(self.Config, dict(options or {}), "searcher")
        elif not isinstance(options, self.Config):
            raise TypeError(f"{type(self).__name__} options must be a {self.Config.__name__}")
        self.model = model
        self.data = data
        self.output = Path(output)
        self.options = options
        self.loop_options = loop if loop is not None else LoopOptions()
        self.loop_options.check()
        self.optimizer_configs = _optimizer_configs(optimizers or {})
        self.regularizers = dict(regularizers or {})
        self.seed = int(seed) + 1
        self.comm = comm if comm is not None else SingleProcess()
        #: The algorithm's random draws (checkpointed).
        self.rng = np.random.RandomState(self.seed)
        self.ctx: RunContext | None = None
        self._loop: Any = None

    # ------------------------------------------------------------------ running
    def loop(self) -> Any:
        """The loop of this algorithm (built once)."""
        if self._loop is None:
            from .loop import Loop

            self._loop = Loop(self)
        return self._loop

    def run(self) -> dict[str, Any]:
        """Runs warm-up and the epochs from the current position (the start, or the checkpoint
        :meth:`resume` loaded); returns the results (also in ``results.json``)."""
        return self.loop().run()

    def resume(self) -> bool:
        """Loads the last checkpoint of the output folder; :meth:`run` then continues from it.
        Returns False when there is none yet (the run starts from the beginning)."""
        return self.loop().resume()

    def config_dict(self) -> dict[str, Any]:
        """The run's configuration as the experiment file would hold it (``config.json`` of a
        run started from Python; the CLI writes the file it parsed)."""
        from ..config import to_dict

        lo = self.loop_options
        out: dict[str, Any] = dict(self.data.config)
        space = getattr(self.model, "cfg", None)
        network = {"search_space": getattr(self.model, "space_name", type(self.model).__name__)}
        if dataclasses.is_dataclass(space):
            network.update(to_dict(space))
        out.update(
            network=network, epoch=lo.epochs, warmup=lo.warmup, print_frequency=lo.print_frequency,
            checkpoint_every=lo.checkpoint_every, aux_weight=lo.aux_weight,
            eval_every=lo.eval_every, eval_examples=lo.eval_examples, test_at_end=lo.test_at_end,
            optimizer={k: to_dict(v) for k, v in self.optimizer_configs.items()},
            searcher=to_dict(self.options), algorithm=type(self).__name__, seed=self.seed - 1,
        )  # fmt: skip
        for key in ("mini_batch_train", "mini_batch_valid"):
            if getattr(lo, key) is not None:
                out[key] = getattr(lo, key)
        if lo.input_shape is not None:
            out["input_shape"] = list(lo.input_shape)
        return out

    # ------------------------------------------------------------------ the protocol
    def setup(self, ctx: RunContext) -> OrderedDict[str, nn.Variable]:
        """Called once before the first step; returns the parameters of the ``valid``
        optimizer (none for the Trainer)."""
        self.ctx = ctx
        return OrderedDict()

    def parameters(self) -> OrderedDict[str, nn.Variable]:
        """The algorithm's own parameters, checkpointed beside the model's (keys distinct from
        the model's parameter paths)."""
        return OrderedDict()

    def train_step(self, batch: Batch, phase: str) -> dict[str, float]:
        """One weight update on ``batch`` with the optimizer of ``phase`` (train or warmup):
        the Trainer trains every weight of the (static, cached) network."""
        ctx = self.ctx
        opt = ctx.optimizers[phase]
        opt.zero_grad()
        metrics = ctx.steps.accumulate(batch, cache=True, key="train")
        opt.update(ctx.phase_iteration(phase))
        return metrics

    def arch_step(self, batch: Batch, weight_batch: Batch) -> dict[str, float]:
        """One architecture update on a batch of the architecture split (``weight_batch``: the
        batch of this iteration's weight step)."""
        raise NotImplementedError(f"{type(self).__name__} does not update an architecture")

    @contextlib.contextmanager
    def evaluating(self) -> Iterator[None]:
        """The network that is evaluated is built inside this context."""
        yield

    def export(self) -> ArchExport:
        """The found architecture (a fixed network: none)."""
        from .searcher.export import ArchExport

        return ArchExport(OrderedDict())

    def state_dict(self) -> dict[str, Any]:
        """The algorithm's state apart from its parameters (JSON values and numpy arrays)."""
        return {"rng": rng_state(self.rng)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores a :meth:`state_dict`."""
        set_rng_state(self.rng, state["rng"])

    def results(self, export: ArchExport) -> dict[str, Any]:
        """Algorithm-specific entries of ``results.json``."""
        return {}

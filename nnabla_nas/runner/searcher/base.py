"""What every searcher shares: evaluation of the argmax architecture and the per-epoch exports.

A searcher is a :class:`~nnabla_nas.runner.runner.Runner` with ``search = True``: the shared loop
alternates its weight step (:meth:`~nnabla_nas.runner.runner.Runner.train_step`) and its
architecture step (:meth:`~nnabla_nas.runner.runner.Runner.arch_step`). :class:`Searcher` adds

- :meth:`Searcher.eval_mode`: the model is evaluated as its current argmax architecture (the
  ``max`` rule on every choice for the duration, the previous rules restored after);
- :meth:`Searcher.on_epoch_end`: ``arch.h5`` (the genotype, written atomically every epoch), the
  space's own files (:meth:`~nnabla_nas.contrib.model.Model.export_files`, e.g. DARTS'
  ``arch.json``),
  ``arch.png`` (the argmax architecture drawn with graphviz; skipped with a warning when the
  ``dot`` binary is missing), TensorBoard (the drawing, every candidate's probability as
  ``arch/<label>/<candidate>``, every choice's entropy as ``arch_entropy/<label>`` and their mean
  as ``arch_entropy/mean``; see :func:`tag` for the characters replaced) and an architecture
  table in the log;
- :meth:`Searcher.results`: the chosen architecture and its probabilities for ``results.json``;
- :meth:`Searcher.use_rule`: installs a forward rule on every choice for the duration of a
  ``with`` block (how a searcher decides which paths run).
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import shutil
from collections import OrderedDict
from typing import Any, Callable, Iterator, Mapping

import nnabla as nn
import numpy as np

from ...genotype import save_genotype
from ...module import MixedOp, max_rule
from ...visualize import architecture_image, draw_architecture
from ..runner import Runner

__all__ = ["Searcher", "entropy", "tag"]

logger = logging.getLogger(__name__)

#: ``rule(mixed_op, *inputs) -> nn.Variable`` (see :class:`~nnabla_nas.module.MixedOp`).
Rule = Callable[..., Any]


def tag(name: str) -> str:
    """``name`` as a TensorBoard tag: characters other than letters, digits, ``_ - . /`` become
    ``_`` (as tensorboardX would, with a log line each time), e.g. ``MB6 3x3`` -> ``MB6_3x3``."""
    return re.sub(r"[^-/\w.]", "_", name)


def entropy(probs: np.ndarray) -> float:
    """The Shannon entropy ``-sum p log p`` (nats) of a probability vector (``0 log 0 = 0``)."""
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


class Searcher(Runner):
    """Base of the searchers: argmax evaluation, exports and results (see the module docstring).

    Subclasses implement :meth:`train_step` and :meth:`arch_step`.
    """

    search = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._previous_argmax: dict[str, str] | None = None
        self._warned_no_dot = False

    # ------------------------------------------------------------------ choices and rules
    @property
    def choices(self) -> OrderedDict[str, MixedOp]:
        """The model's choices, ``label -> MixedOp`` (computed once: the tree does not change)."""
        cached = self.__dict__.get("_choices")
        if cached is None:
            cached = self.__dict__["_choices"] = self.model.choices()
        return cached

    @contextlib.contextmanager
    def use_rule(self, rule: Rule) -> Iterator[None]:
        """Installs ``rule`` on every choice for the duration; the previous rules come back after.

        The rule decides the forward at graph-building time, so every graph the searcher builds
        inside the block (e.g. through :meth:`accumulate`) runs the paths ``rule`` picks.
        """
        previous = [(op, op.rule) for op in self.choices.values()]
        for op, _ in previous:
            op.rule = rule
        try:
            yield
        finally:
            for op, old in previous:
                op.rule = old

    @contextlib.contextmanager
    def frozen(self, params: Mapping[str, nn.Variable]) -> Iterator[None]:
        """No gradient for ``params`` inside the block: their part of the backward is skipped
        (e.g. the weights during an architecture step); ``need_grad`` comes back after."""
        frozen = [p for p in params.values() if p.need_grad]
        for p in frozen:
            p.need_grad = False
        try:
            yield
        finally:
            for p in frozen:
                p.need_grad = True

    @contextlib.contextmanager
    def eval_mode(self) -> Iterator[None]:
        """The current argmax architecture: :func:`~nnabla_nas.module.max_rule` on every choice."""
        with self.use_rule(max_rule):
            yield

    # ------------------------------------------------------------------ exports
    def probabilities(self) -> OrderedDict[str, OrderedDict[str, float]]:
        """``label -> {candidate: probability}`` of every choice (softmax of its logits)."""
        out: OrderedDict[str, OrderedDict[str, float]] = OrderedDict()
        for label, op in self.choices.items():
            out[label] = OrderedDict((n, float(p)) for n, p in zip(op.names, op.probabilities()))
        return out

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        """Writes ``arch.h5`` and ``arch.png``, the architecture scalars/image and the log table."""
        step = epoch + 1
        extra = {"epoch": step, "algorithm": type(self).__name__, "metrics": dict(metrics)}
        extra["hardware"] = dict(self.hardware)  # the argmax architecture's latency, FLOPs, ...
        if self.comm.is_main:  # the other data-parallel ranks hold the same architecture
            save_genotype(self.output / "arch.h5", self.model, extra=extra)
            self.model.export_files(self.output)  # the space's own files (e.g. DARTS' arch.json)
            self._export_drawing(step)
        self._log_probabilities(step)
        logger.info("architecture after epoch %d:\n%s", step, self.arch_table())
        self._previous_argmax = dict(self.model.genotype())

    def _export_drawing(self, step: int) -> None:
        if shutil.which("dot") is None:
            if not self._warned_no_dot:
                logger.warning(
                    "graphviz's 'dot' binary is missing: arch.png is not drawn (install it with "
                    "'apt-get install graphviz')"
                )
                self._warned_no_dot = True
            return
        path = draw_architecture(self.model, self.output / "arch.png", self.cfg.input_shape)
        self.writer.add_image("architecture", architecture_image(path), step, dataformats="HWC")

    def _log_probabilities(self, step: int) -> None:
        entropies = []
        for label, probs in self.probabilities().items():
            for name, p in probs.items():
                self.writer.add_scalar(tag(f"arch/{label}/{name}"), p, step)
            h = entropy(np.fromiter(probs.values(), dtype=np.float64))
            entropies.append(h)
            self.writer.add_scalar(tag(f"arch_entropy/{label}"), h, step)
        if entropies:
            self.writer.add_scalar("arch_entropy/mean", float(np.mean(entropies)), step)

    def arch_table(self) -> str:
        """The architecture as a text table: choice, argmax candidate, its probability, entropy.

        ``entropy/max`` is the entropy over its maximum ``log n`` (1: uniform, 0: decided); a ``*``
        in ``changed`` marks the choices whose argmax changed since the previous epoch.
        """
        if not self.choices:
            return f"{type(self.model).__name__}: no architecture choices"
        previous = self._previous_argmax or {}
        rows = []
        for label, probs in self.probabilities().items():
            names = list(probs)
            values = np.fromiter(probs.values(), dtype=np.float64)
            best = names[int(np.argmax(values))]
            changed = label in previous and previous[label] != best
            h = entropy(values)
            norm = h / math.log(len(values)) if len(values) > 1 else 0.0
            rows.append((label, best, f"{values.max():.3f}", f"{norm:.3f}", "*" if changed else ""))
        head = ("choice", "argmax", "prob", "entropy/max", "changed")
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [head, *rows]]
        lines.insert(1, "  ".join("-" * w for w in widths).rstrip())
        return "\n".join(lines)

    def state_dict(self) -> dict[str, Any]:
        """The runner's state plus the argmax of the previous epoch (the log's ``changed``)."""
        return {**super().state_dict(), "previous_argmax": self._previous_argmax}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._previous_argmax = state["previous_argmax"]

    def results(self) -> dict[str, Any]:
        """``{"architecture": {label: candidate}, "arch_probabilities": {label: {cand: p}}}``."""
        return {
            "architecture": dict(self.model.genotype()),
            "arch_probabilities": {k: dict(v) for k, v in self.probabilities().items()},
        }

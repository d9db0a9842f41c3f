"""The searcher protocol and the piece every softmax searcher shares.

A searcher is an :class:`~nnabla_nas.runner.algorithm.Algorithm` with ``search = True``: the
loop calls its weight step and, after warm-up, its architecture step every iteration, evaluates
the network of :meth:`~nnabla_nas.runner.algorithm.Algorithm.evaluating`, and writes the
architecture of :meth:`~nnabla_nas.runner.algorithm.Algorithm.export` every epoch
(:mod:`.export`). Writing one is one file under ``runner/searcher/`` and one line in
:data:`nnabla_nas.runner.ALGORITHMS`:

- :class:`Searcher` adds the tools a searcher uses on the model: :meth:`Searcher.use_rule`
  (install a forward rule on every choice for a block: how a searcher decides which paths run)
  and :meth:`Searcher.frozen` (no gradient for some parameters in a block);
- :class:`SoftmaxSearcher` is the base of searchers with one distribution ``softmax(logits)``
  per decision (DARTS, ProxylessNAS): it owns the logits (:class:`~.logits.ArchLogits`), trains
  them with the ``valid`` optimizer, checkpoints them, evaluates and exports their argmax.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from typing import Any, Callable, ClassVar, Iterator, Mapping

import nnabla as nn

from ...module import MixedOp, use_architecture
from ..algorithm import Algorithm, RunContext
from .export import ArchExport
from .logits import ArchLogits, Initializer

__all__ = ["Rule", "Searcher", "SoftmaxSearcher"]

#: ``rule(mixed_op, *inputs) -> nn.Variable`` (see :class:`~nnabla_nas.module.MixedOp`).
Rule = Callable[..., Any]


class Searcher(Algorithm):
    """Base of the searchers (see the module docstring)."""

    search: ClassVar[bool] = True

    def mixed_ops(self) -> list[MixedOp]:
        """Every MixedOp of the model (shared decisions included), in module order."""
        return [m for _, m in self.model.get_modules() if isinstance(m, MixedOp)]

    @contextlib.contextmanager
    def use_rule(self, rule: Rule) -> Iterator[None]:
        """Installs ``rule`` on every choice for the duration; the previous rules come back after.

        The rule decides the forward at graph-building time, so every graph the searcher builds
        inside the block (e.g. through ``ctx.steps.accumulate``) runs the paths ``rule`` picks.
        """
        previous = [(op, op.rule) for op in self.mixed_ops()]
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


class SoftmaxSearcher(Searcher):
    """A searcher with one ``softmax(logits)`` distribution per decision (DARTS, ProxylessNAS).

    :attr:`logits` (an :class:`~.logits.ArchLogits`) is built at set-up; the ``valid`` optimizer
    trains them; the evaluated network is their argmax (:meth:`evaluating`); :meth:`export`
    gives the argmax, the probabilities and the logits.
    """

    def init_logits(self) -> Initializer | None:
        """The initial logits of a decision (None: zeros); see :class:`~.logits.ArchLogits`."""
        return None

    def setup(self, ctx: RunContext) -> OrderedDict[str, nn.Variable]:
        super().setup(ctx)
        self.logits = ArchLogits(self.model, self.init_logits())
        return self.logits.parameters()

    def parameters(self) -> OrderedDict[str, nn.Variable]:
        return self.logits.parameters()

    @contextlib.contextmanager
    def evaluating(self) -> Iterator[None]:
        """The current argmax architecture."""
        with use_architecture(self.model, self.logits.argmax()):
            yield

    def export(self) -> ArchExport:
        """The argmax architecture, the probabilities and the logits."""
        return ArchExport(self.logits.argmax(), self.logits.probabilities(), self.logits.arrays())

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

from ...module import use_architecture, use_rule
from ..algorithm import Algorithm, RunContext
from .export import ArchExport
from .logits import ArchLogits, Initializer

__all__ = ["Rule", "Searcher", "SoftmaxSearcher"]

#: ``rule(mixed_op, *inputs) -> nn.Variable`` (see :class:`~nnabla_nas.module.MixedOp`).
Rule = Callable[..., Any]


class Searcher(Algorithm):
    """Base of the searchers (see the module docstring)."""

    search: ClassVar[bool] = True

    def use_rule(self, rule: Rule) -> Any:
        """Installs ``rule`` on every choice for the duration of a ``with`` block; the previous
        rules come back after (:func:`~nnabla_nas.module.use_rule`). Every graph the searcher
        builds inside the block (e.g. through ``ctx.steps.accumulate``) runs the paths ``rule``
        picks."""
        return use_rule(self.model, rule)

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

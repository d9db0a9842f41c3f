"""Forward and backward passes of one batch, and evaluation: the services a step uses.

:meth:`Steps.accumulate` runs the mini-batches of one batch (gradients averaged over the whole
batch), :meth:`Steps.whole_batch` gathers the batch of every data-parallel process, and
:meth:`Steps.evaluate` measures the model over a loader in inference mode.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Callable, ContextManager

import nnabla as nn
import numpy as np

from ..distributed import Communicator
from .options import Loader
from .profile import NO_CLOCK, NoClock

__all__ = ["Batch", "GraphBuilder", "Steps"]

Batch = list  # a list of mini-batches [(x, y), ...] forming one update
GraphBuilder = Callable[[nn.Variable], Any]


class Steps:
    """Graphs and passes over the model.

    Args:
        model: the network (a :class:`~nnabla_nas.contrib.model.Model`: ``loss`` and ``error``).
        comm: the data-parallel processes.
        aux_weight: weight of an auxiliary head's loss.
        non_finite: ``non_finite(what, done) -> Exception``: the error raised when a loss is
            NaN or Inf (``done``: found after the step, during evaluation).
    """

    def __init__(
        self,
        model: Any,
        comm: Communicator,
        aux_weight: float,
        non_finite: Callable[[str, bool], Exception],
    ) -> None:
        self.model = model
        self.comm = comm
        self.aux_weight = float(aux_weight)
        self._non_finite = non_finite
        self._graphs: dict[Any, tuple] = {}
        #: Times graph construction, forwards and backwards (a profiler installs a
        #: :class:`~nnabla_nas.runner.profile.PhaseClock`).
        self.clock: NoClock = NO_CLOCK

    @staticmethod
    def split(x: np.ndarray, y: np.ndarray, mini: int) -> Batch:
        """Splits one batch into mini-batches of ``mini`` examples."""
        return [(x[i : i + mini], y[i : i + mini]) for i in range(0, len(x), mini)]

    def graph(self, key: Any, shape: tuple, build: GraphBuilder, cache: bool) -> tuple:
        """The graph ``(x, y, outputs, loss, error)`` for inputs of ``shape``.

        ``build(x)`` returns the model's outputs. With ``cache`` the graph is kept under ``key``
        and reused (static networks); otherwise it is built anew (sampled paths).
        """
        full_key = (key, shape)
        if cache and full_key in self._graphs:
            return self._graphs[full_key]
        with self.clock("graph"):
            x = nn.Variable(shape)
            y = nn.Variable((shape[0], 1))
            outputs = build(x)
            loss = self.model.loss(outputs, y, aux_weight=self.aux_weight)
            logits = outputs[0] if isinstance(outputs, tuple) else outputs
            error = self.model.error(logits, y)
        loss.persistent = True
        error.persistent = True
        g = (x, y, outputs, loss, error)
        if cache:
            self._graphs[full_key] = g
        return g

    def accumulate(
        self,
        batch: Batch,
        build: GraphBuilder | None = None,
        cache: bool = False,
        key: Any = "train",
        backward: bool = True,
    ) -> dict[str, float]:
        """Forward (and backward) over every mini-batch of ``batch``.

        Gradients accumulate in the parameters' ``.g`` and are averaged over the whole batch
        (each mini-batch's mean loss is back-propagated with weight ``len(mini) / len(batch)``),
        so an update on ``batch_size`` examples in ``k`` passes equals one pass on all of them.
        The caller zeroes the gradients before and updates after.

        Returns:
            the batch's mean ``loss`` and ``error``.
        """
        build = build or self.model
        total = sum(len(x) for x, _ in batch)
        loss_sum = err_sum = 0.0
        for x, y in batch:
            gx, gy, _, loss, error = self.graph(key, x.shape, build, cache)
            gx.d, gy.d = x, y
            with self.clock("forward"):
                nn.forward_all([loss, error], clear_no_need_grad=backward)
            if backward:
                with self.clock("backward"):
                    loss.backward(len(x) / total, clear_buffer=True)
            loss_sum += float(loss.d) * len(x)
            err_sum += float(error.d) * len(x)
        loss_v = loss_sum / total
        if not math.isfinite(loss_v):
            raise self._non_finite(f"the {key} loss became {loss_v}", False)
        return {"loss": loss_v, "error": err_sum / total}

    def whole_batch(self, batch: Batch, mini: int) -> Batch:
        """The batch of all the data-parallel processes, on every one of them.

        Each process holds every ``size``-th example of a batch (see
        :class:`~nnabla_nas.data.DataLoader`'s shards): the shards are gathered and interleaved
        back into the order of one process, then split into mini-batches of ``mini``. For an
        algorithm that splits its work otherwise than by examples (REINFORCE's samples). With
        one process, ``batch`` itself.
        """
        size = self.comm.size
        if size == 1:
            return batch
        shards = self.comm.all_gather(batch)
        xs = [np.concatenate([x for x, _ in shard]) for shard in shards]
        ys = [np.concatenate([y for _, y in shard]) for shard in shards]
        x = np.empty((sum(map(len, xs)), *xs[0].shape[1:]), xs[0].dtype)
        y = np.empty((len(x), *ys[0].shape[1:]), ys[0].dtype)
        for rank in range(size):  # equal shards: rank r holds positions r, r + size, ...
            x[rank::size], y[rank::size] = xs[rank], ys[rank]
        return self.split(x, y, mini)

    def evaluate(
        self,
        loader: Loader,
        key: str,
        mini: int | None,
        network: Callable[[], ContextManager[Any]] | None = None,
        limit: int | None = None,
    ) -> dict[str, float]:
        """Mean loss and error of the model over ``loader`` in inference mode; with several
        processes, over all their shards.

        Args:
            loader: the evaluation loader.
            key: names the loss in error messages.
            mini: examples per forward pass (None: whole batches).
            network: a context in which the evaluated network is built (the searcher's
                evaluation rule); None: the model as it is.
            limit: evaluate only the first ``limit`` examples of the loader's order (over all
                processes: rank ``r`` of ``size`` holds the positions ``r, r + size, ...``, so
                it takes ``limit // size`` of its shard, one more when ``r < limit % size``);
                None: every example.
        """
        quota = math.inf
        if limit is not None:
            size, rank = self.comm.size, self.comm.rank
            quota = limit // size + (1 if rank < limit % size else 0)
        training = self.model.training
        self.model.apply(training=False)
        try:
            with network() if network is not None else contextlib.nullcontext():
                loss_sum = err_sum = 0.0
                count = 0
                built: dict = {}
                for x, y in loader if quota > 0 else ():
                    if count + len(x) > quota:  # the subset ends inside this batch
                        x, y = x[: int(quota - count)], y[: int(quota - count)]
                    for xm, ym in self.split(x, y, mini or len(x)):
                        g = built.get(xm.shape)
                        if g is None:
                            g = built[xm.shape] = self.graph(key, xm.shape, self.model, False)
                        gx, gy, _, loss, error = g
                        gx.d, gy.d = xm, ym
                        nn.forward_all([loss, error], clear_buffer=True)
                        loss_sum += float(loss.d) * len(xm)
                        err_sum += float(error.d) * len(xm)
                        count += len(xm)
                    if count >= quota:  # (no further batch loaded)
                        break
        finally:
            self.model.apply(training=training)
        if self.comm.size > 1:  # each rank evaluated its shard
            loss_sum, err_sum, count = self.comm.all_reduce(
                np.array([loss_sum, err_sum, count]), "sum"
            )
        loss_v = loss_sum / max(count, 1)
        if not math.isfinite(loss_v):
            raise self._non_finite(f"the {key} loss (evaluation) became {loss_v}", True)
        return {"loss": loss_v, "error": err_sum / max(count, 1)}

"""The communicators: one process, MPI on CPUs (mpi4py), NCCL on GPUs (nnabla's)."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, Iterable, Mapping, NoReturn, Sequence

import nnabla as nn
import numpy as np

from ..utils.stdio import wait_until_read

logger = logging.getLogger(__name__)

#: Reduction operations of :meth:`Communicator.all_reduce`.
REDUCE_OPS = ("mean", "sum", "max", "min")

#: Environment variables through which MPI launchers give the number of processes:
#: Open MPI, MPICH/Hydra and Intel MPI (also Slurm's PMI2), MVAPICH2.
SIZE_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE")
#: Variables that only say "launched by an MPI launcher" (PMIx gives the rank, not the size).
RANK_VARIABLES = ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "MV2_COMM_WORLD_RANK")


class Communicator:
    """What the loop needs from a group of data-parallel processes.

    The methods here are those of one process (each collective is the identity): the backends
    override them.

    Attributes:
        rank: this process's index, ``0 <= rank < size``.
        size: the number of processes.
        local_rank: the index among the processes of this machine (the GPU to use).
        comm_time: seconds spent in collective operations so far (for benchmarks).
        comm_calls: collective operations done so far.
    """

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    def __init__(self) -> None:
        self.comm_time = 0.0
        self.comm_calls = 0

    @property
    def is_main(self) -> bool:
        """True on rank 0, the process that writes files and logs."""
        return self.rank == 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rank={self.rank}, size={self.size})"

    # ------------------------------------------------------------------ collectives
    def all_reduce_grads(self, params: Iterable[nn.Variable]) -> None:
        """Averages the gradients of ``params`` over the processes, in place, in one message.

        A gradient still lazily zero (``p.grad.zeroing``: the parameter was not in this step's
        graph) is left untouched when it is zero on every process, so nnabla's solvers keep
        skipping it (no momentum or weight-decay step on the paths that did not run).
        """

    def all_reduce(self, value: Any, op: str = "mean") -> Any:
        """Reduces a number or an array over the processes; returns the result (same type:
        a float for a number, a float64 array for an array)."""
        _check_op(op)
        if np.ndim(value) == 0:
            return float(value)
        return np.array(value, dtype=np.float64)

    def all_reduce_dict(self, values: Mapping[str, float], op: str = "mean") -> dict[str, float]:
        """Reduces a dict of numbers (same keys on every process) in one message."""
        keys = sorted(values)
        if self.size == 1 or not keys:
            return {k: float(values[k]) for k in values}
        out = self.all_reduce(np.array([values[k] for k in keys], dtype=np.float64), op)
        reduced = dict(zip(keys, (float(v) for v in out)))
        return {k: reduced[k] for k in values}  # the caller's order

    def all_gather(self, obj: Any) -> list[Any]:
        """Every process's ``obj`` (any picklable object), in rank order, on every process."""
        return [obj]

    def broadcast(self, obj: Any, root: int = 0) -> Any:
        """``root``'s ``obj`` (any picklable object) on every process."""
        return obj

    def broadcast_parameters(self, params: Iterable[nn.Variable], root: int = 0) -> None:
        """Copies ``root``'s values of ``params`` (all of them, trainable or not) to every
        process, in one message."""

    def average_parameters(self, params: Iterable[nn.Variable]) -> None:
        """Replaces the values of ``params`` by their mean over the processes (batch-norm
        running statistics, which each process updates from its own shard)."""

    def barrier(self) -> None:
        """Waits until every process reaches it."""

    def agree(self, timeout: float) -> bool:
        """A barrier that gives up after ``timeout`` seconds; True when every process reached
        it (used on failures: when all ranks failed alike they can exit cleanly)."""
        return True

    def abort(self, code: int) -> NoReturn:
        """Ends every process with exit code ``code`` (a failure on one rank would otherwise
        leave the others waiting in a collective forever)."""
        sys.exit(code)


def _check_op(op: str) -> None:
    if op not in REDUCE_OPS:
        raise ValueError(f"unknown reduction {op!r}; valid: {', '.join(REDUCE_OPS)}")


class SingleProcess(Communicator):
    """One process: every collective is the identity and costs nothing."""


def _flatten(arrays: Sequence[np.ndarray]) -> np.ndarray:
    if not arrays:
        return np.zeros(0, np.float32)
    return np.concatenate([np.asarray(a, dtype=np.float32).reshape(-1) for a in arrays])


def _unflatten(buffer: np.ndarray, variables: Sequence[nn.Variable]) -> Iterable[tuple]:
    offset = 0
    for v in variables:
        yield v, buffer[offset : offset + v.size].reshape(v.shape)
        offset += v.size


class _FusedGrads:
    """The gradients of a fixed list of parameters as one flat float32 buffer, and back.

    Each direction is one forward of a small nnabla graph over variables that share the
    parameters' gradient arrays (a numpy copy per parameter costs ~20 microseconds each, several
    milliseconds per update for a real network). Reading a lazily zero gradient through the
    graph keeps it lazily zero.
    """

    def __init__(self, params: Sequence[nn.Variable]) -> None:
        self.params = list(params)
        self.size = sum(p.size for p in self.params)
        self._grads: list[nn.NdArray] = []
        self._flat: nn.Variable | None = None
        self._source: nn.Variable | None = None
        self._sink: nn.Variable | None = None

    def _build(self) -> None:
        import nnabla.functions as F

        self._grads = [p.grad for p in self.params]
        with nn.auto_forward(False):
            parts, outs = [], []
            self._source = nn.Variable((self.size,))
            offset = 0
            for p, g in zip(self.params, self._grads):
                v = nn.Variable(p.shape)
                v.data = g  # reads the gradient
                parts.append(F.reshape(v, (p.size,), inplace=False))
                piece = F.slice(self._source, start=(offset,), stop=(offset + p.size,))
                out = F.reshape(piece, p.shape, inplace=False)
                out.data = g  # writes the gradient
                outs.append(out)
                offset += p.size
            self._flat = parts[0] if len(parts) == 1 else F.concatenate(*parts, axis=0)
            self._sink = F.sink(*outs)

    def _check(self) -> None:
        # (``p.grad`` is a new Python object at every access: ``==`` compares the arrays)
        if self._flat is None or not all(p.grad == g for p, g in zip(self.params, self._grads)):
            self._build()  # first use, or a gradient array was replaced

    def gather(self) -> np.ndarray:
        """A copy of the gradients, concatenated."""
        self._check()
        self._flat.forward(clear_buffer=False)
        return np.array(self._flat.d, dtype=np.float32, copy=True)

    def scatter(self, buffer: np.ndarray) -> None:
        """Writes ``buffer`` (a :meth:`gather` layout) into the gradients."""
        self._check()
        self._source.d = buffer
        self._sink.forward(clear_buffer=False)


class MpiCommunicator(Communicator):
    """Processes on CPUs (or anything) over MPI through ``mpi4py``.

    Arrays travel as one float32 buffer per call (gradients of all parameters fused), objects
    are pickled.

    Args:
        comm: an ``mpi4py`` communicator (default ``MPI.COMM_WORLD``).
    """

    def __init__(self, comm: Any = None) -> None:
        super().__init__()
        from mpi4py import MPI

        self._MPI = MPI
        self._comm = comm if comm is not None else MPI.COMM_WORLD
        self.rank = int(self._comm.Get_rank())
        self.size = int(self._comm.Get_size())
        local = self._comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
        self.local_rank = int(local.Get_rank())
        local.Free()
        # A separate channel for the failure handshake (agree), so that it can never be
        # matched with a collective another rank is still waiting in.
        self._control = self._comm.Dup()
        self._fused: dict[tuple[int, ...], _FusedGrads] = {}
        self._ops = {"mean": MPI.SUM, "sum": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}

    def _timed(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.comm_time += time.perf_counter() - start
            self.comm_calls += 1

    def _live_mask(self, params: Sequence[nn.Variable]) -> np.ndarray:
        # Which gradients are non-zero on at least one process (the same mask on every process:
        # reduced with MAX).
        mask = np.array([not p.grad.zeroing for p in params], dtype=np.int8)
        if len(mask):
            self._timed(self._comm.Allreduce, self._MPI.IN_PLACE, mask, op=self._MPI.MAX)
        return mask.astype(bool)

    def _live(self, params: Sequence[nn.Variable]) -> list[nn.Variable]:
        return [p for p, live in zip(params, self._live_mask(params)) if live]

    def _fused_grads(self, params: list[nn.Variable]) -> _FusedGrads:
        key = tuple(id(p) for p in params)
        fused = self._fused.get(key)
        if fused is None:
            if len(self._fused) >= 8:  # a few parameter lists per run (one per optimizer)
                self._fused.pop(next(iter(self._fused)))
            fused = self._fused[key] = _FusedGrads(params)
        return fused

    def _sum_buffer(self, buffer: np.ndarray) -> None:
        self._timed(self._comm.Allreduce, self._MPI.IN_PLACE, buffer, op=self._MPI.SUM)

    def all_reduce_grads(self, params: Iterable[nn.Variable]) -> None:
        params = list(params)
        mask = self._live_mask(params)
        if not mask.any():
            return
        # The whole list travels (a fixed layout: one graph per list), the gradients zero on
        # every process (paths that did not run) are made lazily zero again after.
        fused = self._fused_grads(params)
        buffer = fused.gather()
        self._sum_buffer(buffer)
        buffer /= self.size
        fused.scatter(buffer)
        for p, live in zip(params, mask):
            if not live:
                p.grad.zero()

    def all_reduce(self, value: Any, op: str = "mean") -> Any:
        _check_op(op)
        scalar = np.ndim(value) == 0
        buffer = np.array(value, dtype=np.float64).reshape(-1)
        self._timed(self._comm.Allreduce, self._MPI.IN_PLACE, buffer, op=self._ops[op])
        if op == "mean":
            buffer /= self.size
        return float(buffer[0]) if scalar else buffer.reshape(np.shape(value))

    def all_gather(self, obj: Any) -> list[Any]:
        return self._timed(self._comm.allgather, obj)

    def broadcast(self, obj: Any, root: int = 0) -> Any:
        return self._timed(self._comm.bcast, obj, root=root)

    def broadcast_parameters(self, params: Iterable[nn.Variable], root: int = 0) -> None:
        params = list(params)
        if not params:
            return
        buffer = _flatten([p.data.get_data("r") for p in params])
        self._timed(self._comm.Bcast, buffer, root=root)
        if self.rank != root:
            for p, value in _unflatten(buffer, params):
                p.d = value

    def average_parameters(self, params: Iterable[nn.Variable]) -> None:
        params = list(params)
        if not params:
            return
        buffer = _flatten([p.data.get_data("r") for p in params])
        self._sum_buffer(buffer)
        buffer /= self.size
        for p, value in _unflatten(buffer, params):
            p.d = value

    def barrier(self) -> None:
        self._timed(self._comm.Barrier)

    def agree(self, timeout: float) -> bool:
        request = self._control.Ibarrier()
        deadline = time.monotonic() + timeout
        while not request.Test():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def abort(self, code: int) -> NoReturn:
        # the launcher must have READ the last words first, or it may drop them (utils/stdio)
        wait_until_read([sys.stdout, sys.stderr])
        self._comm.Abort(int(code))
        raise SystemExit(code)  # not reached


class NcclCommunicator(MpiCommunicator):
    """GPU processes (``-c cudnn``): arrays through nnabla's NCCL communicator
    (``nnabla.communicators.MultiProcessDataParallelCommunicator``), objects and small numbers
    through MPI.

    Untested here: the development machines have no GPU. The arrays stay on the devices (no
    host copy); each process uses the GPU ``local_rank``.

    Args:
        context: the nnabla ``cudnn`` context (its device id is set to the local rank).
    """

    def __init__(self, context: Any) -> None:
        import nnabla.communicators as C

        # nnabla's communicator first: it initialises MPI itself; mpi4py then finds it running.
        self._nccl = C.MultiProcessDataParallelCommunicator(context)
        self._nccl.init()
        super().__init__()
        self.local_rank = int(self._nccl.local_rank)
        context.device_id = str(self.local_rank)
        self.context = context

    def all_reduce_grads(self, params: Iterable[nn.Variable]) -> None:
        live = self._live(list(params))
        if live:
            self._timed(self._nccl.all_reduce, [p.grad for p in live], division=True, inplace=False)

    def broadcast_parameters(self, params: Iterable[nn.Variable], root: int = 0) -> None:
        params = list(params)
        if params:
            self._timed(self._nccl.bcast, [p.data for p in params], src=root, inplace=False)

    def average_parameters(self, params: Iterable[nn.Variable]) -> None:
        params = list(params)
        if params:
            self._timed(self._nccl.all_reduce, [p.data for p in params], division=True,
                        inplace=False)  # fmt: skip

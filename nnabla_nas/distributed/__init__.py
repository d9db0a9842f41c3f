"""Data-parallel processes: one communicator seam for the shared loop (docs/distributed.rst).

``mpirun -n N python main.py ...`` starts ``N`` processes (ranks). Each builds the same network
from the same seed, works on its own shard of every batch, and the loop keeps them identical
through a :class:`Communicator`:

- the initial parameters (weights, architecture logits, batch-norm statistics) are broadcast
  from rank 0 (:meth:`Communicator.broadcast_parameters`);
- before every optimizer update the gradients are averaged (:meth:`Communicator.all_reduce_grads`,
  one fused buffer per update), so every rank takes the same step;
- step metrics and evaluation sums are reduced (:meth:`Communicator.all_reduce`), REINFORCE's
  rewards gathered (:meth:`Communicator.all_gather`), batch-norm running statistics averaged
  before evaluating and saving (:meth:`Communicator.average_parameters`);
- only rank 0 (:attr:`Communicator.is_main`) writes files and logs.

Backends:

- :class:`SingleProcess`: the default, one process; every operation is free (no copy).
- :class:`MpiCommunicator`: CPU processes over MPI (``mpi4py``; the ``mpi`` extra installs it with
  the MPICH wheel, which ships ``mpirun``).
- :class:`NcclCommunicator`: GPUs (``-c cudnn``) through nnabla's
  ``MultiProcessDataParallelCommunicator`` (NCCL) for the arrays and MPI for the small objects.
  It is imported only when asked for and is **untested here** (the development machines have no
  GPU).

:func:`make_communicator` picks the backend from the launcher's environment.
"""

from __future__ import annotations

from .communicator import (
    REDUCE_OPS,
    Communicator,
    MpiCommunicator,
    NcclCommunicator,
    SingleProcess,
)
from .launch import (
    check_batch_split,
    end_failed_run,
    launched_rank,
    launched_world_size,
    make_communicator,
    process_mini_batch,
    ranks_on_one_machine,
    use_loopback,
)

__all__ = [
    "Communicator",
    "SingleProcess",
    "MpiCommunicator",
    "NcclCommunicator",
    "make_communicator",
    "launched_world_size",
    "launched_rank",
    "end_failed_run",
    "check_batch_split",
    "process_mini_batch",
    "ranks_on_one_machine",
    "use_loopback",
    "REDUCE_OPS",
]

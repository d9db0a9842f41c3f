"""Launch-time helpers: the launcher's world size and rank, the communicator of the run, the
end of a failed run on every process, and the batch split over the processes."""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from typing import Mapping

from ..errors import ConfigError
from .communicator import (
    RANK_VARIABLES,
    SIZE_VARIABLES,
    Communicator,
    MpiCommunicator,
    NcclCommunicator,
    SingleProcess,
)

logger = logging.getLogger(__name__)


#: The communicator this process made (MPI's world belongs to the process: it is set up once).
_WORLD: list[Communicator] = []


def launched_world_size(environ: Mapping[str, str] | None = None) -> int | None:
    """The number of processes an MPI launcher started, from its environment variables.

    Returns:
        The size when a launcher variable gives it; 0 when the process was launched by an MPI
        launcher that does not say the size (PMIx); None when no launcher started it.
    """
    env = os.environ if environ is None else environ
    for name in SIZE_VARIABLES:
        if env.get(name, "").strip().isdigit():
            return int(env[name])
    if any(name in env for name in RANK_VARIABLES):
        return 0
    return None


def launched_rank(environ: Mapping[str, str] | None = None) -> int:
    """This process's rank as the MPI launcher's variables give it (0 when not launched)."""
    env = os.environ if environ is None else environ
    for name in RANK_VARIABLES:
        if env.get(name, "").strip().isdigit():
            return int(env[name])
    return 0


def make_communicator(
    context: str = "cpu",
    type_config: str = "float",
    environ: Mapping[str, str] | None = None,
) -> Communicator:
    """The communicator of this process: MPI (CPU) or NCCL (``cudnn``) when an MPI launcher
    started more than one process, else :class:`SingleProcess`.

    An MPI communicator is made once per process: later calls return the same one.

    Args:
        context: nnabla's extension (``cpu`` or ``cudnn``).
        type_config: ``float`` or ``half`` (``cudnn`` only).
        environ: the environment to read (default ``os.environ``).

    Raises:
        ConfigError: several processes were launched but ``mpi4py`` (or the CUDA extension) is
            missing.
    """
    size = launched_world_size(environ)
    if size is None or size == 1:
        return SingleProcess()
    if _WORLD:
        return _WORLD[0] if _WORLD[0].size > 1 else SingleProcess()
    if importlib.util.find_spec("mpi4py") is None:  # (importing it would initialise MPI)
        raise ConfigError(
            f"launched by mpirun ({size or 'several'} processes) but mpi4py is not installed; "
            "install it with: pip install 'nnabla_nas[mpi]'",
            key="mpirun",
        )
    if context == "cudnn":
        from nnabla.ext_utils import get_extension_context

        try:
            ctx = get_extension_context("cudnn", type_config=type_config)
        except ImportError as err:
            raise ConfigError(
                f"the 'cudnn' extension is not installed ({err}); install nnabla_nas[cuda] or "
                "use -c cpu",
                key="context",
            ) from None
        comm: Communicator = NcclCommunicator(ctx)
    else:
        comm = MpiCommunicator()
    _WORLD.append(comm)
    if comm.size == 1:
        return SingleProcess()
    return comm


def end_failed_run(code: int, collective: bool, message: str | None = None,
                   timeout: float = 10.0) -> int:  # fmt: skip
    """Ends a failed run of exit code ``code``; returns ``code`` unless it aborts.

    One process: returns ``code``. Under ``mpirun`` with several processes a failure of one
    rank would leave the others waiting in a collective forever. A ``collective`` failure (bad
    configuration, interruption: every rank normally fails alike) returns ``code`` when every
    rank reaches this point within ``timeout`` seconds; otherwise, and for any other failure,
    every process is ended with ``MPI_Abort(code)`` (``message``, if given, is printed to
    stderr first: the failure of a rank other than 0 is reported by no one else).
    """
    size = launched_world_size()
    if size is None or size == 1:
        return code
    comm = _WORLD[0] if _WORLD else None
    if comm is None:
        try:
            comm = MpiCommunicator()
        except ImportError:  # no MPI: every rank fails alike at the same place
            return code
        _WORLD.append(comm)
    if comm.size == 1 or (collective and comm.agree(timeout)):
        return code
    if message:
        print(message, file=sys.stderr, flush=True)
    comm.abort(code)


def check_batch_split(batch: int, mini: int, size: int, key: str, mini_key: str) -> int:
    """The examples per process of a batch of ``batch`` over ``size`` processes.

    Each process gets ``batch / size`` examples of every batch, in mini-batches of ``mini``.

    Raises:
        ConfigError: at ``key`` when ``batch`` is not a multiple of ``size * mini``.
    """
    if batch % (size * mini):
        raise ConfigError(
            f"{batch} does not split across the {size} processes into whole mini-batches of "
            f"{mini_key}={mini}: every process takes {key}/{size} examples of each batch, so "
            f"{key} must be a multiple of {size} x {mini} = {size * mini} (or change "
            f"{mini_key}, or the number of processes of mpirun -n)",
            key=key,
        )
    return batch // size

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


#: The environment defaults of MPI processes that all run on this machine: rank-to-rank traffic
#: on the loopback interface (UCX, the transport of the MPICH wheel, otherwise listens on every
#: network device, the host's public address included). A value already set is kept.
LOOPBACK_DEFAULTS = {"UCX_NET_DEVICES": "lo"}


def ranks_on_one_machine(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the launcher started every process on this machine: Hydra's
    ``MPI_LOCALNRANKS`` and Open MPI's ``OMPI_COMM_WORLD_LOCAL_SIZE`` equal the world size;
    MPICH's ``mpiexec.gforker`` (which forks on one machine only) names no host."""
    env = os.environ if environ is None else environ
    size = launched_world_size(env)
    for name in ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE"):
        if env.get(name, "").strip().isdigit():
            return int(env[name]) == size
    return "PMI_FD" in env and "PMI_HOSTNAME" not in env


def use_loopback(environ: dict[str, str] | None = None) -> list[str]:
    """Sets :data:`LOOPBACK_DEFAULTS` in ``environ`` (default ``os.environ``) when every
    process runs on this machine, before MPI starts (importing ``mpi4py``); returns the names
    set."""
    env = os.environ if environ is None else environ
    if not ranks_on_one_machine(env):
        return []
    names = [name for name in LOOPBACK_DEFAULTS if name not in env]
    for name in names:
        env[name] = LOOPBACK_DEFAULTS[name]
    return names


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

    When every process runs on this machine, MPI's rank-to-rank traffic is kept on the
    loopback interface (:func:`use_loopback`); the launcher's own sockets are the launcher's
    (``docs/distributed.rst``: ``mpiexec.gforker`` listens on none).

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
    if environ is None:
        use_loopback()  # (before MPI starts)
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
        use_loopback()
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

    Each process gets ``batch / size`` examples of every batch, in mini-batches of
    :func:`process_mini_batch` examples (``mini``, or fewer when ``mini`` does not divide a
    process's share: only the memory of a forward pass differs, the gradient is the same).

    Raises:
        ConfigError: at ``key`` when ``batch`` is not a multiple of ``size``.
    """
    if batch % size:
        below = batch - batch % size
        multiples = f"{below} or {below + size}" if below else f"{size}"
        raise ConfigError(
            f"{batch} does not split across the {size} processes: every process takes "
            f"{key}/{size} examples of each batch, so {key} must be a multiple of {size} "
            f"(e.g. {multiples}, with {mini_key} dividing it), or change the number of "
            "processes of mpirun -n",
            key=key,
        )
    return batch // size


def process_mini_batch(batch: int, mini: int, size: int) -> int:
    """The mini-batch of each of ``size`` processes sharing batches of ``batch`` examples in
    mini-batches of ``mini``: the largest divisor of a process's share ``batch / size`` that is
    at most ``mini`` (``mini`` itself when it divides the share).

    The share is bounded by the machine's memory (the experiment file's sizes are), so the
    search over its divisors (up to its square root) is short.
    """
    share = batch // size
    if mini >= share:
        return share
    if share % mini == 0:
        return mini
    best, d = 1, 1
    while d * d <= share:
        if share % d == 0:
            for divisor in (d, share // d):
                if best < divisor <= mini:
                    best = divisor
        d += 1
    return best

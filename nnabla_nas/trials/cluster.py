"""The Dask cluster trials run on: a local one on 127.0.0.1, or an existing one by address.

Local (default)
    A ``distributed.LocalCluster`` whose scheduler, nannies, workers and dashboards all listen
    on 127.0.0.1 only (random ports), with one single-threaded worker PROCESS per core
    (nnabla's CPU kernels are single-threaded, so processes, not threads, use the cores). Its
    scheduler marks a task failed as soon as the worker running it dies (``allowed-failures``
    0): the driver counts the attempts and retries itself.

Existing cluster (``scheduler="tcp://HOST:PORT"``)
    Started by the user with ``dask scheduler`` and ``dask worker`` on the machines (see
    ``docs/trials.rst``); its own configuration applies (a dead worker's task is retried by the
    scheduler ``allowed-failures`` times before the driver sees it).
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any, Iterator

from ..errors import ConfigError

__all__ = ["LOCAL_CONFIG", "dask_client", "local_cluster", "worker_count"]

logger = logging.getLogger(__name__)

#: The Dask settings of the local cluster (see the module docstring).
LOCAL_CONFIG = {"distributed.scheduler.allowed-failures": 0}


def _dask() -> Any:
    try:
        import distributed
    except ImportError:
        raise ConfigError(
            "multi-trial search runs on Dask, which is not installed; install it with "
            "`pip install 'nnabla_nas[trials]'` (or `pip install 'dask[distributed]'`)",
            "algorithm",
        ) from None
    return distributed


def local_cluster(workers: int | None = None) -> Any:
    """A ``LocalCluster`` on 127.0.0.1 with ``workers`` single-threaded worker processes
    (default: one per core). The caller closes it.

    Raises:
        ConfigError: ``workers`` is below 1.
    """
    distributed = _dask()
    import dask

    n = (os.cpu_count() or 1) if workers is None else workers
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"must be an integer >= 1, got {workers!r}", "--workers")
    with dask.config.set(LOCAL_CONFIG):
        cluster = distributed.LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            scheduler_port=0,
            dashboard_address="127.0.0.1:0",
            worker_dashboard_address="127.0.0.1:0",
        )
    logger.info("local Dask cluster %s: %d worker processes, 1 thread each",
                cluster.scheduler_address, n)  # fmt: skip
    return cluster


@contextlib.contextmanager
def dask_client(
    workers: int | None = None, scheduler: str | None = None, timeout: float = 10.0
) -> Iterator[Any]:
    """A connected ``distributed.Client``; closes it (and a local cluster) on exit.

    Args:
        workers: worker processes of the local cluster (default: one per core); ignored with
            ``scheduler``.
        scheduler: the address of an existing cluster's scheduler (``tcp://HOST:PORT``); None
            starts a local cluster.
        timeout: seconds to wait for the scheduler.

    Raises:
        ConfigError: the scheduler cannot be reached (naming ``--scheduler``; nothing is
            started), or ``workers`` is below 1.
    """
    distributed = _dask()
    cluster = None
    if scheduler is not None:
        if not isinstance(scheduler, str) or "://" not in scheduler:
            raise ConfigError(f"expected a scheduler address like tcp://HOST:8786, got "
                              f"{scheduler!r}", "--scheduler")  # fmt: skip
        try:
            client = distributed.Client(scheduler, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError) as err:
            raise ConfigError(
                f"cannot reach the Dask scheduler at {scheduler!r} ({err}); start it with "
                "`dask scheduler` and workers with `dask worker ADDRESS` (docs/trials.rst), "
                "or leave --scheduler out to run on a local cluster",
                "--scheduler",
            ) from None
    else:
        cluster = local_cluster(workers)
        try:
            client = distributed.Client(cluster, set_as_default=False)
        except BaseException:
            cluster.close()
            raise
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def worker_count(client: Any) -> int:
    """The number of workers the client's scheduler has now."""
    return len(client.scheduler_info().get("workers", {}))

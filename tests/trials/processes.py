"""Ending the processes a killed test driver left behind (its Dask workers)."""

from __future__ import annotations

from typing import Iterable

import psutil


def kill_processes(pids: Iterable[int]) -> None:
    """SIGKILLs the processes ``pids`` (by their ids; those already gone are skipped) and waits
    for them."""
    alive = []
    for pid in pids:
        try:
            process = psutil.Process(pid)
            process.kill()
            alive.append(process)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=30)

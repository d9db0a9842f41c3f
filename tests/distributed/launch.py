"""Starting ``mpirun -n N`` from the tests (the MPI of the set-up: the ``mpich`` wheel's
``mpiexec.gforker`` beside the venv's python, the one-machine launcher that listens on no
socket; else an ``mpirun`` on PATH)."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER_VARIABLES = ("OMPI_", "PMI_", "PMIX_", "MV2_", "HYDRA_", "MPI_LOCAL")


@functools.lru_cache(maxsize=1)
def mpirun_command() -> tuple[str, ...]:
    """``mpirun`` with the options this machine needs (Open MPI refuses root without them).

    MPICH's ``mpiexec.gforker`` is preferred: Hydra's ``mpirun`` listens on every interface
    (0.0.0.0) whatever its options; gforker forks the processes on this machine and talks to
    them through inherited pipes (docs/distributed.rst)."""
    here = Path(sys.executable).parent
    found = next((here / n for n in ("mpiexec.gforker", "mpirun") if (here / n).exists()), None)
    exe = str(found) if found is not None else shutil.which("mpirun")
    if exe is None:
        pytest.fail("no mpirun: run 'make setup' (it installs nnabla_nas[mpi], whose mpich wheel "
                    "ships mpirun)")  # fmt: skip
    version = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    extra: tuple[str, ...] = ()
    if "Open MPI" in version.stdout + version.stderr:
        extra = ("--oversubscribe",) + (("--allow-run-as-root",) if os.getuid() == 0 else ())
    return (exe, *extra)


def mpirun(n: int, args: list, timeout: float = 300) -> subprocess.CompletedProcess:
    """Runs ``mpirun -n n python ARGS`` from the repository root; returns the finished process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(LAUNCHER_VARIABLES)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.setdefault("PYTHONHASHSEED", "0")
    env.setdefault("NNABLA_CONFIG_FILE_PATH", str(ROOT / "tests" / "nnabla.conf"))
    cmd = [*mpirun_command(), "-n", str(n), sys.executable, *map(str, args)]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip

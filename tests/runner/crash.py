"""``python tests/runner/crash.py WHERE MAIN_ARGS...``: the command line, killed by SIGKILL at a
chosen point (for the kill-and-resume tests).

``WHERE``:

- ``none``: not killed (plain ``main``);
- ``update:N``: right after the N-th weight update (for a searcher: before that iteration's
  architecture step, i.e. in the middle of an iteration);
- ``ckpt:N:STAGE``: during the N-th checkpoint write, ``STAGE`` being ``arrays`` (the state's
  arrays half written to their temporary file), ``publish`` (every file written, the pointer
  not yet switched) or ``after`` (the pointer switched, the older checkpoint not yet removed);
- ``export:N``: while writing ``arch.h5`` (a searcher) or ``weights.h5`` (the Trainer) for the
  N-th time, half written;
- ``signal:N:NAME``: not killed, but sent signal ``NAME`` (``SIGINT``, ``SIGTERM``) right after
  the N-th weight update (the run then stops by itself).
"""

from __future__ import annotations

import os
import signal
import sys

from nnabla_nas import cli, optimizer
from nnabla_nas.runner import checkpoint
from nnabla_nas.utils import io

_count = {"update": 0, "ckpt": 0, "export": 0}


def _die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _install(where: str) -> None:
    kind, *rest = where.split(":")
    if kind == "none":
        return
    n = int(rest[0])
    if kind in ("update", "signal"):
        update = optimizer.Optimizer.update

        def patched_update(self, iteration=None):
            update(self, iteration)
            if self.key in ("optimizer.train", "optimizer.warmup"):
                _count["update"] += 1
                if _count["update"] == n and kind == "update":
                    _die()
                if _count["update"] == n and kind == "signal":
                    os.kill(os.getpid(), getattr(signal, rest[1]))

        optimizer.Optimizer.update = patched_update
    elif kind == "ckpt":
        stage = rest[1]
        store = checkpoint.CheckpointStore
        write_arrays, publish, remove = store._write_arrays, store._publish, store._remove_others

        def patched_arrays(self, path, arrays):
            _count["ckpt"] += 1
            if _count["ckpt"] == n and stage == "arrays":
                with io.atomic_path(path) as tmp, open(tmp, "wb") as f:
                    f.write(b"PK\x03\x04 half written")
                    f.flush()
                    _die()
            write_arrays(self, path, arrays)

        def patched_publish(self, info):
            if _count["ckpt"] == n and stage == "publish":
                _die()
            publish(self, info)

        def patched_remove(self, keep):
            if _count["ckpt"] == n and stage == "after":
                _die()
            remove(self, keep)

        store._write_arrays, store._publish = patched_arrays, patched_publish
        store._remove_others = patched_remove
    elif kind == "export":
        atomic_path = io.atomic_path
        import contextlib

        @contextlib.contextmanager
        def patched_atomic_path(path):
            name = os.path.basename(str(path))
            with atomic_path(path) as tmp:
                yield tmp
                if name in ("arch.h5", "weights.h5"):
                    _count["export"] += 1
                    if _count["export"] == n:
                        with open(tmp, "r+b") as f:
                            f.truncate(os.path.getsize(tmp) // 2)
                        _die()

        # Every module that imported atomic_path by name.
        import nnabla_nas.genotype as genotype
        import nnabla_nas.module.module as module

        for mod in (io, genotype, module):
            if hasattr(mod, "atomic_path"):
                mod.atomic_path = patched_atomic_path
    else:
        raise SystemExit(f"unknown kill point {where!r}")


if __name__ == "__main__":
    _install(sys.argv[1])
    sys.exit(cli.main(sys.argv[2:]))

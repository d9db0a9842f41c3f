"""The output folder of a run on the command line: ``-o`` checked, a previous run refused (or
removed with ``--overwrite``), the folder locked, and the saved configuration ``--resume``
continues.

Nothing here writes before every check has passed: a refused command leaves the folder as it
was (``docs/resume.rst``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..parsing import load_json
from ..utils.lock import FolderLock, check_unlocked, lock_folder

__all__ = [
    "RUN_FILES",
    "check_output_arg",
    "prepare_output",
    "read_saved_config",
    "resume_command",
    "resume_source",
]

#: What a run leaves in its output folder: a fresh run refuses a folder holding any of them.
RUN_FILES = ("config.json", "log.txt", "checkpoint", "tensorboard", "results.json", "weights.h5",
             "arch.h5")  # fmt: skip


def check_output_arg(output: str) -> Path:
    """The ``-o`` folder; an empty one (``-o ''``, which would mean the current folder) is
    refused.

    Raises:
        ConfigError: at ``-o``.
    """
    if not output.strip():
        raise ConfigError(
            "empty output folder: give the folder the run writes into (e.g. -o log/run; "
            "-o . for the current folder)",
            key="-o",
        )
    return Path(output)


def prepare_output(output: Path, overwrite: bool, resume: bool = False) -> FolderLock:
    """Creates the output folder, checks that it is writable and locks it (see
    :mod:`nnabla_nas.utils.lock`); returns the lock, which the caller releases.

    A fresh run refuses a folder holding a previous run (any of :data:`RUN_FILES`) unless
    ``overwrite``, which removes the previous run's ``checkpoint/``, ``tensorboard/`` and
    ``log.txt`` (its other files are replaced as the new run writes them). ``resume`` keeps
    everything. A folder that another process has locked is refused first, before anything is
    removed.

    Raises:
        ConfigError: at ``-o``, before anything is written.
    """
    if output.exists() and not output.is_dir():
        raise ConfigError(f"{output} exists and is not a folder", key="-o")
    if output.is_dir():
        check_unlocked(output)
    previous = [name for name in RUN_FILES if (output / name).exists()]
    if previous and not (overwrite or resume):
        raise ConfigError(
            f"{output} holds a previous run ({', '.join(previous)}); continue it with --resume, "
            "choose another -o, or pass --overwrite to start afresh",
            key="-o",
        )
    try:
        output.mkdir(parents=True, exist_ok=True)
        lock = lock_folder(output)
    except OSError as err:
        raise ConfigError(f"cannot write to output folder {output}: {err}", key="-o") from None
    try:
        if previous and overwrite:
            for name in ("checkpoint", "tensorboard", "log.txt"):
                path = output / name
                if path.is_dir():
                    shutil.rmtree(path)
                elif path.exists():
                    path.unlink()
        probe = output / ".write-test"
        probe.write_text("")
        probe.unlink()
        (output / "checkpoint").mkdir(exist_ok=True)
    except OSError as err:
        lock.release()
        raise ConfigError(f"cannot write to output folder {output}: {err}", key="-o") from None
    return lock


def resume_command(output: str | Path) -> str:
    """The command that resumes the run in ``output`` (shown when a run stops early)."""
    prog = sys.argv[0] if sys.argv and sys.argv[0].endswith("main.py") else None
    start = f"python {shlex.quote(prog)}" if prog else "nnabla-nas"
    return f"{start} --resume -o {shlex.quote(str(output))}"


def read_saved_config(path: Path) -> dict[str, Any]:
    """The configuration a run saved (``OUTPUT/config.json``), read strictly.

    Raises:
        ConfigError: at ``--resume``, naming the file, when it is unreadable, not a JSON object,
            or not a run's configuration (no ``algorithm``).
    """
    fix = "it is not the configuration a run wrote; give the experiment with -f and -a, or "
    fix += "start afresh with --overwrite"
    try:
        data = load_json(path.read_text(), str(path), key="--resume")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read {path} ({err}); {fix}", key="--resume") from None
    except json.JSONDecodeError as err:
        raise ConfigError(
            f"{path} is not valid JSON (line {err.lineno}, column {err.colno}: {err.msg}); {fix}",
            key="--resume",
        ) from None
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{path} is empty; {fix}", key="--resume")
    if not isinstance(data.get("algorithm"), str):
        raise ConfigError(f"{path} names no algorithm; {fix}", key="--resume")
    return data


def resume_source(args: argparse.Namespace) -> tuple[Path, dict[str, Any]] | None:
    """With ``--resume``: the run's saved configuration file and its content (the file is also
    the default ``-f``); None without ``--resume``.

    Raises:
        ConfigError: no experiment file without ``--resume``; with it, ``--overwrite`` too, no
            run to resume, or a damaged ``config.json``.
    """
    if not args.resume:
        if args.file is None:
            raise ConfigError("the experiment file is required (except with --resume)", key="-f")
        return None
    if args.overwrite:
        raise ConfigError("--resume continues the run in -o, --overwrite starts afresh: give "
                          "one of them", key="--resume")  # fmt: skip
    saved = Path(args.output) / "config.json"
    if not saved.is_file():
        raise ConfigError(
            f"nothing to resume in {args.output}: no config.json (a run writes it when it "
            "starts); run without --resume",
            key="--resume",
        )
    content = read_saved_config(saved)
    if args.file is None:
        args.file = str(saved)
    return saved, content

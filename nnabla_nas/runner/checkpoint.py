"""Checkpoints: everything a run needs to continue exactly, in ``OUTPUT/checkpoint/``.

Layout::

    checkpoint/latest.json                 the pointer: {"name": "ckpt-00000012-0003", ...}
    checkpoint/ckpt-<iteration>-<n>/
        params.h5                          every parameter of the model (nnabla's h5 format:
                                           weights, architecture logits, batch-norm statistics)
        state.json                         the runner's state (see ``Runner.state_dict``);
                                           arrays are stored as {"__array__": key}
        state.npz                          those arrays (numpy, no pickles)

A checkpoint is written into a new folder (every file atomically and fsynced), then the pointer
``latest.json`` is switched atomically, then the older folders are removed. A crash at any
moment leaves the previous pointer and the folder it names intact; a folder no pointer names
(a write that did not finish) is ignored and removed by the next save.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import shutil
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from ..errors import CheckpointError, ConfigError
from ..module.module import read_parameter_file
from ..utils.io import atomic_h5, atomic_write_bytes, atomic_write_json

__all__ = [
    "RUNNER_KEYS",
    "CheckpointStore",
    "check_state",
    "remove_temporaries",
    "CheckpointError",
    "encode_state",
    "decode_state",
    "rng_state",
    "set_rng_state",
]

logger = logging.getLogger(__name__)

FORMAT = 1
POINTER = "latest.json"
_NAME = re.compile(r"^ckpt-\d+-\d+$")
# The temporary files of nnabla_nas.utils.io.atomic_path: ".<name>.<random>.tmp<suffix>".
_TEMPORARY = re.compile(r"^\..+\.[^./]+\.tmp(\.[^./]*)?$")


def remove_temporaries(folder: str | os.PathLike) -> list[str]:
    """Removes the temporary files that writes killed before their rename left in ``folder``
    (see :func:`~nnabla_nas.utils.io.atomic_path`); returns their names."""
    removed = []
    folder = Path(folder)
    if folder.is_dir():
        for path in folder.iterdir():
            if path.is_file() and _TEMPORARY.match(path.name):
                with contextlib.suppress(OSError):
                    path.unlink()
                    removed.append(path.name)
    return removed


# ---------------------------------------------------------------------------------------------
# State encoding: nested dicts/lists of JSON values and numpy arrays -> (JSON, arrays)
# ---------------------------------------------------------------------------------------------


def encode_state(obj: Any, arrays: dict[str, np.ndarray] | None = None) -> tuple[Any, dict]:
    """Splits ``obj`` into a JSON-able structure and the arrays it references.

    Dict keys must be strings; tuples become lists; numpy scalars become Python numbers.

    Returns:
        ``(json_obj, arrays)`` where every array of ``obj`` is replaced by
        ``{"__array__": key}`` and ``arrays[key]`` holds it.
    """
    arrays = {} if arrays is None else arrays
    if isinstance(obj, np.ndarray):
        key = f"a{len(arrays)}"
        arrays[key] = obj
        return {"__array__": key}, arrays
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"state keys must be strings, got {k!r}")
            out[k] = encode_state(v, arrays)[0]
        return out, arrays
    if isinstance(obj, (list, tuple)):
        return [encode_state(v, arrays)[0] for v in obj], arrays
    if isinstance(obj, np.generic):
        return obj.item(), arrays
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj, arrays
    raise TypeError(f"cannot store a {type(obj).__name__} in a checkpoint: {obj!r}")


def decode_state(obj: Any, arrays: Mapping[str, np.ndarray]) -> Any:
    """The inverse of :func:`encode_state` (lists stay lists)."""
    if isinstance(obj, dict):
        if set(obj) == {"__array__"}:
            return np.array(arrays[obj["__array__"]])
        return {k: decode_state(v, arrays) for k, v in obj.items()}
    if isinstance(obj, list):
        return [decode_state(v, arrays) for v in obj]
    return obj


def rng_state(rng: np.random.RandomState) -> dict[str, Any]:
    """The full state of a numpy ``RandomState`` (MT19937) as a storable dict."""
    name, keys, pos, has_gauss, cached = rng.get_state()
    return {
        "bit_generator": str(name),
        "keys": np.asarray(keys, dtype=np.uint32),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached),
    }


def set_rng_state(rng: np.random.RandomState, state: Mapping[str, Any]) -> None:
    """Restores a :func:`rng_state` into ``rng`` (in place: every holder of it sees it)."""
    rng.set_state(
        (
            state["bit_generator"],
            np.asarray(state["keys"], dtype=np.uint32),
            int(state["pos"]),
            int(state["has_gauss"]),
            float(state["cached_gaussian"]),
        )
    )


#: The loop's keys every checkpoint's ``runner`` state holds, and their JSON types.
RUNNER_KEYS: dict[str, type | tuple[type, ...]] = {
    "algorithm": str, "steps_per_epoch": int, "epoch": int, "step": int, "iteration": int,
    "arch_position": list, "epoch_sums": dict, "optimizers": dict, "history": list,
    "best": (dict, type(None)), "last": dict, "hardware": dict, "elapsed": (int, float),
}  # fmt: skip


def check_state(state: Any) -> None:
    """Checks the shape of a checkpoint's encoded state (``state.json``'s ``state``): a
    ``runner`` object with every key of :data:`RUNNER_KEYS` of the right type, and the
    ``tensorboard`` file sizes.

    Raises:
        ValueError: what is missing or wrong (the caller names the file).
    """
    if not isinstance(state, dict) or not isinstance(state.get("runner"), dict):
        raise ValueError("no 'runner' object: the file is damaged")
    runner = state["runner"]
    for key, kind in RUNNER_KEYS.items():
        value = runner.get(key)
        if key not in runner or not isinstance(value, kind) or isinstance(value, bool):
            raise ValueError(f"'runner.{key}' is missing or malformed: the file is damaged")
    if not isinstance(state.get("tensorboard"), dict):
        raise ValueError("no 'tensorboard' object: the file is damaged")


# ---------------------------------------------------------------------------------------------
# The store
# ---------------------------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    # Makes the renames inside ``path`` durable (no-op where directories cannot be opened).
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class CheckpointStore:
    """Reads and writes the checkpoints of one output folder.

    Args:
        folder: ``OUTPUT/checkpoint``.
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)

    def latest(self) -> dict[str, Any] | None:
        """The pointer of the last complete checkpoint (``name``, ``epoch``, ``step``,
        ``iteration``, ``path``...), or None when none was written.

        Raises:
            CheckpointError: the pointer is unreadable or names a missing folder.
        """
        pointer = self.folder / POINTER
        if not pointer.is_file():
            return None
        try:
            info = json.loads(pointer.read_text())
            name = info["name"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise CheckpointError(f"cannot read the checkpoint pointer {pointer}: {err}") from None
        path = self.folder / str(name)
        if not _NAME.match(str(name)) or not path.is_dir():
            raise CheckpointError(f"{pointer} names {name!r}, which is not a checkpoint folder")
        return {**info, "path": str(path)}

    def prepare(self) -> None:
        """Creates the folder (an OSError says why it cannot be)."""
        self.folder.mkdir(parents=True, exist_ok=True)

    def save(
        self,
        state: Mapping[str, Any],
        params: Mapping[str, np.ndarray],
        info: Mapping[str, Any],
    ) -> Path:
        """Writes a new checkpoint and makes it the latest; returns its folder.

        Args:
            state: the runner's state (nested dicts/lists of JSON values and numpy arrays).
            params: every parameter of the model, ``path -> array``.
            info: small JSON values copied into the pointer (``epoch``, ``step``,
                ``iteration``: shown in messages).
        """
        self.prepare()
        name, seq = self._next(info)
        target = self.folder / name
        if target.exists():  # left by a write that did not finish
            shutil.rmtree(target)
        target.mkdir()
        self._write_params(target / "params.h5", params)
        encoded, arrays = encode_state(dict(state))
        self._write_arrays(target / "state.npz", arrays)
        atomic_write_json(target / "state.json", {"format": FORMAT, "state": encoded})
        _fsync_dir(target)
        self._publish({**dict(info), "name": name, "seq": seq, "format": FORMAT})
        self._remove_others(keep=name)
        return target

    def next_folder(self, info: Mapping[str, Any]) -> Path:
        """The folder the next :meth:`save` with this ``info`` writes."""
        return self.folder / self._next(info)[0]

    def _next(self, info: Mapping[str, Any]) -> tuple[str, int]:
        previous = self.latest()
        seq = int(previous.get("seq", 0)) + 1 if previous else 1
        return f"ckpt-{int(info.get('iteration', 0)):08d}-{seq:04d}", seq

    def cleanup(self) -> None:
        """Removes what interrupted saves left: folders the pointer does not name, and
        temporary files (nothing when there is no pointer: the folders are then kept)."""
        info = self.latest()
        remove_temporaries(self.folder)
        if info is not None:
            remove_temporaries(info["path"])
            self._remove_others(keep=info["name"])

    def load(
        self,
        info: Mapping[str, Any] | None = None,
        check: Callable[[Any], None] | None = None,
    ) -> tuple[dict[str, Any], OrderedDict]:
        """Reads a checkpoint (default: the latest) into ``(state, params)``.

        Args:
            info: the checkpoint's pointer (:meth:`latest`), or None: the latest.
            check: called with the encoded state before it is decoded (e.g.
                :func:`check_state`); a ValueError it raises is reported naming ``state.json``.

        Raises:
            CheckpointError: none exists, or its files are unreadable (one line naming the
                file).
        """
        info = self.latest() if info is None else info
        if info is None:
            raise CheckpointError(f"no checkpoint in {self.folder}")
        path = Path(info["path"])
        file = path / "state.json"
        try:
            doc = json.loads(file.read_text())
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
            if doc.get("format") != FORMAT:
                raise CheckpointError(
                    f"checkpoint {path} has format {doc.get('format')!r}; this version reads "
                    f"{FORMAT}"
                )
            if check is not None:
                check(doc.get("state"))
            file = path / "state.npz"
            with np.load(file, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
            file = path / "state.json"
            state = decode_state(doc["state"], arrays)
            file = path / "params.h5"
            params = read_parameter_file(file)
        except (OSError, ValueError, KeyError, TypeError, ConfigError) as err:
            reason = " ".join(str(getattr(err, "message", err)).split())  # one line
            raise CheckpointError(f"cannot read checkpoint file {file}: {reason}") from None
        return state, params

    # -- the steps of a save (separate so that tests can interrupt between them) ---------------

    def _write_params(self, path: Path, params: Mapping[str, np.ndarray]) -> None:
        with atomic_h5(path) as hd:  # built in memory: a full disk cannot crash HDF5
            for index, (key, value) in enumerate(params.items()):
                hd[key] = np.asarray(value)
                hd[key].attrs["index"] = index

    def _write_arrays(self, path: Path, arrays: Mapping[str, np.ndarray]) -> None:
        # Built in memory: a full disk fails the plain write below, not numpy's zip writer
        # (which then leaves a half-closed archive that complains when collected).
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        atomic_write_bytes(path, buffer.getvalue())

    def _publish(self, info: Mapping[str, Any]) -> None:
        atomic_write_json(self.folder / POINTER, dict(info))
        _fsync_dir(self.folder)

    def _remove_others(self, keep: str) -> None:
        for path in self.folder.iterdir():
            if path.name != keep and path.is_dir() and _NAME.match(path.name):
                shutil.rmtree(path, ignore_errors=True)

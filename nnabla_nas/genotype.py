"""The genotype file (``arch.h5``): a searched architecture, readable with or without the code.

Layout (one HDF5 file):

- the architecture logits, one dataset per architecture parameter, written exactly as
  :func:`nnabla.save_parameters` writes parameters (dataset at the parameter's path, attributes
  ``need_grad`` and ``index``), so ``nnabla.load_parameters("arch.h5")`` loads them;
- root attributes ``nnabla_nas_format`` (:data:`FORMAT`), ``nnabla_nas_space`` (the search space
  name), ``nnabla_nas_genotype`` (JSON object ``{label: chosen candidate}``, in choice order) and
  ``nnabla_nas_extra`` (JSON object, e.g. epoch and latency);
- a group ``nnabla_nas_choices`` holding one attribute per choice (``label -> candidate``), so
  ``h5dump -A arch.h5`` shows the architecture. Groups without datasets are skipped by nnabla's
  loader.

The file is written atomically: a crash never leaves a half-written genotype.

:func:`load_genotype` also reads a cell genotype in JSON (a DARTS ``arch.json``, written by
:mod:`nnabla_nas.contrib.darts`): its object is kept as :attr:`Genotype.cell` (checked in detail
by the space that builds it), its space is its ``search_space`` key (default ``"darts"``).
"""

from __future__ import annotations

import json
import logging
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import h5py
import numpy as np

from .errors import GenotypeError
from .utils.io import atomic_h5

__all__ = ["FORMAT", "Genotype", "load_genotype", "save_genotype"]

logger = logging.getLogger(__name__)

FORMAT = "nnabla_nas.genotype/1"
_ATTR_FORMAT = "nnabla_nas_format"
_ATTR_SPACE = "nnabla_nas_space"
_ATTR_CHOICES = "nnabla_nas_genotype"
_ATTR_EXTRA = "nnabla_nas_extra"
_GROUP_CHOICES = "nnabla_nas_choices"


@dataclass
class Genotype:
    """A searched architecture.

    Attributes:
        space: the search space's registry name (e.g. ``"mobilenet"``).
        choices: the chosen candidate of every choice, ``label -> candidate name``, in the space's
            choice order.
        logits: the architecture parameters, ``parameter path -> array`` (may be empty).
        extra: free JSON-serialisable information (epoch, latency, ...).
        source: the file it was read from (set by :func:`load_genotype`, for error messages;
            not saved).
        cell: a cell genotype read from a JSON file (e.g. DARTS' ``arch.json``: ``normal``,
            ``normal_concat``, ``reduce``, ``reduce_concat``), None for an ``arch.h5``.
    """

    space: str
    choices: OrderedDict[str, str]
    logits: OrderedDict[str, np.ndarray] = field(default_factory=OrderedDict)
    extra: dict[str, Any] = field(default_factory=dict)
    source: str | None = field(default=None, compare=False)
    cell: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.choices = OrderedDict((str(k), str(v)) for k, v in self.choices.items())
        self.logits = OrderedDict((str(k), np.asarray(v)) for k, v in self.logits.items())


def save_genotype(
    path: str | os.PathLike, genotype: Genotype, extra: Mapping[str, Any] | None = None
) -> Path:
    """Writes a genotype to ``path`` (``arch.h5``) atomically.

    Args:
        path: the file to write.
        genotype: a :class:`Genotype` (e.g. ``model.to_genotype(architecture, logits)``).
        extra: information merged into ``genotype.extra`` (must be JSON-serialisable).

    Returns:
        The path written.
    """
    if not isinstance(genotype, Genotype):
        raise TypeError(f"expected a Genotype, got {type(genotype).__name__}")
    if extra:
        genotype = Genotype(genotype.space, genotype.choices, genotype.logits, {**genotype.extra})
        genotype.extra.update(extra)
    path = Path(path)
    with atomic_h5(path) as f:  # built in memory: a full disk cannot crash HDF5
        # Same layout as nnabla.utils.get_file_handle._h5_parameter_file_saver.
        for i, (key, value) in enumerate(genotype.logits.items()):
            f[key] = np.asarray(value)
            f[key].attrs["need_grad"] = True
            f[key].attrs["index"] = i
        f.attrs[_ATTR_FORMAT] = FORMAT
        f.attrs[_ATTR_SPACE] = genotype.space
        f.attrs[_ATTR_CHOICES] = json.dumps(genotype.choices)
        f.attrs[_ATTR_EXTRA] = json.dumps(genotype.extra, default=_json_default)
        group = f.create_group(_GROUP_CHOICES)
        for label, name in genotype.choices.items():
            group.attrs[label] = name
    logger.debug("genotype of space %r written to %s", genotype.space, path)
    return path


def load_genotype(
    path: str | os.PathLike, expected_space: str | None = None, key: str | None = None
) -> Genotype:
    """Reads a genotype written by :func:`save_genotype`.

    Args:
        path: the ``arch.h5`` file, or a cell genotype ``*.json`` (DARTS' ``arch.json``).
        expected_space: if given, the search space the genotype must belong to.
        key: the configuration key that named the file (for the error message).

    Raises:
        GenotypeError: the file is missing, is not HDF5 (JSON for ``*.json``), is not a genotype
            file, or belongs to another search space; the message names the file.
    """
    path = Path(path)
    if path.suffix.lower() == ".json":
        return _load_cell_json(path, expected_space, key)
    if not path.is_file():
        raise GenotypeError(
            f"genotype file {str(path)!r} does not exist; give the arch.h5 written by a search",
            key=key,
        )
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise GenotypeError(
            f"genotype file {str(path)!r} is not an HDF5 file ({err}); give the arch.h5 "
            "written by a search",
            key=key,
        ) from None
    with f:
        if _ATTR_SPACE not in f.attrs or _ATTR_CHOICES not in f.attrs:
            raise GenotypeError(
                f"{str(path)!r} is an HDF5 file but not an nnabla_nas genotype (no "
                f"{_ATTR_SPACE!r}/{_ATTR_CHOICES!r} attributes); give the arch.h5 written by "
                "a search",
                key=key,
            )
        space = _text(f.attrs[_ATTR_SPACE])
        if expected_space is not None and space.lower() != expected_space.lower():
            raise GenotypeError(
                f"genotype file {str(path)!r} belongs to search space {space!r}, but the "
                f"network being built is {expected_space!r}; use a genotype searched in "
                f"{expected_space!r} or set search_space to {space!r}",
                key=key,
            )
        try:
            choices = json.loads(_text(f.attrs[_ATTR_CHOICES]), object_pairs_hook=OrderedDict)
            extra = json.loads(_text(f.attrs.get(_ATTR_EXTRA, "{}")))
        except json.JSONDecodeError as err:
            raise GenotypeError(
                f"genotype file {str(path)!r} is corrupt ({err})", key=key
            ) from None
        if not isinstance(choices, dict) or not all(isinstance(v, str) for v in choices.values()):
            raise GenotypeError(
                f"genotype file {str(path)!r} is corrupt: {_ATTR_CHOICES!r} must map labels "
                "to candidate names",
                key=key,
            )
        datasets: list[tuple[Any, str]] = []

        def visit(name: str) -> None:
            obj = f[name]
            if isinstance(obj, h5py.Dataset):
                datasets.append((obj.attrs.get("index", 0), name))

        f.visit(visit)
        logits = OrderedDict((name, np.array(f[name][...])) for _, name in sorted(datasets))
    return Genotype(space=space, choices=choices, logits=logits, extra=extra, source=str(path))


def _load_cell_json(path: Path, expected_space: str | None, key: str | None) -> Genotype:
    """Reads a cell genotype (``arch.json``); see :func:`load_genotype`."""
    name = str(path)
    if not path.is_file():
        raise GenotypeError(
            f"genotype file {name!r} does not exist; give the arch.json (or arch.h5) written by "
            "a search",
            key=key,
        )
    try:
        data = json.loads(path.read_text(), object_pairs_hook=OrderedDict)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise GenotypeError(
            f"genotype file {name!r} is not valid JSON ({err}); give the arch.json written by "
            "a search",
            key=key,
        ) from None
    cell_keys = ("normal", "normal_concat", "reduce", "reduce_concat")
    if not isinstance(data, dict) or not any(k in data for k in cell_keys):
        raise GenotypeError(
            f"genotype file {name!r} is not a cell genotype: expected a JSON object with the "
            f"keys {', '.join(cell_keys)} (the arch.json of a DARTS search)",
            key=key,
        )
    space = data.pop("search_space", "darts")
    if not isinstance(space, str):
        raise GenotypeError(f"genotype file {name!r}: search_space must be a string", key=key)
    if expected_space is not None and space.lower() != expected_space.lower():
        raise GenotypeError(
            f"genotype file {name!r} belongs to search space {space!r}, but the network being "
            f"built is {expected_space!r}; use a genotype searched in {expected_space!r} or set "
            f"search_space to {space!r}",
            key=key,
        )
    return Genotype(space=space, choices=OrderedDict(), source=name, cell=dict(data))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON-serialisable in genotype extra: {value!r}")

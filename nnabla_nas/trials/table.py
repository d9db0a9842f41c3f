"""Benchmark tables and the ``table`` evaluator: a trial is a lookup, for testing strategies.

The table format (any tabular benchmark fits it)
    A table is a JSON object ``key -> {figure: value}`` (the entries, e.g. NAS-Bench-Macro's
    ``"02012100": {"mean_acc": 89.2, "params": 890666, ...}``) and a small spec file saying how
    an architecture becomes a key::

        {
          "name": "nas-bench-macro",
          "entries": "nas-bench-macro_cifar10.json",
          "metric": "mean_acc",
          "separator": "",
          "choices": {
            "blocks/0": {"skip_connect": "0", "MB3 3x3": "1", "MB6 5x5": "2"},
            "blocks/1": {...}
          },
          "source": "who published it, under which license"
        }

    ``choices`` maps every decision's label, in key order, to its candidates' tokens; the key of
    an architecture is its tokens joined by ``separator``. ``entries`` is a path relative to the
    spec file. The candidate order in ``choices`` is the space of a table-only search
    (:meth:`BenchmarkTable.space`); a space built from a model is checked against the table with
    :meth:`BenchmarkTable.check`.

Shipped tables are in ``nnabla_nas/trials/tables/`` (with their licenses), by name:
:func:`table_path` (``"nas-bench-macro"``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import ConfigError
from .evaluator import Evaluator
from .record import TrialRequest
from .space import SearchSpace

__all__ = ["TABLES", "BenchmarkTable", "TableEvaluator", "TableEvaluatorConfig", "table_path"]

logger = logging.getLogger(__name__)

_FOLDER = Path(__file__).resolve().parent / "tables"
#: The tables shipped with the package: name -> spec file.
TABLES = {"nas-bench-macro": _FOLDER / "nas-bench-macro.json"}


def table_path(name_or_path: str | os.PathLike, key: str = "table") -> Path:
    """The spec file of a shipped table's name, or the given path.

    Raises:
        ConfigError: neither a shipped table nor an existing file (naming ``key``).
    """
    if isinstance(name_or_path, str) and name_or_path.lower() in TABLES:
        return TABLES[name_or_path.lower()]
    path = Path(name_or_path)
    if not path.is_file():
        raise ConfigError(f"no table spec file {str(path)!r}; give a spec file (see "
                          f"nnabla_nas.trials.table) or a shipped table: {sorted(TABLES)}",
                          key)  # fmt: skip
    return path


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class BenchmarkTable:
    """A tabular benchmark: entries by key and the encoding of architectures as keys.

    Args:
        entries: ``key -> {figure: value}``.
        choices: ``label -> {candidate name: token}``, decisions in key order.
        name: the table's name (the space name of a table-only search).
        metric: the default figure to maximise.
        separator: what joins the tokens of a key.
        source: attribution (paper, license).
        key: the configuration key naming the table (in error messages).

    Raises:
        ConfigError: an empty table, an entry that is not an object, a metric that is not a
            numeric figure of every entry, or a decision with repeated tokens.
    """

    def __init__(
        self,
        entries: Mapping[str, Mapping[str, Any]],
        choices: Mapping[str, Mapping[str, str]],
        name: str = "table",
        metric: str = "accuracy",
        separator: str = "",
        source: str = "",
        key: str = "table",
    ) -> None:
        self.entries = dict(entries)
        self.choices = OrderedDict((str(k), OrderedDict(v)) for k, v in choices.items())
        self.name, self.metric, self.separator, self.source = name, metric, separator, source
        self.key_name = key
        if not self.entries or not self.choices:
            raise ConfigError(f"table {name!r} has no entries or no choices", key)
        bad = next((k for k, v in self.entries.items() if not isinstance(v, dict)), None)
        if bad is not None:
            raise ConfigError(f"table {name!r}: entry {bad!r} is not an object of figures", key)
        for label, tokens in self.choices.items():
            if not tokens or len(set(tokens.values())) != len(tokens):
                raise ConfigError(f"table {name!r}: choice {label!r} needs distinct tokens, got "
                                  f"{dict(tokens)}", f"{key}.choices.{label}")  # fmt: skip
        numeric = self.metrics()
        if metric not in numeric:
            raise ConfigError(f"{metric!r} is not a numeric figure of every entry of table "
                              f"{name!r}; valid: {numeric}", f"{key}.metric")  # fmt: skip

    @classmethod
    def load(cls, spec: str | os.PathLike, key: str = "table") -> BenchmarkTable:
        """Reads a spec file (or a shipped table's name) and its entries.

        Raises:
            ConfigError: a missing or unreadable file, or a spec without its keys.
        """
        path = table_path(spec, key)
        try:
            data = json.loads(path.read_text(), object_pairs_hook=OrderedDict)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ConfigError(f"cannot read table spec {str(path)!r}: {err}", key) from None
        required = {"entries", "choices"}
        allowed = required | {"name", "metric", "separator", "source"}
        if not isinstance(data, dict) or not required <= set(data) or set(data) - allowed:
            raise ConfigError(
                f"table spec {str(path)!r} must be an object with the keys {sorted(required)} "
                f"(and optionally {sorted(allowed - required)})",
                key,
            )
        entries_path = (path.parent / data["entries"]).resolve()
        try:
            entries = json.loads(entries_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ConfigError(f"cannot read the entries of table spec {str(path)!r} "
                              f"({str(entries_path)!r}): {err}", key) from None  # fmt: skip
        if not isinstance(entries, dict):
            raise ConfigError(f"{str(entries_path)!r} must be a JSON object key -> figures", key)
        return cls(
            entries,
            data["choices"],
            name=data.get("name", path.stem),
            metric=data.get("metric", "accuracy"),
            separator=data.get("separator", ""),
            source=data.get("source", ""),
            key=key,
        )

    def metrics(self) -> list[str]:
        """The figures that are finite numbers in every entry, in the first entry's order."""
        first = next(iter(self.entries.values()))
        names = [k for k, v in first.items() if _is_number(v)]
        return [k for k in names if all(_is_number(e.get(k)) for e in self.entries.values())]

    def space(self) -> SearchSpace:
        """The space of a table-only search: the encoding's decisions and candidates."""
        return SearchSpace(OrderedDict((k, list(v)) for k, v in self.choices.items()), self.name)

    def key(self, genotype: Mapping[str, str]) -> str:
        """The entry key of ``{label: candidate name}``."""
        return self.separator.join(self.choices[label][genotype[label]] for label in self.choices)

    def check(self, space: SearchSpace) -> None:
        """Refuses a space the table does not cover: a decision or candidate without a token,
        a decision of the table that the space does not make, or an architecture without an
        entry (the message names the missing entry key)."""
        where = self.key_name
        extra = [k for k in self.choices if k not in space.choices]
        if extra:
            raise ConfigError(f"table {self.name!r} encodes the choices {extra[:5]}, which the "
                              f"space {space.name!r} does not have", where)  # fmt: skip
        for label, names in space.choices.items():
            tokens = self.choices.get(label)
            if tokens is None:
                raise ConfigError(f"table {self.name!r} has no tokens for the space's choice "
                                  f"{label!r}; add it to the spec's choices",
                                  f"{where}.choices")  # fmt: skip
            missing = [n for n in names if n not in tokens]
            if missing:
                raise ConfigError(f"table {self.name!r} has no token for the candidates "
                                  f"{missing} of choice {label!r} (tokens: {dict(tokens)})",
                                  f"{where}.choices.{label}")  # fmt: skip
        # Stops at the first miss: at most len(entries) + 1 lookups, whatever the space's size.
        for architecture in space:
            k = self.key(space.genotype(architecture))
            if k not in self.entries:
                raise ConfigError(f"table {self.name!r} has no entry {k!r} (the architecture "
                                  f"{dict(space.genotype(architecture))})", where)  # fmt: skip

    def lookup(self, genotype: Mapping[str, str]) -> dict[str, Any]:
        """The figures of an architecture (a copy). KeyError naming the key if absent."""
        k = self.key(genotype)
        if k not in self.entries:
            raise KeyError(f"table {self.name!r} has no entry {k!r}")
        return dict(self.entries[k])

    def values(self, metric: str | None = None) -> np.ndarray:
        """Every entry's ``metric`` (default: the table's), as float64."""
        m = metric or self.metric
        return np.array([float(e[m]) for e in self.entries.values()])


@dataclass
class TableEvaluatorConfig:
    """Keys of the ``table`` evaluator (``trials.evaluator``).

    Attributes:
        table: a shipped table's name (``nas-bench-macro``) or a spec file.
        metric: the figure to maximise (default: the table's).
    """

    table: str = "nas-bench-macro"
    metric: str | None = None


class TableEvaluator(Evaluator):
    """Scores a trial by looking it up in a :class:`BenchmarkTable`.

    Args:
        table: a spec file, a shipped table's name (``"nas-bench-macro"``) or a table object.
            With a file or name, workers load the table once per process (only the path is
            sent with each trial).
        metric: the figure to maximise (default: the table's).
        key: the configuration key naming the table (in error messages).
    """

    kind = "table"
    Config = TableEvaluatorConfig

    def __init__(
        self, table: BenchmarkTable | str | os.PathLike, metric: str | None = None,
        key: str = "table",
    ) -> None:  # fmt: skip
        self.key = key
        if isinstance(table, BenchmarkTable):
            self.source: str | None = None
            self._table: BenchmarkTable | None = table
            # An in-memory table is known by its content (the workers' cache key).
            text = json.dumps([table.entries, table.choices], sort_keys=True, default=str)
            self._name = f"{table.name}#{hashlib.sha1(text.encode()).hexdigest()[:12]}"
        else:
            self.source = str(table_path(table, key))
            self._table = None
            shipped = isinstance(table, str) and table.lower() in TABLES
            self._name = table.lower() if shipped else self.source
        self._metric = metric or self.table.metric
        if self._metric not in self.table.metrics():
            raise ConfigError(f"{self._metric!r} is not a numeric figure of table "
                              f"{self.table.name!r}; valid: {self.table.metrics()}",
                              f"{key}.metric")  # fmt: skip

    @classmethod
    def from_setting(cls, config: TableEvaluatorConfig, setting: Any) -> TableEvaluator:
        """The evaluator of an experiment file (``trials.evaluator``: ``table``, ``metric``)."""
        key = "trials.evaluator.table"
        try:
            return cls(config.table, config.metric, key=key)
        except ConfigError as err:
            if err.key == f"{key}.metric":
                raise ConfigError(err.message, "trials.evaluator.metric") from None
            raise

    @property
    def table(self) -> BenchmarkTable:
        """The table (read on first use in this process)."""
        if self._table is None:
            self._table = BenchmarkTable.load(self.source, self.key)
        return self._table

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if self.source is not None:
            state["_table"] = None  # workers read the file once (load)
        return state

    @property
    def metric(self) -> str:
        return self._metric

    def metrics(self) -> list[str]:
        return self.table.metrics()

    def check(self, space: SearchSpace) -> None:
        self.table.check(space)

    def load(self) -> BenchmarkTable:
        return self.table

    def evaluate(self, request: TrialRequest, resources: BenchmarkTable) -> dict[str, Any]:
        return resources.lookup(request.genotype)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "table": self._name, "metric": self.metric}

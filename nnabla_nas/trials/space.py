"""What a multi-trial strategy sees of a search space: its decisions and their candidates.

A :class:`SearchSpace` is an ordered mapping ``label -> candidate names``, one entry per
decision (MixedOps sharing a ``label`` are one decision). It is built from any model through
:meth:`SearchSpace.from_model` (``nnabla_nas.module.choice_groups``), or written down directly
for table-only use (e.g. from a benchmark table's encoding, :mod:`nnabla_nas.trials.table`).

An architecture is ``{label: candidate index}``; its genotype is ``{label: candidate name}``.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from ..errors import ConfigError

__all__ = ["Architecture", "SearchSpace"]

#: One architecture: ``{choice label: candidate index}``.
Architecture = dict[str, int]


class SearchSpace:
    """The decisions of a search space, ``label -> candidate names``, in order.

    Args:
        choices: ``label -> candidate names`` (at least one decision, one candidate each).
        name: the search space's registry name (written into ``arch.h5``; e.g.
            ``"mobilenet"``), or any name for a table-only space.

    Raises:
        ConfigError: no decision, a decision without candidates, or repeated candidate names.
    """

    def __init__(self, choices: Mapping[str, Sequence[str]], name: str = "custom") -> None:
        self.choices: OrderedDict[str, tuple[str, ...]] = OrderedDict(
            (str(label), tuple(str(n) for n in names)) for label, names in choices.items()
        )
        self.name = str(name)
        if not self.choices:
            raise ConfigError("the search space has no choices: nothing to search", "network")
        for label, names in self.choices.items():
            if not names:
                raise ConfigError(f"choice {label!r} has no candidates", "network")
            if len(set(names)) != len(names):
                raise ConfigError(f"choice {label!r} repeats a candidate name: {list(names)}",
                                  "network")  # fmt: skip

    @classmethod
    def from_model(cls, model: Any, name: str | None = None) -> SearchSpace:
        """The decisions of a model (any :class:`~nnabla_nas.module.Module` with MixedOps).

        Args:
            model: the supernet.
            name: the space's name (default: the model's ``space_name``, else ``"custom"``).

        Raises:
            ConfigError: the model has no choice, or MixedOps sharing a label disagree on
                their candidates.
        """
        from ..module import choice_groups

        choices: OrderedDict[str, tuple[str, ...]] = OrderedDict()
        for label, ops in choice_groups(model).items():
            names = {tuple(op.names) for op in ops}
            if len(names) > 1:
                raise ConfigError(
                    f"the MixedOps labelled {label!r} are one decision but have different "
                    f"candidates: {sorted(names)}; give them the same candidates or other labels",
                    "network",
                )
            choices[label] = next(iter(names))
        return cls(choices, name or getattr(model, "space_name", "") or "custom")

    # ------------------------------------------------------------------ size and order

    @property
    def labels(self) -> list[str]:
        """The decisions' labels, in order."""
        return list(self.choices)

    def num_candidates(self, label: str) -> int:
        """How many candidates decision ``label`` has."""
        return len(self.choices[label])

    @property
    def size(self) -> int:
        """The number of architectures (the product of the candidate counts)."""
        return math.prod(len(names) for names in self.choices.values())

    def __len__(self) -> int:
        return len(self.choices)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SearchSpace):
            return NotImplemented
        return self.name == other.name and list(self.choices.items()) == list(other.choices.items())

    def __repr__(self) -> str:
        return f"SearchSpace({self.name!r}, {len(self)} choices, {self.size} architectures)"

    def to_dict(self) -> dict[str, Any]:
        """``{"name": ..., "choices": {label: [names]}}`` (JSON-serialisable)."""
        return {"name": self.name, "choices": {k: list(v) for k, v in self.choices.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchSpace:
        """The inverse of :meth:`to_dict`."""
        return cls(data["choices"], data.get("name", "custom"))

    # ------------------------------------------------------------------ architectures

    def check(self, architecture: Mapping[str, int], key: str = "architecture") -> Architecture:
        """``architecture`` as a plain ``{label: int}`` in space order.

        Raises:
            ConfigError: a label is missing or unknown, or an index is out of range.
        """
        unknown = [k for k in architecture if k not in self.choices]
        missing = [k for k in self.choices if k not in architecture]
        if unknown or missing:
            raise ConfigError(
                f"does not match the space: unknown labels {unknown[:5]}, missing {missing[:5]}",
                key,
            )
        out: Architecture = {}
        for label, names in self.choices.items():
            index = architecture[label]
            if (
                isinstance(index, bool)
                or not isinstance(index, (int, np.integer))
                or not (0 <= int(index) < len(names))
            ):
                raise ConfigError(
                    f"choice {label!r}: index {index!r} is not in 0..{len(names) - 1}", key
                )
            out[label] = int(index)
        return out

    def genotype(self, architecture: Mapping[str, int]) -> OrderedDict[str, str]:
        """``{label: candidate name}`` of an architecture, in space order."""
        return OrderedDict(
            (label, names[int(architecture[label])]) for label, names in self.choices.items()
        )

    def from_genotype(self, genotype: Mapping[str, str], key: str = "genotype") -> Architecture:
        """The architecture of ``{label: candidate name}``.

        Raises:
            ConfigError: a label is missing or unknown, or a name is not a candidate.
        """
        index: dict[str, int] = {}
        for label, name in genotype.items():
            if label not in self.choices or name not in self.choices[label]:
                valid = list(self.choices.get(label, ()))
                raise ConfigError(f"{label!r} -> {name!r} is not in the space (valid: {valid})",
                                  key)  # fmt: skip
            index[label] = self.choices[label].index(name)
        return self.check(index, key)

    def key(self, architecture: Mapping[str, int]) -> str:
        """A canonical string of an architecture (its indices in space order), for sets."""
        return json.dumps([int(architecture[label]) for label in self.choices])

    def architecture(self, index: int) -> Architecture:
        """The ``index``-th architecture of :meth:`__iter__`'s order (mixed radix, the last
        decision varying fastest)."""
        if not 0 <= index < self.size:
            raise IndexError(f"architecture index {index} is not in 0..{self.size - 1}")
        out: Architecture = {}
        for label in reversed(self.choices):
            n = len(self.choices[label])
            index, out[label] = divmod(int(index), n)
        return {label: out[label] for label in self.choices}

    def random(self, rng: np.random.Generator) -> Architecture:
        """An architecture drawn uniformly (one ``rng.integers`` call per decision)."""
        return {label: int(rng.integers(len(names))) for label, names in self.choices.items()}

    def __iter__(self) -> Iterator[Architecture]:
        """Every architecture, the last decision varying fastest."""
        sizes = [len(v) for v in self.choices.values()]
        for flat in np.ndindex(*sizes):
            yield dict(zip(self.choices, map(int, flat)))

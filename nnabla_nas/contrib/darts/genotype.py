"""The DARTS cell genotype (``arch.json``) and its derivation from the architecture logits.

A cell has two input nodes, numbered 0 (``c_{k-2}``, the output of the cell before the previous
one) and 1 (``c_{k-1}``), and intermediate nodes numbered 2, 3, ...; its output concatenates the
nodes of ``concat``. The genotype lists, for every intermediate node in order, its incoming edges
``(candidate, input node)``: two per node in DARTS, so ``normal[2*i]`` and ``normal[2*i+1]`` feed
node ``i + 2``. ``arch.json`` holds the paper's ``Genotype`` namedtuple as JSON::

    {"normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ...], "normal_concat": [2, 3, 4, 5],
     "reduce": [["max_pool_3x3", 0], ...], "reduce_concat": [2, 3, 4, 5],
     "search_space": "darts"}

(``search_space`` is optional on reading.) The choice labels of the search network follow the
same numbering: ``edge_<node>_<input>`` is the edge from node ``<input>`` into node ``<node>``.

Derivation (the paper's section 2.4, ``Network.genotype()`` of the reference code): per edge the
softmax of its logits; per intermediate node the ``k = 2`` incoming edges whose strongest
non-``none`` candidate is the most probable (ties: the lower input first), each with that
candidate; ``concat`` is the last ``multiplier`` intermediate nodes.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ...errors import GenotypeError
from ...module import softmax
from ...utils.io import atomic_write_text
from .ops import PRIMITIVES

__all__ = [
    "DARTS_V1",
    "DARTS_V2",
    "CellGenotype",
    "CellSpec",
    "argmax_nodes",
    "derive_genotype",
    "derive_nodes",
    "edge_label",
    "edge_weights",
    "parse_edge_label",
    "specs_from_logits",
]

logger = logging.getLogger(__name__)

Edge = tuple[str, int]  # (candidate, input node)
_EDGE = re.compile(r"(?:^|/)edge_(\d+)_(\d+)(?:/alpha)?$")
CELL_KINDS = ("normal", "reduce")


def edge_label(node: int, inp: int) -> str:
    """``edge_<node>_<input>``: the edge from node ``inp`` into node ``node``."""
    return f"edge_{node}_{inp}"


def parse_edge_label(label: str) -> tuple[int, int] | None:
    """``".../edge_3_1"`` (or ``".../edge_3_1/alpha"``) -> ``(3, 1)``; None if not an edge."""
    match = _EDGE.search(label)
    return (int(match.group(1)), int(match.group(2))) if match else None


@dataclass
class CellSpec:
    """One cell of a fixed network.

    Attributes:
        nodes: per intermediate node (numbered 2, 3, ...), its incoming edges
            ``(candidate, input node)``; may be empty (the node is then zero).
        concat: the nodes concatenated into the cell's output.
    """

    nodes: list[list[Edge]]
    concat: list[int]


@dataclass
class CellGenotype:
    """A DARTS genotype: the normal and the reduction cell, two edges per intermediate node."""

    normal: list[Edge]
    normal_concat: list[int]
    reduce: list[Edge]
    reduce_concat: list[int]

    def cell(self, kind: str) -> CellSpec:
        """The ``normal`` or ``reduce`` cell as a :class:`CellSpec` (two edges per node)."""
        edges = list(getattr(self, kind))
        nodes = [edges[i : i + 2] for i in range(0, len(edges), 2)]
        return CellSpec(nodes, list(getattr(self, f"{kind}_concat")))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (lists, as the paper's namedtuple printed)."""
        out: dict[str, Any] = {}
        for kind in CELL_KINDS:
            out[kind] = [[op, int(j)] for op, j in getattr(self, kind)]
            out[f"{kind}_concat"] = [int(j) for j in getattr(self, f"{kind}_concat")]
        return out

    def save(self, path: str | os.PathLike, space: str = "darts") -> Path:
        """Writes ``arch.json`` atomically (with ``search_space``), one key per line; returns the
        path."""
        path = Path(path)
        items = {**self.to_dict(), "search_space": space}.items()
        text = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in items)
        atomic_write_text(path, "{\n" + text + "\n}\n")
        return path

    @classmethod
    def from_dict(cls, data: Any, source: str = "the cell genotype") -> CellGenotype:
        """Validates and builds a genotype from its JSON form.

        Raises:
            GenotypeError: a key is missing or unknown, a candidate is not a DARTS candidate, an
                input refers to a later node, or a ``concat`` index is out of range (``source``
                named).
        """
        keys = [k for kind in CELL_KINDS for k in (kind, f"{kind}_concat")]
        if not isinstance(data, Mapping):
            raise GenotypeError(f"{source}: expected a JSON object with the keys {keys}")
        missing = [k for k in keys if k not in data]
        unknown = [k for k in data if k not in (*keys, "search_space")]
        if missing or unknown:
            raise GenotypeError(
                f"{source} is not a DARTS cell genotype: missing keys {missing}, unknown keys "
                f"{unknown}; expected {keys} (as the arch.json a DARTS search writes)"
            )
        parts: dict[str, Any] = {}
        for kind in CELL_KINDS:
            edges = _edges(data[kind], f"{source}: {kind!r}")
            num_nodes = len(edges) // 2
            for i, (_, j) in enumerate(edges):
                if not 0 <= j < 2 + i // 2:
                    raise GenotypeError(
                        f"{source}: {kind}[{i}] takes input {j}, but node {2 + i // 2} can only "
                        f"take the inputs 0..{1 + i // 2} (0, 1: the cell inputs; 2..: earlier "
                        "nodes)"
                    )
            concat = data[f"{kind}_concat"]
            valid = isinstance(concat, list) and concat and all(_is_int(j) for j in concat)
            if not valid or not all(0 <= j < 2 + num_nodes for j in concat):
                raise GenotypeError(
                    f"{source}: {kind}_concat must be a non-empty list of node numbers in "
                    f"0..{1 + num_nodes}, got {concat!r}"
                )
            parts[kind] = edges
            parts[f"{kind}_concat"] = [int(j) for j in concat]
        return cls(**parts)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _edges(value: Any, where: str) -> list[Edge]:
    if not isinstance(value, list) or not value or len(value) % 2:
        raise GenotypeError(
            f"{where} must be a non-empty list of [candidate, input] pairs, two per node; "
            f"got {value!r}"
        )
    edges = []
    for i, item in enumerate(value):
        ok = isinstance(item, (list, tuple)) and len(item) == 2
        if not ok or not isinstance(item[0], str) or not _is_int(item[1]):
            raise GenotypeError(f"{where}[{i}] must be a [candidate, input] pair, got {item!r}")
        if item[0] not in PRIMITIVES:
            raise GenotypeError(
                f"{where}[{i}]: unknown candidate {item[0]!r}; valid: {', '.join(PRIMITIVES)}"
            )
        edges.append((item[0], int(item[1])))
    return edges


def derive_nodes(
    weights: Mapping[tuple[int, int], np.ndarray],
    num_nodes: int,
    names: Sequence[str] = PRIMITIVES,
    k: int = 2,
) -> list[list[Edge]]:
    """The ``k`` strongest incoming edges of every intermediate node, ``none`` excluded.

    Args:
        weights: ``(node, input) -> probabilities of the candidates`` for every edge.
        num_nodes: the intermediate nodes (numbered ``2 .. num_nodes + 1``).
        names: the candidates' names, in the order of the probabilities.
        k: edges kept per node (at most the node's number of inputs).

    Raises:
        GenotypeError: an edge is missing.
    """
    names = list(names)
    keep = [i for i, n in enumerate(names) if n != "none"]
    nodes = []
    for node in range(2, 2 + num_nodes):
        missing = [(node, j) for j in range(node) if (node, j) not in weights]
        if missing:
            labels = [edge_label(*e) for e in missing]
            raise GenotypeError(f"the architecture has no logits for the edges {labels}")
        probs = {
            j: np.asarray(weights[(node, j)], dtype=np.float64).reshape(-1) for j in range(node)
        }
        strength = {j: max(probs[j][i] for i in keep) for j in range(node)}
        chosen = sorted(range(node), key=lambda j: -strength[j])[:k]  # stable: ties keep order
        nodes.append([(names[max(keep, key=lambda i, j=j: probs[j][i])], j) for j in chosen])
    return nodes


def edge_weights(
    logits: Mapping[str, np.ndarray], prefix: str
) -> dict[tuple[int, int], np.ndarray]:
    """The softmax probabilities of the edges whose label starts with ``prefix``.

    Args:
        logits: ``label or parameter path -> logits`` (e.g. ``normal/edge_2_0`` or
            ``cells/3/edge_2_0/alpha``).
        prefix: e.g. ``"normal/"`` or ``"cells/3/"``.
    """
    out = {}
    for path, value in logits.items():
        edge = parse_edge_label(path) if path.startswith(prefix) else None
        if edge is not None and "/" not in path[len(prefix) :].removesuffix("/alpha"):
            out[edge] = softmax(value)
    return out


def argmax_nodes(weights: Mapping[tuple[int, int], np.ndarray], num_nodes: int) -> list[list[Edge]]:
    """Every edge with its most probable candidate, ``none`` edges dropped (``pnas``).

    Raises:
        GenotypeError: an edge is missing.
    """
    nodes = []
    for node in range(2, 2 + num_nodes):
        missing = [edge_label(node, j) for j in range(node) if (node, j) not in weights]
        if missing:
            raise GenotypeError(f"the architecture has no logits for the edges {missing}")
        ops = [(PRIMITIVES[int(np.argmax(weights[(node, j)]))], j) for j in range(node)]
        nodes.append([(op, j) for op, j in ops if op != "none"])
    return nodes


def specs_from_logits(
    logits: Mapping[str, np.ndarray],
    num_cells: int,
    reductions: set[int],
    multiplier: int,
    per_edge: bool,
    where: str = "the genotype",
) -> list[CellSpec]:
    """The cells of a fixed network from the logits of a search (an ``arch.h5``).

    Args:
        logits: ``normal/edge_<i>_<j>`` and ``reduce/...`` (shared search) or
            ``cells/<k>/edge_<i>_<j>/alpha`` (one architecture per cell).
        num_cells: the cells of the network (a search per cell must have as many).
        reductions: the indices of the reduction cells.
        multiplier: each cell concatenates its last ``multiplier`` nodes.
        per_edge: keep every edge's argmax (:func:`argmax_nodes`) instead of the two strongest
            edges per node (:func:`derive_nodes`).
        where: names the genotype in error messages.

    Raises:
        GenotypeError: cells or edges are missing, or there are fewer nodes than
            ``multiplier`` (key ``genotype``).
    """
    shared = any(k.startswith(("normal/", "reduce/")) for k in logits)
    if not shared:
        searched = {k.split("/")[1] for k in logits if k.startswith("cells/")}
        if len(searched) != num_cells:
            raise GenotypeError(
                f"{where} has logits for {len(searched)} cells, the network has num_cells "
                f"{num_cells}: set num_cells as in the search",
                key="genotype",
            )
    specs = []
    for i in range(num_cells):
        kind = "reduce" if i in reductions else "normal"
        weights = edge_weights(logits, f"{kind}/" if shared else f"cells/{i}/")
        if not weights:
            raise GenotypeError(
                f"{where} has no architecture logits for cell {i} ({kind}): was it searched in "
                f"this space with num_cells {num_cells}?",
                key="genotype",
            )
        num_nodes = max(node for node, _ in weights) - 1
        if multiplier > num_nodes:
            raise GenotypeError(
                f"{where}: cell {i} has {num_nodes} nodes, fewer than multiplier {multiplier}",
                key="genotype",
            )
        try:
            nodes = (
                argmax_nodes(weights, num_nodes) if per_edge else derive_nodes(weights, num_nodes)
            )
        except GenotypeError as err:
            raise GenotypeError(f"{where}, cell {i}: {err.message}", key="genotype") from None
        specs.append(CellSpec(nodes, list(range(2 + num_nodes - multiplier, 2 + num_nodes))))
    return specs


def derive_genotype(
    normal: Mapping[tuple[int, int], np.ndarray],
    reduce: Mapping[tuple[int, int], np.ndarray],
    num_nodes: int,
    multiplier: int,
) -> CellGenotype:
    """The DARTS genotype of the edge probabilities of a normal and a reduction cell."""
    concat = list(range(2 + num_nodes - multiplier, 2 + num_nodes))
    flat = {
        kind: [e for node in derive_nodes(w, num_nodes) for e in node]
        for kind, w in (("normal", normal), ("reduce", reduce))
    }
    return CellGenotype(flat["normal"], concat, flat["reduce"], list(concat))


#: DARTS (first order), the paper's published CIFAR-10 cells (``genotypes.DARTS_V1``).
DARTS_V1 = CellGenotype(
    normal=[("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 0), ("sep_conv_3x3", 1),
            ("skip_connect", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 2)],
    normal_concat=[2, 3, 4, 5],
    reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 0),
            ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("avg_pool_3x3", 0)],
    reduce_concat=[2, 3, 4, 5],
)  # fmt: skip

#: DARTS (second order), the paper's published CIFAR-10 cells (``genotypes.DARTS_V2``).
DARTS_V2 = CellGenotype(
    normal=[("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)],
    normal_concat=[2, 3, 4, 5],
    reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
            ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)],
    reduce_concat=[2, 3, 4, 5],
)  # fmt: skip

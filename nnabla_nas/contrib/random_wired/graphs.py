"""The random graphs of randomly wired networks (Xie et al., ICCV 2019, section 3.2 and 4).

Three classical generators, drawn with ``networkx`` (undirected graphs on nodes ``0 .. N-1``):

- ``ws`` -- Watts-Strogatz ``WS(K, P)``: a ring where every node is joined to its ``K/2``
  neighbours on each side (``K`` even), then every edge is rewired with probability ``P``
  (:func:`networkx.watts_strogatz_graph`; node indices follow the ring, as the paper);
- ``er`` -- Erdős-Rényi ``ER(P)``: every pair is an edge with probability ``P``
  (:func:`networkx.gnp_random_graph`);
- ``ba`` -- Barabási-Albert ``BA(M)``: nodes added one by one, each joined to ``M`` existing
  nodes by preferential attachment (:func:`networkx.barabasi_albert_graph`; nodes indexed in the
  order they are added, as the paper).

A graph becomes a DAG by its node indices: every edge is directed from the smaller index to the
larger. A stage's graph is reproducible from ``(seed, stage)`` (:func:`stage_seed`), and is
stored in the genotype (:meth:`StageGraph.to_arrays`) so that retraining does not depend on
``networkx``'s version.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import GenotypeError

__all__ = ["GENERATORS", "StageGraph", "random_graph", "stage_graph", "stage_seed"]

logger = logging.getLogger(__name__)

#: The generators, by the ``generator`` key's value.
GENERATORS = ("ws", "er", "ba")


def stage_seed(seed: int, stage: int) -> int:
    """The graph seed of stage ``stage`` (0-based) of a network of seed ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(stage)]).generate_state(1)[0])


def random_graph(generator: str, n: int, k: int, p: float, m: int, seed: int) -> Any:
    """The undirected ``networkx.Graph`` of ``generator`` on ``n`` nodes.

    Args:
        generator: ``ws``, ``er`` or ``ba``.
        n: nodes.
        k: WS: neighbours of each node on the initial ring (even).
        p: WS: rewiring probability; ER: edge probability.
        m: BA: edges of every added node.
        seed: the generator's seed.
    """
    import networkx as nx

    if generator == "ws":
        return nx.watts_strogatz_graph(n, k, p, seed=seed)
    if generator == "er":
        return nx.gnp_random_graph(n, p, seed=seed)
    if generator == "ba":
        return nx.barabasi_albert_graph(n, m, seed=seed)
    raise ValueError(f"unknown generator {generator!r}; valid: {', '.join(GENERATORS)}")


@dataclass(frozen=True)
class StageGraph:
    """The DAG of one stage.

    Attributes:
        channels: the output channels of every node ``0 .. N-1``.
        edges: ``(u, v)`` pairs with ``u < v`` (data flows from ``u`` to ``v``), sorted.
    """

    channels: tuple[int, ...]
    edges: tuple[tuple[int, int], ...]

    @property
    def num_nodes(self) -> int:
        return len(self.channels)

    def predecessors(self, v: int) -> list[int]:
        """The nodes whose outputs node ``v`` aggregates, in index order."""
        return [a for a, b in self.edges if b == v]

    def input_nodes(self) -> list[int]:
        """Nodes without predecessors: they take the stage's input."""
        has_pred = {b for _, b in self.edges}
        return [v for v in range(self.num_nodes) if v not in has_pred]

    def output_nodes(self) -> list[int]:
        """Nodes without successors: the stage's output averages them."""
        has_succ = {a for a, _ in self.edges}
        return [v for v in range(self.num_nodes) if v not in has_succ]

    def to_arrays(self) -> dict[str, np.ndarray]:
        """``{"edges": int32 (E, 2), "channels": int32 (N,)}`` (the genotype's datasets)."""
        edges = np.array(self.edges, dtype=np.int32).reshape(-1, 2)
        return {"edges": edges, "channels": np.array(self.channels, dtype=np.int32)}

    @classmethod
    def from_arrays(cls, edges: Any, channels: Any, where: str) -> StageGraph:
        """Validates and builds a graph read from a genotype.

        Raises:
            GenotypeError: the arrays are not ``(E, 2)`` integer edges ``u < v`` between existing
                nodes (no duplicates) and ``(N,)`` positive channels (``where`` named).
        """
        channels = np.asarray(channels)
        edges = np.asarray(edges)
        if (
            channels.ndim != 1
            or channels.size == 0
            or not np.issubdtype(channels.dtype, np.integer)
        ):
            raise GenotypeError(f"{where}: channels must be a non-empty list of integers")
        if (channels < 1).any():
            raise GenotypeError(f"{where}: node channels must be >= 1, got {channels.tolist()}")
        if edges.size and (edges.ndim != 2 or edges.shape[1] != 2):
            raise GenotypeError(f"{where}: edges must be (number of edges, 2), got {edges.shape}")
        if edges.size and not np.issubdtype(edges.dtype, np.integer):
            raise GenotypeError(f"{where}: edges must be integer node indices")
        pairs = [(int(a), int(b)) for a, b in edges.reshape(-1, 2)]
        n = int(channels.size)
        for a, b in pairs:
            if not 0 <= a < b < n:
                raise GenotypeError(
                    f"{where}: edge ({a}, {b}) is not from a node to a later one among the {n} "
                    "nodes (a DAG by node order)"
                )
        if len(set(pairs)) != len(pairs):
            raise GenotypeError(f"{where}: an edge is listed twice")
        return cls(tuple(int(c) for c in channels), tuple(sorted(pairs)))


def stage_graph(
    generator: str, n: int, channels: int, k: int, p: float, m: int, seed: int
) -> StageGraph:
    """A random stage: the generator's graph made a DAG by node order, every node ``channels``
    wide."""
    graph = random_graph(generator, n, k, p, m, seed)
    edges = sorted((min(a, b), max(a, b)) for a, b in graph.edges() if a != b)
    return StageGraph(tuple([int(channels)] * n), tuple(edges))

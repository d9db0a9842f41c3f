"""The cells of the ``enas_micro`` space (Pham et al., ICML 2018, section 2.4).

A cell has two input nodes, numbered 0 (the output of the cell before the previous one) and 1
(the previous cell's output), and ``B`` intermediate nodes numbered ``2 .. B+1``. Node ``i``
takes two inputs among the nodes ``0 .. i-1``, applies one operation of
:data:`~.ops.MICRO_OPS` to each, and adds them. The cell's output combines its *loose ends*, the
nodes no node takes as input. A reduction cell is sampled the same way, its operations on the two
input nodes having stride 2.

Both inputs are first brought to the cell's ``C`` channels and size (as the reference code): node
0 by ReLU + factorized reduction when the previous cell halved the size, else a ReLU - 1x1 conv -
BN when its channels differ; node 1 by ReLU - 1x1 conv - BN when its channels differ, then always
a ReLU - 1x1 conv - BN.

Decisions, per cell type ``kind`` (``normal`` or ``reduce``; every cell of a type shares them),
for node ``i`` and its inputs ``s = 0, 1``: ``<kind>/node<i>/input<s>`` (candidates ``node0 ..
node<i-1>``) and ``<kind>/node<i>/op<s>``. An input choice is a MixedOp whose candidate ``j`` is
an :class:`~.ops.Edge` taking node ``j`` through its own operation choice: the operation's
weights belong to the edge ``j -> i`` (and input slot), as ENAS shares weights per DAG edge.

- :class:`SearchCell` (supernet): the output is ``BN(sum_k conv1x1_k(ReLU(h_k)))`` over the loose
  ends ``k``, ``C`` channels whatever the loose ends (the reference search cell's gathered 1x1
  conv); the loose ends are read from the candidates the input choices ran
  (``MixedOp.active_index``), all intermediate nodes when a choice ran every candidate (``full``
  mode).
- :class:`FixedCell` (retraining): the output concatenates the loose ends (``C`` channels each;
  a loose input node of a reduction cell is halved by a factorized reduction), with drop-path
  on every operation but the identity.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Mapping, Sequence

import nnabla as nn
import nnabla.functions as F
import numpy as np

from ...module import BatchNormalization, Conv, Identity, MixedOp, Module, ModuleList, Sequential
from ..darts.genotype import CellSpec
from ..darts.network import DropPath, node_sum
from ..darts.ops import FactorizedReduce, ReLUConvBN
from ..decisions import Decision
from .ops import MICRO_OPS, Edge, micro_op

__all__ = ["CELL_KINDS", "FixedCell", "SearchCell", "cell_spec", "micro_decisions"]

logger = logging.getLogger(__name__)

CELL_KINDS = ("normal", "reduce")
Rng = np.random.RandomState


def micro_decisions(kind: str, num_nodes: int) -> list[Decision]:
    """The decisions of one cell type, in choice order (per node: input0, op0, input1, op1)."""
    out = []
    for i in range(2, 2 + num_nodes):
        node = f"{kind}/node{i}"
        sources = tuple(f"{kind}/node{j}" for j in range(i))
        names = tuple(f"node{j}" for j in range(i))
        for s in (0, 1):
            out.append(Decision(f"{node}/input{s}", "input", names, node, sources))
            out.append(Decision(f"{node}/op{s}", "op", MICRO_OPS, node))
    return out


def cell_spec(genotype: Mapping[str, str], kind: str, num_nodes: int) -> CellSpec:
    """The ``kind`` cell of a genotype: per intermediate node its two ``(operation, input)``,
    and its loose ends (the nodes no node takes as input) as ``concat``."""
    nodes, used = [], set()
    for i in range(2, 2 + num_nodes):
        edges = []
        for s in (0, 1):
            j = int(genotype[f"{kind}/node{i}/input{s}"].removeprefix("node"))
            edges.append((genotype[f"{kind}/node{i}/op{s}"], j))
            used.add(j)
        nodes.append(edges)
    return CellSpec(nodes, [k for k in range(2 + num_nodes) if k not in used])


def cell_inputs(
    c0: int, c1: int, channels: int, reduce_s0: bool, rng: Rng
) -> tuple[Module, Module]:
    """The two input nodes' modules (see the module docstring)."""
    if reduce_s0:
        pre0: Module = FactorizedReduce(c0, channels, True, rng)
    elif c0 != channels:
        pre0 = ReLUConvBN(c0, channels, 1, rng=rng)
    else:
        pre0 = Identity()
    base = ReLUConvBN(channels, channels, 1, rng=rng)
    pre1 = Sequential(ReLUConvBN(c1, channels, 1, rng=rng), base) if c1 != channels else base
    return pre0, pre1


class _Node(Module):
    """The two input choices of a supernet node (each holding its edges' operation choices)."""

    def __init__(self, kind: str, i: int, channels: int, reduction: bool, mode: str, rng: Rng):
        for s in (0, 1):
            edges = []
            for j in range(i):
                stride = 2 if reduction and j < 2 else 1
                ops = [micro_op(n, channels, stride, rng) for n in MICRO_OPS]
                op = MixedOp(ops, mode=mode, names=MICRO_OPS, label=f"{kind}/node{i}/op{s}")
                edges.append(Edge(j, op))
            names = [f"node{j}" for j in range(i)]
            label = f"{kind}/node{i}/input{s}"
            setattr(self, f"input{s}", MixedOp(edges, mode=mode, names=names, label=label))


class SearchCell(Module):
    """A supernet cell (see the module docstring).

    Args:
        kind: ``normal`` or ``reduce`` (the labels' prefix; ``reduce`` has stride-2 inputs).
        num_nodes: ``B``, the intermediate nodes.
        c0, c1: channels of the two inputs; ``reduce_s0``: input 0 is twice as large.
        channels: ``C``.
        mode: the MixedOps' mode.
        rng: weight initialisation.
    """

    def __init__(
        self,
        kind: str,
        num_nodes: int,
        c0: int,
        c1: int,
        channels: int,
        reduce_s0: bool,
        mode: str,
        rng: Rng,
    ) -> None:
        reduction = kind == "reduce"
        self.pre0, self.pre1 = cell_inputs(c0, c1, channels, reduce_s0, rng)
        self.nodes = ModuleList(
            _Node(kind, i, channels, reduction, mode, rng) for i in range(2, 2 + num_nodes)
        )
        self.out_convs = ModuleList(
            Conv(channels, channels, 1, with_bias=False, rng=rng) for _ in range(2 + num_nodes)
        )
        if reduction:  # a loose input node must be halved like the intermediate nodes
            self.out_reduce = ModuleList(
                FactorizedReduce(channels, channels, True, rng, relu=False) for _ in range(2)
            )
        self.out_bn = BatchNormalization(channels, 4)
        self.out_channels = channels

    def call(self, s0: nn.Variable, s1: nn.Variable) -> nn.Variable:
        states = [self.pre0(s0), self.pre1(s1)]
        used: set[int] = set()
        every = False
        for node in self.nodes:
            out = None
            for choice in (node.input0, node.input1):
                h = choice(*states)
                out = h if out is None else out + h
                if choice.active_index is None:
                    every = True
                else:
                    used.add(int(choice.active_index))
            states.append(out)
        n = len(states)
        loose = range(2, n) if every else [k for k in range(n) if k not in used]
        total = None
        for k in loose:
            h = states[k]
            if k < 2 and "out_reduce" in self.modules:
                h = self.out_reduce[k](h)
            h = self.out_convs[k](F.relu(h))
            total = h if total is None else total + h
        return self.out_bn(total)


class FixedCell(Module):
    """A retraining cell (see the module docstring).

    Args:
        spec: the cell (:func:`cell_spec`): nodes' ``(operation, input)`` pairs, loose ends.
        reduction: stride 2 on the edges leaving nodes 0 and 1.
        c0, c1, channels, reduce_s0: as :class:`SearchCell`.
        drop_path: applied to every operation's output but the identity's (None: none).
        rng: weight initialisation.
    """

    def __init__(
        self,
        spec: CellSpec,
        reduction: bool,
        c0: int,
        c1: int,
        channels: int,
        reduce_s0: bool,
        drop_path: DropPath | None,
        rng: Rng,
    ) -> None:
        self.spec = spec
        self.pre0, self.pre1 = cell_inputs(c0, c1, channels, reduce_s0, rng)
        self._wiring: list[list[tuple[str, int, bool]]] = []  # (attribute, input, droppable)
        for i, edges in enumerate(spec.nodes, start=2):
            wired = []
            for s, (op, j) in enumerate(edges):
                name = f"node{i}_{s}"
                setattr(self, name, micro_op(op, channels, 2 if reduction and j < 2 else 1, rng))
                wired.append((name, j, op != "identity"))
            self._wiring.append(wired)
        self._reduce_loose = OrderedDict()
        for k in spec.concat:
            if reduction and k < 2:
                name = f"loose{k}"
                setattr(self, name, FactorizedReduce(channels, channels, True, rng, relu=False))
                self._reduce_loose[k] = name
        if drop_path is not None:
            self.drop_path = drop_path
        self.out_channels = channels * len(spec.concat)

    def call(self, s0: nn.Variable, s1: nn.Variable) -> nn.Variable:
        states = [self.pre0(s0), self.pre1(s1)]
        for wired in self._wiring:
            states.append(node_sum(self, wired, states))
        outs: Sequence[nn.Variable] = [
            getattr(self, self._reduce_loose[k])(h) if k in self._reduce_loose else h
            for k, h in ((k, states[k]) for k in self.spec.concat)
        ]
        return F.concatenate(*outs, axis=1) if len(outs) > 1 else outs[0]

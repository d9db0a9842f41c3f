"""The modules of a randomly wired stage (Xie et al., ICCV 2019, section 3.2 "Node operations").

Every node of a stage's DAG (:class:`~.graphs.StageGraph`):

- aggregates its inputs by a weighted sum with learnable positive weights,
  ``sum_i sigmoid(w_i) x_i`` (:class:`WeightedSum`; ``w`` starts at 0, a node with one input
  takes it as it is);
- transforms the sum by a ReLU - separable convolution (3x3 depthwise, then 1x1) - BN triplet
  (:class:`SepConvTriplet`), with stride 2 on the input nodes (those that take the stage's
  input), which halves the resolution at every stage;
- sends its output to every successor.

The stage's output is the plain average of its output nodes (nodes without successors), the
paper's extra output node; its input goes to every input node, the extra input node. Neither
does a convolution.
"""

from __future__ import annotations

import logging

import nnabla as nn
import nnabla.functions as F
import numpy as np

from ...module import BatchNormalization, Conv, DwConv, Module, ModuleList, Parameter, ReLU
from .graphs import StageGraph

__all__ = ["Node", "SepConvTriplet", "Stage", "WeightedSum"]

logger = logging.getLogger(__name__)


class WeightedSum(Module):
    """``sum_i sigmoid(w_i) * x_i`` over ``n`` inputs of the same shape (``w`` of shape
    ``(n, 1, 1, 1, 1)``, zeros: every weight starts at 0.5)."""

    def __init__(self, n: int) -> None:
        self.weight = Parameter((n, 1, 1, 1, 1))

    def call(self, *inputs: nn.Variable) -> nn.Variable:
        stacked = F.stack(*inputs, axis=0)
        return F.sum(F.sigmoid(self.weight) * stacked, axis=0)


class SepConvTriplet(Module):
    """ReLU - depthwise 3x3 (``stride``) - pointwise 1x1 to ``out_channels`` - BN; no biases."""

    def __init__(
        self, in_channels: int, out_channels: int, stride: int, rng: np.random.RandomState
    ) -> None:
        self.relu = ReLU()
        self.dw = DwConv(in_channels, (3, 3), pad=(1, 1), stride=(stride, stride),
                         with_bias=False, rng=rng)  # fmt: skip
        self.pw = Conv(in_channels, out_channels, (1, 1), with_bias=False, rng=rng)
        self.bn = BatchNormalization(out_channels, 4)

    def call(self, x: nn.Variable) -> nn.Variable:
        return self.bn(self.pw(self.dw(self.relu(x))))


class Node(Module):
    """One node: aggregation of ``in_degree`` inputs (none for one input), then the triplet."""

    def __init__(
        self,
        in_degree: int,
        in_channels: int,
        out_channels: int,
        stride: int,
        rng: np.random.RandomState,
    ) -> None:
        if in_degree > 1:
            self.aggregate = WeightedSum(in_degree)
        self.transform = SepConvTriplet(in_channels, out_channels, stride, rng)

    def call(self, *inputs: nn.Variable) -> nn.Variable:
        x = self.aggregate(*inputs) if len(inputs) > 1 else inputs[0]
        return self.transform(x)


class Stage(Module):
    """A randomly wired stage: the nodes of ``graph`` at ``nodes/<v>``.

    Args:
        graph: the DAG (node ``v``'s width is ``graph.channels[v]``; the predecessors of a node
            must all have the same width).
        in_channels: the channels of the stage's input.
        rng: weight initialisation.

    Raises:
        ValueError: a node aggregates inputs of different widths.
    """

    def __init__(self, graph: StageGraph, in_channels: int, rng: np.random.RandomState) -> None:
        self.graph = graph
        self._preds = [graph.predecessors(v) for v in range(graph.num_nodes)]
        nodes = []
        for v, preds in enumerate(self._preds):
            widths = {graph.channels[u] for u in preds} if preds else {in_channels}
            if len(widths) > 1:
                raise ValueError(f"node {v} aggregates inputs of different widths {widths}")
            stride = 1 if preds else 2
            nodes.append(Node(len(preds), widths.pop(), graph.channels[v], stride, rng))
        self.nodes = ModuleList(nodes)
        self._outputs = graph.output_nodes()
        widths = {graph.channels[v] for v in self._outputs}
        if len(widths) > 1:
            raise ValueError(f"the output nodes have different widths {widths}")
        self.out_channels = widths.pop()

    def call(self, x: nn.Variable) -> nn.Variable:
        outs: list[nn.Variable] = []
        for node, preds in zip(self.nodes, self._preds):
            outs.append(node(*[outs[u] for u in preds]) if preds else node(x))
        ends = [outs[v] for v in self._outputs]
        if len(ends) == 1:
            return ends[0]
        total = ends[0]
        for end in ends[1:]:  # Add2 rather than AddN: ONNX can express it (nnabla-nas export)
            total = F.add2(total, end)
        return F.mul_scalar(total, 1.0 / len(ends))

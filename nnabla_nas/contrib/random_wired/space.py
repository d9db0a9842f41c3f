"""The ``random_wired`` space: randomly wired networks (Xie, Kirillov, Girshick and He, "Exploring
Randomly Wired Neural Networks for Image Recognition", ICCV 2019).

A fixed network, drawn at construction (no architecture choice: it is trained with the Trainer)::

   input -> stem: conv 3x3 (C/2, stride stem_strides[0]) + BN, then for every further stride
            ReLU - conv 3x3 (C) - BN
         -> one random graph per stage (stage s: 2^s C channels, C = min_channels, up to
            max_channels; stride 2 on its input nodes; see .network)
         -> ReLU - conv 1x1 (head_channels) - BN - ReLU - global average pooling
         -> linear classifier (n_classes)

The number of stages is ``log2(max_channels / min_channels) + 1`` (the widths double from stage
to stage). Every graph has ``n_vertices`` nodes (the first ``n_vertices_first`` when given: the
regular regime's ``N/2``) and is drawn by ``generator`` with its own seed
(:func:`~.graphs.stage_seed` of ``seed`` and the stage). Presets (:data:`PRESETS`): the paper's
``small`` regime (Table 1: conv1 C/2 and conv2 C, both stride 2, then 3 stages C, 2C, 4C; C = 78)
and ``regular`` regime (conv1 C/2 stride 2, then 4 stages C .. 8C, the first of N/2 nodes;
C = 109), both WS(4, 0.75) with N = 32, for 224x224 ImageNet inputs.

The genotype (``arch.h5``, written by :meth:`RandomWiredSpace.export_files` when a Trainer run
starts) is the graph of every stage: datasets ``graphs/stage_<i>/edges`` (int32 ``(E, 2)``,
``u < v``) and ``graphs/stage_<i>/channels`` (int32 ``(N,)``), plus the generator's settings in
its ``extra``; ``network.genotype`` (or ``param_path``) rebuilds exactly that network.

Not implemented: the paper's training recipe (label smoothing, its schedules) and its ablations
(other node transformations and aggregations, the FLOPs-matched ResNet/ResNeXt-style baselines).
"""

from __future__ import annotations

import logging
import math
import re
import shutil
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import nnabla as nn
import numpy as np

from ...errors import ConfigError, GenotypeError
from ...genotype import Genotype, save_genotype
from ...module import (
    BatchNormalization,
    Conv,
    GlobalAvgPool,
    Linear,
    ModuleList,
    ReLU,
    Sequential,
)
from ...visualize import ArchEdge, ArchGraph, ArchNode, draw_architecture
from ..model import Model
from .graphs import GENERATORS, StageGraph, stage_graph, stage_seed
from .network import Stage

__all__ = ["PRESETS", "RandomWiredConfig", "RandomWiredSpace"]

logger = logging.getLogger(__name__)

_DATASET = re.compile(r"^graphs/stage_(\d+)/(edges|channels)$")

#: The paper's regimes for ImageNet (Xie et al., Table 1), WS(4, 0.75), N = 32.
PRESETS: dict[str, dict] = {
    "small": {"n_classes": 1000, "n_vertices": 32, "min_channels": 78, "max_channels": 312,
              "generator": "ws", "k": 4, "p": 0.75, "stem_strides": [2, 2]},
    "regular": {"n_classes": 1000, "n_vertices": 32, "n_vertices_first": 16,
                "min_channels": 109, "max_channels": 872, "generator": "ws", "k": 4, "p": 0.75,
                "stem_strides": [2]},
}  # fmt: skip


@dataclass
class RandomWiredConfig:
    """The ``network`` keys of the ``random_wired`` space (besides ``search_space``).

    Attributes:
        name: a free name of the network (seed-era files have it; only logged).
        n_classes: classifier outputs.
        n_vertices: nodes of every stage's graph (``N``).
        n_vertices_first: nodes of the first stage's graph (default ``n_vertices``).
        min_channels: ``C``, the node width of the first stage.
        max_channels: the node width of the last stage; ``max_channels / min_channels`` is a
            power of two (every stage doubles the width): it gives the number of stages.
        generator: ``ws`` (Watts-Strogatz), ``er`` (Erdős-Rényi) or ``ba`` (Barabási-Albert).
        k: WS: each node's neighbours on the initial ring (even, < ``n_vertices``).
        p: WS: rewiring probability; ER: edge probability; in [0, 1].
        m: BA: edges of every added node (1 <= m < ``n_vertices``).
        seed: the graphs' seed (each stage draws with its own seed derived from it).
        stem_strides: the strides of the stem's 3x3 convolutions (the first to ``C/2``
            channels, the others to ``C``); ``[1]`` suits 32x32 images.
        head_channels: the 1x1 convolution before pooling.
        in_channels: input image channels (default: the experiment's ``input_shape[0]``).
        genotype: an ``arch.h5`` of this space: rebuilds its graphs.
        param_path: the seed-era name of ``genotype`` (moved there when checked).
    """

    name: str = "random_wired"
    n_classes: int = 10
    n_vertices: int = 32
    n_vertices_first: int | None = None
    min_channels: int = 78
    max_channels: int = 312
    generator: str = "ws"
    k: int = 4
    p: float = 0.75
    m: int = 5
    seed: int = 0
    stem_strides: list[int] = field(default_factory=lambda: [1])
    head_channels: int = 1280
    in_channels: int | None = None
    genotype: str | None = None
    param_path: str | None = None

    PRESETS: ClassVar[dict[str, dict]] = PRESETS

    def check(self) -> None:
        """Refuses impossible values with a ConfigError naming the key."""
        for key in ("n_classes", "n_vertices", "head_channels"):
            if getattr(self, key) < 1:
                raise ConfigError(f"must be >= 1, got {getattr(self, key)}", key=key)
        if self.n_vertices_first is not None and self.n_vertices_first < 1:
            raise ConfigError(f"must be >= 1, got {self.n_vertices_first}", "n_vertices_first")
        if self.in_channels is not None and self.in_channels < 1:
            raise ConfigError(f"must be >= 1, got {self.in_channels}", key="in_channels")
        if self.min_channels < 2:
            raise ConfigError(f"must be >= 2 (the stem has C/2), got {self.min_channels}",
                              key="min_channels")  # fmt: skip
        if self.min_channels > self.max_channels:
            raise ConfigError(
                f"min_channels {self.min_channels} is larger than max_channels "
                f"{self.max_channels}; the widths grow from min_channels to max_channels",
                key="min_channels",
            )
        ratio = self.max_channels / self.min_channels
        if self.max_channels % self.min_channels or 2 ** round(math.log2(ratio)) != ratio:
            raise ConfigError(
                f"max_channels / min_channels must be a power of two (each stage doubles the "
                f"width), got {self.max_channels} / {self.min_channels}",
                key="max_channels",
            )
        if not isinstance(self.generator, str) or self.generator.lower() not in GENERATORS:
            raise ConfigError(
                f"unknown generator {self.generator!r}; valid: ws (Watts-Strogatz), er "
                "(Erdős-Rényi), ba (Barabási-Albert)",
                key="generator",
            )
        self.generator = self.generator.lower()
        if not 0.0 <= self.p <= 1.0:
            raise ConfigError(f"must be a probability in [0, 1], got {self.p}", key="p")
        smallest = min(self.n_vertices, self.n_vertices_first or self.n_vertices)
        if self.generator == "ws" and (self.k % 2 or not 2 <= self.k < smallest):
            raise ConfigError(
                f"WS needs an even k with 2 <= k < n_vertices ({smallest}), got {self.k}", key="k"
            )
        if self.generator == "ba" and not 1 <= self.m < smallest:
            raise ConfigError(f"BA needs 1 <= m < n_vertices ({smallest}), got {self.m}", "m")
        if not self.stem_strides or min(self.stem_strides) < 1:
            raise ConfigError(
                f"expected a non-empty list of strides >= 1, got {self.stem_strides}",
                key="stem_strides",
            )
        if self.param_path is not None:
            if self.genotype is not None and self.genotype != self.param_path:
                raise ConfigError(
                    f"param_path {self.param_path!r} and genotype {self.genotype!r} differ: "
                    "param_path is the seed-era name of genotype, give one of them",
                    key="param_path",
                )
            self.genotype, self.param_path = self.param_path, None  # one name from here on

    def stage_widths(self) -> list[int]:
        """The node width of every stage: ``min_channels`` doubled up to ``max_channels``."""
        stages = round(math.log2(self.max_channels / self.min_channels)) + 1
        return [self.min_channels * 2**s for s in range(stages)]

    def stage_vertices(self) -> list[int]:
        """The nodes of every stage's graph."""
        n = len(self.stage_widths())
        return [self.n_vertices_first or self.n_vertices] + [self.n_vertices] * (n - 1)


class RandomWiredSpace(Model):
    """The ``random_wired`` space (see the module docstring).

    Args:
        cfg: the space's configuration.
        genotype: None (the graphs are drawn from ``cfg``), or a Genotype of this space (its
            graphs are rebuilt).
        rng: weight initialisation (default ``RandomState(0)``); the graphs come from
            ``cfg.seed`` only.

    Raises:
        ConfigError: an impossible configuration value (key named).
        GenotypeError: the genotype belongs to another space, or its graphs do not fit the
            configuration (stages, nodes or widths differ).
    """

    Config = RandomWiredConfig
    space_name: ClassVar[str] = "random_wired"
    searchable: ClassVar[bool] = False

    def __init__(
        self,
        cfg: RandomWiredConfig,
        genotype: Genotype | None = None,
        rng: np.random.RandomState | None = None,
    ) -> None:
        rng = self.prepare(cfg, genotype, rng)
        self.cfg = cfg
        self.in_channels = cfg.in_channels or 3
        if genotype is not None:
            self.graphs = self._graphs_from(genotype)
            keep = ("generator", "k", "p", "m", "seed")
            self._graph_info = {k: v for k, v in genotype.extra.items() if k in keep}
        else:
            self.graphs = self.draw_graphs(cfg)
            self._graph_info = {"generator": cfg.generator, "k": cfg.k, "p": cfg.p, "m": cfg.m,
                                "seed": cfg.seed}  # fmt: skip
        self.is_fixed = True
        c = cfg.min_channels
        stem = [Conv(self.in_channels, c // 2, 3, pad=1, stride=cfg.stem_strides[0],
                     with_bias=False, rng=rng), BatchNormalization(c // 2, 4)]  # fmt: skip
        prev = c // 2
        for stride in cfg.stem_strides[1:]:
            stem += [ReLU(), Conv(prev, c, 3, pad=1, stride=stride, with_bias=False, rng=rng),
                     BatchNormalization(c, 4)]  # fmt: skip
            prev = c
        self.stem = Sequential(*stem)
        stages = []
        for graph in self.graphs:
            stages.append(Stage(graph, prev, rng))
            prev = stages[-1].out_channels
        self.stages = ModuleList(stages)
        self.head = Sequential(
            ReLU(),
            Conv(prev, cfg.head_channels, 1, with_bias=False, rng=rng),
            BatchNormalization(cfg.head_channels, 4),
            ReLU(),
        )
        self.pool = GlobalAvgPool()
        self.classifier = Linear(cfg.head_channels, cfg.n_classes, rng=rng)

    @staticmethod
    def draw_graphs(cfg: RandomWiredConfig) -> list[StageGraph]:
        """The graphs of ``cfg``: stage ``s`` drawn with the seed ``stage_seed(cfg.seed, s)``."""
        return [
            stage_graph(cfg.generator, n, width, cfg.k, cfg.p, cfg.m, stage_seed(cfg.seed, s))
            for s, (n, width) in enumerate(zip(cfg.stage_vertices(), cfg.stage_widths()))
        ]

    def call(self, x: nn.Variable) -> nn.Variable:
        self.check_input(x)
        out = self.stem(x)
        for stage in self.stages:
            out = stage(out)
        return self.classifier(self.pool(self.head(out)))

    # ------------------------------------------------------------------ genotype
    def to_genotype(
        self,
        architecture: Mapping[str, int] | None = None,
        logits: Mapping[str, np.ndarray] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Genotype:
        """The graphs of every stage (datasets ``graphs/stage_<i>/edges`` and ``.../channels``,
        ``i`` from 1) and the generator's settings; no choices (``architecture`` and
        ``logits`` are empty for this fixed network)."""
        arrays = OrderedDict()
        for i, graph in enumerate(self.graphs, start=1):
            for name, value in graph.to_arrays().items():
                arrays[f"graphs/stage_{i}/{name}"] = value
        info = {**self._graph_info, "stages": len(self.graphs), **dict(extra or {})}
        return Genotype(self.space_name, OrderedDict(), arrays, info)

    def _graphs_from(self, genotype: Any) -> list[StageGraph]:
        where = self.genotype_source(genotype)
        if not isinstance(genotype, Genotype):
            raise GenotypeError(
                f"expected a Genotype of the random_wired space, got {type(genotype).__name__}",
                key="genotype",
            )
        found: dict[int, dict[str, np.ndarray]] = {}
        for path, value in genotype.logits.items():
            match = _DATASET.match(path)
            if match is None:
                raise GenotypeError(f"{where}: unexpected dataset {path!r} (a random_wired "
                                    "genotype holds graphs/stage_<i>/edges and .../channels)",
                                    key="genotype")  # fmt: skip
            found.setdefault(int(match.group(1)), {})[match.group(2)] = value
        widths, vertices = self.cfg.stage_widths(), self.cfg.stage_vertices()
        if sorted(found) != list(range(1, len(widths) + 1)):
            raise GenotypeError(
                f"{where} has the graphs of stages {sorted(found)}, the configuration has "
                f"{len(widths)} stages (min_channels {self.cfg.min_channels} to max_channels "
                f"{self.cfg.max_channels}); set them as in the run that wrote it",
                key="genotype",
            )
        graphs = []
        for i, (width, n) in enumerate(zip(widths, vertices), start=1):
            part = found[i]
            if set(part) != {"edges", "channels"}:
                raise GenotypeError(f"{where}: stage {i} lacks its edges or channels",
                                    key="genotype")  # fmt: skip
            try:
                graph = StageGraph.from_arrays(
                    part["edges"], part["channels"], f"{where}, stage {i}"
                )
            except GenotypeError as err:
                raise GenotypeError(err.message, key="genotype") from None
            if graph.num_nodes != n or set(graph.channels) != {width}:
                raise GenotypeError(
                    f"{where}: the graph of stage {i} has {graph.num_nodes} nodes of widths "
                    f"{sorted(set(graph.channels))}, the configuration gives {n} nodes of width "
                    f"{width} (n_vertices, min_channels, max_channels as in the run that wrote it)",
                    key="genotype",
                )
            graphs.append(graph)
        return graphs

    def export_files(
        self,
        folder: Path,
        architecture: Mapping[str, int] | None = None,
        probabilities: Mapping[str, np.ndarray] | None = None,
    ) -> list[Path]:
        """Writes ``arch.h5`` (the graphs) and ``arch.png`` (when graphviz's ``dot`` is
        installed); called once when a Trainer run starts."""
        folder = Path(folder)
        written = [save_genotype(folder / "arch.h5", self.to_genotype())]
        if shutil.which("dot") is not None:
            written.append(draw_architecture(self.arch_graph(()), folder / "arch.png"))
        return written

    def summary(self) -> str:
        """The graphs: nodes, edges, input and output nodes of every stage."""
        lines = [f"{type(self).__name__}: fixed network, {len(self.graphs)} random stages"]
        for i, g in enumerate(self.graphs, start=1):
            lines.append(f"stage {i}: {g.num_nodes} nodes x {g.channels[0]} channels, "
                         f"{len(g.edges)} edges, {len(g.input_nodes())} input and "
                         f"{len(g.output_nodes())} output nodes")  # fmt: skip
        return "\n".join(lines)

    # ------------------------------------------------------------------ drawing
    def arch_graph(
        self,
        input_shape: Sequence[int],
        architecture: Mapping[str, int] | None = None,
        probabilities: Mapping[str, np.ndarray] | None = None,
    ) -> ArchGraph:
        """Stem, every stage's DAG (its nodes in rows by depth; the stage's input and output
        nodes), head."""
        graph = ArchGraph()
        shape = tuple(int(s) for s in input_shape) or None
        prev = graph.add(ArchNode("input", "input", "input", shape))
        strides = "/".join(str(s) for s in self.cfg.stem_strides)
        prev = graph.add(
            ArchNode("stem", f"stem\\nconv 3x3 (strides {strides})", "stem"), prev.name
        )
        for i, (g, stage) in enumerate(zip(self.graphs, self.stages), start=1):
            src = graph.add(ArchNode(f"s{i}_in", f"stage {i}", "stem"), after=prev.name)
            depth = [0] * g.num_nodes  # longest path from the stage input: one row per depth
            for a, b in g.edges:
                depth[b] = max(depth[b], depth[a] + 1)
            for v in range(g.num_nodes):
                graph.nodes.append(ArchNode(f"s{i}_{v}", str(v), "op", kernel=3,
                                            group=f"s{i}_row{depth[v]}"))  # fmt: skip
            for v in g.input_nodes():
                graph.edges.append(ArchEdge(src.name, f"s{i}_{v}"))
            for a, b in g.edges:
                graph.edges.append(ArchEdge(f"s{i}_{a}", f"s{i}_{b}"))
            label = f"stage {i} output\\n(average, {stage.out_channels} channels)"
            prev = ArchNode(f"s{i}_out", label, "stem")
            graph.nodes.append(prev)
            for v in g.output_nodes():
                graph.edges.append(ArchEdge(f"s{i}_{v}", prev.name))
        head = ArchNode("head", f"conv 1x1 ({self.cfg.head_channels})\\nglobal avg pool", "head")
        prev = graph.add(head, after=prev.name)
        prev = graph.add(ArchNode("classifier", "linear", "head", (self.cfg.n_classes,)), prev.name)
        graph.add(ArchNode("output", "output", "output"), after=prev.name)
        return graph

"""The ``enas_micro`` space: the ENAS micro (cell) search space (Pham et al., ICML 2018).

Network (the reference code's layout): a stem (3x3 conv to ``3 * out_filters`` channels, BN),
then ``num_layers + 2`` cells, of which cells ``p`` and ``2p + 1`` (``p = num_layers // 3``) are
reduction cells (the channels double, the size halves) and the others normal cells, so that every
stage has ``p`` normal cells; then ReLU, global average pooling, dropout and a linear classifier.
Each cell takes the outputs of the two previous cells (the stem's for the first). With
``auxiliary``, an auxiliary classifier (DARTS' head: the paper's) on the output of the cell after
the second reduction; in training the network then returns ``(logits, aux_logits)``.

The cells are those of :mod:`.micro_cell`: ``B = num_nodes`` nodes each choosing two inputs and
two operations; every normal cell shares one decision per label (``normal/node<i>/...``), every
reduction cell too (``reduce/...``). The paper searches with ``num_layers`` 6, ``out_filters`` 20,
``num_nodes`` 5, and retrains with ``num_layers`` 15 and ``out_filters`` 36 (set them in the
retraining file), with drop-path (``drop_path``: the rate of the deepest cell; cell ``i`` of
``n`` uses ``drop_path * (i + 1) / n``, times the training progress when the loop reports it
through :meth:`EnasMicroSpace.set_progress`).
"""

from __future__ import annotations

import logging
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import nnabla as nn
import numpy as np

from ...errors import ConfigError
from ...genotype import Genotype
from ...module import (
    BatchNormalization,
    Conv,
    Dropout,
    GlobalAvgPool,
    Linear,
    ModuleList,
    ReLU,
    Sequential,
)
from ...visualize import ArchGraph, ArchNode, draw_cell
from ..darts.genotype import CellSpec
from ..darts.network import AuxiliaryHead, DropPath
from ..decisions import Decision
from .base import EnasModel
from .micro_cell import CELL_KINDS, FixedCell, SearchCell, cell_spec, micro_decisions

__all__ = ["EnasMicroConfig", "EnasMicroSpace", "micro_layout"]

logger = logging.getLogger(__name__)

_MODES = ("full", "sample", "max")


@dataclass
class EnasMicroConfig:
    """The ``network`` keys of the ``enas_micro`` space (besides ``search_space``).

    Attributes:
        num_layers: normal cells in all (``num_layers // 3`` per stage; >= 3; the paper: 6 to
            search, 15 to retrain).
        num_nodes: ``B``, the intermediate nodes of a cell (the paper: 5).
        out_filters: ``C``, the channels of the first stage's nodes (even; the paper: 20 to
            search, 36 to retrain).
        num_classes: classifier outputs.
        in_channels: input image channels (default: the experiment's ``input_shape[0]``, else 3).
        mode: the supernet MixedOps' mode: ``full``, ``sample`` or ``max``.
        auxiliary: an auxiliary head after the second reduction (weighted by ``aux_weight``).
        drop_rate: dropout before the classifier, in [0, 1) (the paper: keep probability 0.9).
        drop_path: the fixed network's drop-path rate of its deepest cell, in [0, 1) (the
            reference code retrains with 0.4); the supernet has none.
        genotype: path of an ``arch.h5`` to build the fixed network (the CLI loads it).
    """

    num_layers: int = 6
    num_nodes: int = 5
    out_filters: int = 20
    num_classes: int = 10
    in_channels: int | None = None
    mode: str = "sample"
    auxiliary: bool = True
    drop_rate: float = 0.1
    drop_path: float = 0.0
    genotype: str | None = None

    def check(self) -> None:
        """Refuses impossible values with a ConfigError naming the key."""
        if self.num_layers < 3:
            raise ConfigError(
                f"must be >= 3 (num_layers // 3 normal cells per stage), got {self.num_layers}",
                key="num_layers",
            )
        if self.num_nodes < 1:
            raise ConfigError(f"must be >= 1, got {self.num_nodes}", key="num_nodes")
        if self.out_filters < 2 or self.out_filters % 2:
            raise ConfigError(
                f"must be an even number >= 2 (a factorized reduction splits the channels in "
                f"two), got {self.out_filters}",
                key="out_filters",
            )
        if self.num_classes < 1:
            raise ConfigError(f"must be >= 1, got {self.num_classes}", key="num_classes")
        if self.in_channels is not None and self.in_channels < 1:
            raise ConfigError(f"must be >= 1, got {self.in_channels}", key="in_channels")
        if self.mode not in _MODES:
            raise ConfigError(f"expected one of {', '.join(_MODES)}, got {self.mode!r}", "mode")
        for key in ("drop_rate", "drop_path"):
            if not 0.0 <= getattr(self, key) < 1.0:
                raise ConfigError(f"must be in [0, 1), got {getattr(self, key)}", key=key)


def micro_layout(num_layers: int) -> tuple[list[str], int]:
    """The cell types of the network (``normal``/``reduce``, one per cell) and the index of the
    cell whose output feeds the auxiliary head."""
    p = num_layers // 3
    reductions = {p, 2 * p + 1}
    kinds = ["reduce" if i in reductions else "normal" for i in range(num_layers + 2)]
    return kinds, 2 * p + 2


class EnasMicroSpace(EnasModel):
    """The ``enas_micro`` space (see the module docstring).

    Args:
        cfg: the space's configuration.
        genotype: None (the supernet), or ``label -> candidate`` / a Genotype of this space: the
            fixed network.
        rng: weight initialisation (default ``RandomState(0)``).

    Raises:
        ConfigError: an impossible configuration value (key named).
        GenotypeError: the genotype belongs to another space or does not fit the configuration.
    """

    Config = EnasMicroConfig
    space_name: ClassVar[str] = "enas_micro"

    def __init__(
        self,
        cfg: EnasMicroConfig,
        genotype: Genotype | Mapping[str, str] | None = None,
        rng: np.random.RandomState | None = None,
    ) -> None:
        rng = self.prepare(cfg, genotype, rng)
        self.cfg = cfg
        self.chosen = self.parse_genotype(genotype)
        self.in_channels = cfg.in_channels or 3
        self._kinds, self._aux_index = micro_layout(cfg.num_layers)
        c = cfg.out_filters
        self.stem = Sequential(
            Conv(self.in_channels, 3 * c, 3, pad=1, with_bias=False, rng=rng),
            BatchNormalization(3 * c, 4),
        )
        specs = {k: self.cell_spec(k) for k in CELL_KINDS} if self.chosen is not None else None
        drop = self.chosen is not None and cfg.drop_path > 0
        cells, self._drop_ratio = [], []
        c0 = c1 = 3 * c
        reduce_s0 = False
        aux_channels = c1
        n = len(self._kinds)
        for i, kind in enumerate(self._kinds):
            reduction = kind == "reduce"
            c = 2 * c if reduction else c
            if specs is None:
                cell = SearchCell(kind, cfg.num_nodes, c0, c1, c, reduce_s0, cfg.mode, rng)
            else:
                prob = nn.Variable.from_numpy_array(np.zeros((1, 1, 1, 1), np.float32))
                path = DropPath(prob) if drop else None
                cell = FixedCell(specs[kind], reduction, c0, c1, c, reduce_s0, path, rng)
                self._drop_ratio.append((i + 1) / n)
            cells.append(cell)
            c0, c1, reduce_s0 = c1, cell.out_channels, reduction
            if i == self._aux_index:
                aux_channels = c1
        self.cells = ModuleList(cells)
        if cfg.auxiliary:
            self.aux_head = AuxiliaryHead(aux_channels, cfg.num_classes, rng)
        self.relu = ReLU()
        self.pool = GlobalAvgPool()
        self.dropout = Dropout(cfg.drop_rate)
        self.classifier = Linear(c1, cfg.num_classes, rng=rng)
        if drop:
            self.set_progress(1.0)

    @classmethod
    def decision_specs(cls, cfg: EnasMicroConfig) -> list[Decision]:
        """The supernet's decisions: every ``normal`` decision, then every ``reduce`` one."""
        return [d for kind in CELL_KINDS for d in micro_decisions(kind, cfg.num_nodes)]

    @classmethod
    def search_space_size(cls, cfg: EnasMicroConfig) -> int:
        """``prod_i (i * 5)^2`` over the nodes ``i = 2 .. B+1``, squared for the two cell types.

        (The paper counts ``(5 * (B - 2)!)^4``, 1.3e11 for its ``B = 7`` nodes including the two
        inputs, fewer than the cells it describes can form; this counts the space as built.)
        """
        per_cell = math.prod((i * 5) ** 2 for i in range(2, 2 + cfg.num_nodes))
        return per_cell**2

    def cell_spec(self, kind: str, genotype: Any = None) -> CellSpec:
        """The ``kind`` cell of the drawn genotype (:meth:`EnasModel.drawn_genotype`)."""
        return cell_spec(self.drawn_genotype(genotype), kind, self.cfg.num_nodes)

    def set_progress(self, fraction: float) -> None:
        """The fraction of training done, in [0, 1]: scales the fixed network's drop-path rates
        (the reference code's linear ramp; the full rate until the loop reports progress)."""
        fraction = min(1.0, max(0.0, float(fraction)))
        if self.chosen is None or not self.cfg.drop_path:
            return
        for cell, ratio in zip(self.cells, self._drop_ratio):
            cell.drop_path.prob.d = self.cfg.drop_path * ratio * fraction

    def call(self, x: nn.Variable) -> Any:
        self.check_input(x)
        s0 = s1 = self.stem(x)
        aux = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1)
            if i == self._aux_index and self.cfg.auxiliary and self.training:
                aux = self.aux_head(s1)
        logits = self.classifier(self.dropout(self.pool(self.relu(s1))))
        return (logits, aux) if aux is not None else logits

    # ------------------------------------------------------------------ drawing and exports
    def arch_graph(
        self, input_shape: Sequence[int], architecture: Any = None, probabilities: Any = None
    ) -> ArchGraph:
        """A chain stem - cells - head of the drawn genotype; each cell lists its nodes
        (``node: op(input) + ...``) and its loose ends."""
        _, h, w = (int(s) for s in input_shape)
        specs = {k: self.cell_spec(k, architecture) for k in CELL_KINDS}
        graph = ArchGraph()
        graph.add(ArchNode("input", "input", "input", tuple(int(s) for s in input_shape)))
        c = self.cfg.out_filters
        graph.add(ArchNode("stem", "stem\\nconv 3x3", "stem", (3 * c, h, w)), "input")
        prev = "stem"
        for i, kind in enumerate(self._kinds):
            if kind == "reduce":
                c, h, w = 2 * c, -(-h // 2), -(-w // 2)
            spec = specs[kind]
            lines = [f"cells/{i} ({kind})"]
            for node, edges in enumerate(spec.nodes, start=2):
                lines.append(f"{node}: " + " + ".join(f"{op}({j})" for op, j in edges))
            lines.append("out: concat " + ", ".join(str(k) for k in spec.concat))
            shape = (self.cells[i].out_channels, h, w)
            graph.add(ArchNode(f"cell{i}", "\\n".join(lines), "op", shape), prev)
            prev = f"cell{i}"
        head = ArchNode("head", "relu, global avg pool\\nlinear", "head", (self.cfg.num_classes,))
        graph.add(head, prev)
        graph.add(ArchNode("output", "output", "output"), "head")
        return graph

    def export_files(
        self, folder: Path, architecture: Any = None, probabilities: Any = None
    ) -> list[Path]:
        """``normal.png`` and ``reduce.png``: the two cells of the drawn genotype (when graphviz's
        ``dot`` is installed)."""
        if shutil.which("dot") is None:
            return []
        written = []
        for kind in CELL_KINDS:
            spec = self.cell_spec(kind, architecture)
            written.append(draw_cell(spec.nodes, spec.concat, Path(folder) / f"{kind}.png", kind))
        return written

    def summary(self, architecture: Any = None) -> str:
        """The two cells of the drawn genotype, one line per node."""
        kind = "fixed network" if self.chosen is not None else "supernet"
        lines = [f"{type(self).__name__}: {kind}, {len(self.cells)} cells"]
        for k in CELL_KINDS:
            spec = self.cell_spec(k, architecture)
            for node, edges in enumerate(spec.nodes, start=2):
                lines.append(f"{k}/node{node}: " + " + ".join(f"{op}(node{j})" for op, j in edges))
            lines.append(f"{k} output: concat of nodes {spec.concat}")
        return "\n".join(lines)

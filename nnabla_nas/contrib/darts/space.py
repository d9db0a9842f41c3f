"""The ``darts`` and ``pnas`` search spaces (DARTS, Liu et al., ICLR 2019; NNabla NAS' ``pnas``).

Network: a stem (3x3 conv to ``stem_multiplier * init_channels`` channels, BN), ``num_cells``
cells (reduction cells, which double the channels and halve the size, at ``num_cells // 3`` and
``2 * num_cells // 3``), global average pooling and a linear classifier; with ``auxiliary`` an
:class:`~.network.AuxiliaryHead` on the output of cell ``2 * num_cells // 3``, whose logits the
network returns in training mode as ``(logits, aux_logits)``. Each cell takes the outputs of the
two previous cells (the stem's output for the first two).

Supernet (no genotype): :class:`~.search.SearchCell` s. With ``shared: true`` every normal cell
makes the same decision per edge (label ``normal/edge_<i>_<j>``) and so does every reduction cell
(``reduce/edge_<i>_<j>``); with ``shared: false`` every edge of every cell is its own decision
(its module path ``cells/<k>/edge_<i>_<j>``). These labels name the choices in every output file.
The space declares the choices only: the logits (DARTS' ``1e-3 * randn``) are the searcher's.

Fixed network (a genotype given): :class:`~.network.FixedCell` s, with ``drop_path``. ``darts``
builds the discrete cells of the DARTS paper: from an ``arch.json``
(:class:`~.genotype.CellGenotype`) or derived from the logits of an ``arch.h5`` (two strongest
edges per node; per cell when the search was not shared). ``pnas`` keeps every edge's argmax
candidate (``none`` edges dropped).
"""

from __future__ import annotations

import logging
import shutil
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import nnabla as nn
import numpy as np

from ...errors import ConfigError, GenotypeError, NnasError
from ...genotype import Genotype
from ...module import (
    BatchNormalization,
    Conv,
    GlobalAvgPool,
    Linear,
    ModuleList,
    Sequential,
)
from ...visualize import ArchGraph, ArchNode, draw_cell
from ..model import Model
from .genotype import (
    CellGenotype,
    CellSpec,
    derive_genotype,
    edge_weights,
    specs_from_logits,
)
from .network import AuxiliaryHead, DropPath, FixedCell
from .ops import PRIMITIVES
from .search import SearchCell

__all__ = ["DartsConfig", "DartsSpace", "PnasConfig", "PnasSpace", "reduction_cells"]

logger = logging.getLogger(__name__)

_MODES = ("full", "sample", "max")


@dataclass
class DartsConfig:
    """The ``network`` keys of the ``darts`` space (besides ``search_space``).

    Attributes:
        in_channels: input image channels (default: the experiment's ``input_shape[0]``, else 3).
        init_channels: ``C``, the channels of the first cells' nodes.
        num_cells: cells (reduction cells at 1/3 and 2/3 of the depth).
        num_classes: classifier outputs.
        num_choices: intermediate nodes per cell of the supernet.
        multiplier: the supernet cell's output concatenates its last ``multiplier`` nodes. A
            fixed network takes its cells (nodes, concatenated nodes) from the genotype: the
            ``arch.json``, or the logits and the searched ``multiplier`` of the ``arch.h5``.
        stem_multiplier: the stem has ``stem_multiplier * init_channels`` channels.
        shared: one architecture per cell type (normal, reduce) instead of one per cell.
        mode: the supernet MixedOps' mode: ``full``, ``sample`` or ``max``.
        auxiliary: an auxiliary head at 2/3 depth (its loss is weighted by ``aux_weight``).
        drop_path: drop-path probability of the fixed network's edges in training, in [0, 1).
        genotype: ``arch.json`` or ``arch.h5`` of a search: builds the fixed network.
    """

    in_channels: int | None = None
    init_channels: int = 16
    num_cells: int = 8
    num_classes: int = 10
    num_choices: int = 4
    multiplier: int = 4
    stem_multiplier: int = 3
    shared: bool = True
    mode: str = "full"
    auxiliary: bool = False
    drop_path: float = 0.0
    genotype: str | None = None

    def check(self) -> None:
        """Refuses impossible values with a ConfigError naming the key."""
        for key in ("init_channels", "num_cells", "num_classes", "num_choices", "stem_multiplier"):
            if getattr(self, key) < 1:
                raise ConfigError(f"must be >= 1, got {getattr(self, key)}", key=key)
        if self.in_channels is not None and self.in_channels < 1:
            raise ConfigError(f"must be >= 1, got {self.in_channels}", key="in_channels")
        if self.num_cells < 3:
            raise ConfigError(
                f"must be >= 3 (two reduction cells at 1/3 and 2/3 of the depth and at least one "
                f"normal cell), got {self.num_cells}",
                key="num_cells",
            )
        if not 1 <= self.multiplier <= self.num_choices:
            raise ConfigError(
                f"must be in 1..num_choices ({self.num_choices}): the cell output concatenates "
                f"its last `multiplier` nodes; got {self.multiplier}",
                key="multiplier",
            )
        if self.mode not in _MODES:
            raise ConfigError(f"expected one of {', '.join(_MODES)}, got {self.mode!r}", "mode")
        if not 0.0 <= self.drop_path < 1.0:
            raise ConfigError(f"must be in [0, 1), got {self.drop_path}", key="drop_path")


@dataclass
class PnasConfig(DartsConfig):
    """The keys of the ``pnas`` space: those of ``darts``, searched by sampling one architecture
    per edge (defaults ``mode: "sample"``, ``shared: false``)."""

    shared: bool = False
    mode: str = "sample"


def reduction_cells(num_cells: int) -> set[int]:
    """The indices of the reduction cells: ``num_cells // 3`` and ``2 * num_cells // 3``."""
    return {num_cells // 3, 2 * num_cells // 3}


class DartsSpace(Model):
    """The ``darts`` space (see the module docstring).

    Args:
        cfg: the space's configuration.
        genotype: None (the supernet), a :class:`~.genotype.CellGenotype`, or a
            :class:`~nnabla_nas.genotype.Genotype` of this space (an ``arch.json`` or an
            ``arch.h5``, as :func:`~nnabla_nas.genotype.load_genotype` reads them).
        rng: weight and logit initialisation, sampling and drop-path masks (default
            ``RandomState(0)``).

    Raises:
        ConfigError: an impossible configuration value (key named).
        GenotypeError: the genotype belongs to another space or does not fit the configuration.
    """

    Config = DartsConfig
    space_name: ClassVar[str] = "darts"
    #: Retraining keeps every edge's argmax (pnas) instead of the two strongest edges per node.
    per_edge: ClassVar[bool] = False

    def __init__(
        self,
        cfg: DartsConfig,
        genotype: Genotype | CellGenotype | None = None,
        rng: np.random.RandomState | None = None,
    ) -> None:
        rng = self.prepare(cfg, genotype, rng)
        self.cfg = cfg
        self.in_channels = cfg.in_channels or 3
        self._reductions = reduction_cells(cfg.num_cells)
        self._aux_index = 2 * cfg.num_cells // 3
        plan = self._plan(genotype) if genotype is not None else None
        self.is_fixed = plan is not None
        drop = None
        if plan is not None and cfg.drop_path > 0:
            prob = nn.Variable((1, 1, 1, 1))
            prob.d = cfg.drop_path
            drop = DropPath(prob)
        elif cfg.drop_path > 0:
            logger.warning("drop_path applies to the fixed network only: the supernet ignores it")
        c_stem = cfg.stem_multiplier * cfg.init_channels
        self.stem = Sequential(
            Conv(self.in_channels, c_stem, 3, pad=1, with_bias=False, rng=rng),
            BatchNormalization(c_stem, 4),
        )
        cells = []
        prev_prev, prev, c = c_stem, c_stem, cfg.init_channels
        aux_channels = prev
        for i in range(cfg.num_cells):
            reduction = i in self._reductions
            c = 2 * c if reduction else c
            reduction_prev = i - 1 in self._reductions
            if plan is not None:
                cell = FixedCell(plan[i], prev_prev, prev, c, reduction, reduction_prev, drop, rng)
            else:
                shared = ("reduce" if reduction else "normal") if cfg.shared else None
                cell = SearchCell(cfg.num_choices, cfg.multiplier, prev_prev, prev, c,
                                  reduction, reduction_prev, cfg.mode, shared, rng)  # fmt: skip
            cells.append(cell)
            prev_prev, prev = prev, cell.out_channels
            if i == self._aux_index:
                aux_channels = prev
        self.cells = ModuleList(cells)
        if cfg.auxiliary:
            self.aux_head = AuxiliaryHead(aux_channels, cfg.num_classes, rng)
        self.pool = GlobalAvgPool()
        self.classifier = Linear(prev, cfg.num_classes, rng=rng)

    # ------------------------------------------------------------------ forward
    def call(self, x: nn.Variable) -> Any:
        self.check_input(x)
        s0 = s1 = self.stem(x)
        aux = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1)
            if i == self._aux_index and self.cfg.auxiliary and self.training:
                aux = self.aux_head(s1)
        logits = self.classifier(self.pool(s1))
        return (logits, aux) if aux is not None else logits

    @property
    def drop_path_prob(self) -> float:
        """The drop-path probability (0 without drop-path); settable without rebuilding graphs."""
        drop = self.cells[0].modules.get("drop_path") if self.is_fixed else None
        return float(drop.prob.d.reshape(-1)[0]) if drop is not None else 0.0

    @drop_path_prob.setter
    def drop_path_prob(self, value: float) -> None:
        drop = self.cells[0].modules.get("drop_path") if self.is_fixed else None
        if drop is None:
            raise NnasError(
                "this network has no drop-path (build the fixed network with drop_path)"
            )
        if not 0.0 <= value < 1.0:
            raise ValueError(f"drop_path_prob must be in [0, 1), got {value}")
        drop.prob.d = value

    # ------------------------------------------------------------------ architecture
    def to_genotype(
        self,
        architecture: Mapping[str, int],
        logits: Mapping[str, np.ndarray] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Genotype:
        """The base genotype, recording the cells' ``multiplier`` in ``extra``: the fixed network
        built from an ``arch.h5`` concatenates the same nodes as the search."""
        extra = {"multiplier": self.cfg.multiplier, **dict(extra or {})}
        return super().to_genotype(architecture, logits, extra)

    @staticmethod
    def _edge_logits(
        architecture: Mapping[str, int], probabilities: Mapping[str, np.ndarray] | None
    ) -> OrderedDict[str, np.ndarray]:
        """``label -> log-probabilities`` of every edge (one-hot of ``architecture`` when the
        searcher has no probabilities); what the DARTS derivation ranks."""
        if probabilities is not None:
            return OrderedDict(
                (k, np.log(np.maximum(np.asarray(p, np.float64), 1e-300)))
                for k, p in probabilities.items()
            )
        out = OrderedDict()
        for label, index in architecture.items():
            row = np.full(len(PRIMITIVES), -1e9)
            row[int(index)] = 0.0
            out[label] = row
        return out

    def cell_specs(
        self,
        architecture: Mapping[str, int] | None = None,
        probabilities: Mapping[str, np.ndarray] | None = None,
    ) -> list[CellSpec]:
        """The cells of the fixed network: built from, or (supernet) derived from an
        architecture and its probabilities (two strongest edges per node; pnas: every edge)."""
        if self.is_fixed:
            return [cell.spec for cell in self.cells]
        logits = self._edge_logits(architecture or {}, probabilities)
        return specs_from_logits(logits, self.cfg.num_cells, self._reductions,
                                 self.cfg.multiplier, self.per_edge, "the supernet")  # fmt: skip

    def cell_genotype(
        self,
        architecture: Mapping[str, int],
        probabilities: Mapping[str, np.ndarray] | None = None,
    ) -> CellGenotype:
        """The DARTS genotype of an architecture (two strongest edges per node, ``none``
        excluded, ranked by ``probabilities``; shared supernet only)."""
        if self.is_fixed or not self.cfg.shared:
            raise NnasError("a DARTS cell genotype exists for a supernet with shared: true only")
        logits = self._edge_logits(architecture, probabilities)
        return derive_genotype(
            edge_weights(logits, "normal/"),
            edge_weights(logits, "reduce/"),
            self.cfg.num_choices,
            self.cfg.multiplier,
        )

    def export_files(
        self,
        folder: Path,
        architecture: Mapping[str, int],
        probabilities: Mapping[str, np.ndarray] | None = None,
    ) -> list[Path]:
        """Shared supernet: ``arch.json`` (the DARTS genotype), ``normal.png`` and ``reduce.png``
        (when graphviz's ``dot`` is installed). Nothing otherwise."""
        if self.is_fixed or not self.cfg.shared:
            return []
        folder = Path(folder)
        geno = self.cell_genotype(architecture, probabilities)
        written = [geno.save(folder / "arch.json", self.space_name)]
        if shutil.which("dot") is not None:
            for kind in ("normal", "reduce"):
                spec = geno.cell(kind)
                written.append(draw_cell(spec.nodes, spec.concat, folder / f"{kind}.png", kind))
        return written

    # ------------------------------------------------------------------ genotype -> cells
    def _plan(self, genotype: Any) -> list[CellSpec]:
        where = self.genotype_source(genotype)
        if isinstance(genotype, Genotype):
            if genotype.cell is None:
                multiplier = genotype.extra.get("multiplier", self.cfg.multiplier)
                return specs_from_logits(genotype.logits, self.cfg.num_cells, self._reductions,
                                         int(multiplier), self.per_edge, where)  # fmt: skip
            try:
                genotype = CellGenotype.from_dict(genotype.cell, where)
            except GenotypeError as err:
                raise GenotypeError(err.message, key="genotype") from None
        if not isinstance(genotype, CellGenotype):
            raise GenotypeError(
                f"expected a DARTS cell genotype (arch.json) or an arch.h5, got "
                f"{type(genotype).__name__}",
                key="genotype",
            )
        plan = []
        for i in range(self.cfg.num_cells):
            spec = genotype.cell("reduce" if i in self._reductions else "normal")
            if i in self._reductions and min(spec.concat) < 2:
                raise GenotypeError(
                    f"{where}: reduce_concat {spec.concat} includes an input node (0 or 1), whose "
                    "size a reduction cell does not halve",
                    key="genotype",
                )
            plan.append(spec)
        return plan

    # ------------------------------------------------------------------ drawing
    def arch_graph(
        self,
        input_shape: Sequence[int],
        architecture: Mapping[str, int],
        probabilities: Mapping[str, np.ndarray] | None = None,
    ) -> ArchGraph:
        """A chain stem - cells - head; each cell lists its nodes' edges (``node: op(input)``)."""
        _, h, w = (int(s) for s in input_shape)
        graph = ArchGraph()
        prev = graph.add(ArchNode("input", "input", "input", tuple(int(s) for s in input_shape)))
        c_stem = self.cfg.stem_multiplier * self.cfg.init_channels
        prev = graph.add(ArchNode("stem", "stem\\nconv 3x3", "stem", (c_stem, h, w)), prev.name)
        for i, spec in enumerate(self.cell_specs(architecture, probabilities)):
            reduction = i in self._reductions
            h, w = (-(-h // 2), -(-w // 2)) if reduction else (h, w)
            lines = [f"cells/{i} ({'reduce' if reduction else 'normal'})"]
            for node, edges in enumerate(spec.nodes, start=2):
                lines.append(f"{node}: " + ", ".join(f"{op}({j})" for op, j in edges))
            shape = (self.cells[i].out_channels, h, w)
            node = ArchNode(f"cell{i}", "\\n".join(lines), "op", shape, kernel=None)
            prev = graph.add(node, prev.name)
        head = ArchNode("head", "global avg pool\\nlinear", "head", (self.cfg.num_classes,))
        prev = graph.add(head, prev.name)
        graph.add(ArchNode("output", "output", "output"), prev.name)
        return graph


class PnasSpace(DartsSpace):
    """The ``pnas`` space: the DARTS supernet searched by path sampling (defaults ``mode:
    "sample"``, ``shared: false``); its fixed network keeps every edge's argmax candidate."""

    Config = PnasConfig
    space_name: ClassVar[str] = "pnas"
    per_edge: ClassVar[bool] = True

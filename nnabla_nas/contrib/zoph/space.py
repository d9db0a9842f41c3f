"""The ``zoph`` space: the one-shot model of Bender, Kindermans, Zoph, Vasudevan and Le,
"Understanding and Simplifying One-Shot Architecture Search" (ICML 2018), as NNabla NAS' seed-era
``zoph`` example laid it out.

Network::

   input -> stem: two conv 3x3 (stem_channels) + BN + ReLU
         -> cells 0 .. n-1 (cell i takes the outputs of cells i-2 and i-1, the two stem convs for
            the first cells; cell_depth[i] choice blocks of cell_channels[i] channels;
            reducing[i] halves the resolution; see .network)
         -> ReLU - global average pooling - linear classifier (n_classes)

Every block chooses one of ``candidates`` (default all eight, DARTS' operations: separable
convolutions 3x3 and 5x5, dilated separable convolutions 3x3 and 5x5, 3x3 max and average pooling,
identity, zero): the :class:`~nnabla_nas.module.MixedOp` labelled ``cells/<i>/blocks/<j>`` (its
module path). The space declares the choices only: DartsSearcher (``mode: full``) or
ProxylessNasSearcher (``mode: sample``) drive them.

Fixed networks put the chosen candidate of every block at the same path: from a searched genotype
(``genotype`` / ``param_path``, an ``arch.h5``), or drawn uniformly at random with the space's
``rng`` (``random_init: true``: the paper's random-architecture baseline, trained by the Trainer,
which writes it to ``arch.h5`` when it starts).

Path dropout (``drop_path`` ``r``, ``drop_path_schedule``): every incoming path of a block is
dropped with probability ``r_t ** (1 / k)``; ``r_t`` rises linearly from 0 to ``r`` over
training (``linear``, the paper's schedule) or stays ``r`` (``constant``), updated by
:meth:`ZophSpace.set_progress`, which the loop calls at the start of every epoch.

Not implemented: the paper's choice of up to two inputs and two operations per block (here a
block takes every earlier node and runs one candidate), its ghost batch normalisation and its
masks shared per ghost batch (ours are per example), and its 1x7-7x1 convolutions.
"""

from __future__ import annotations

import logging
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
    MixedOp,
    ModuleList,
    ReLU,
    Sequential,
)
from ...visualize import ArchGraph, ArchNode, draw_architecture
from ..darts.ops import make_op
from ..model import Model
from .network import PathDropout, ZophCell

__all__ = ["CANDIDATES", "ZophConfig", "ZophSpace"]

logger = logging.getLogger(__name__)

#: The candidates of every block (DARTS' names), in the seed-era order.
CANDIDATES = ("sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5", "max_pool_3x3",
              "avg_pool_3x3", "skip_connect", "none")  # fmt: skip
_MODES = ("full", "sample", "max")
_MERGING = ("concat", "add")
_SCHEDULES = ("linear", "constant")


def _as_list(value: Any, n: int, key: str) -> list:
    values = list(value) if isinstance(value, list) else [value] * n
    if len(values) != n:
        raise ConfigError(f"needs one value per cell ({n} cells), got {len(values)}", key=key)
    return values


@dataclass
class ZophConfig:
    """The ``network`` keys of the ``zoph`` space (besides ``search_space``).

    Attributes:
        name: a free name of the network (seed-era files have it; only logged).
        n_classes: classifier outputs.
        stem_channels: the channels of the two stem convolutions.
        cells: the number of cells, or the seed-era list of cell types (``"ZophCell"`` each).
        cell_depth: choice blocks per cell (one value for all, or one per cell).
        cell_channels: the width ``C`` of every cell (one value, or one per cell).
        reducing: per cell, whether it halves the resolution.
        merging_mode: the cell's output: ``concat`` of its inputs and blocks, or their ``add``.
        mode: the MixedOps' mode: ``full`` (DartsSearcher), ``sample`` (ProxylessNasSearcher) or
            ``max``.
        candidates: the candidates of every block (a subset of :data:`CANDIDATES`).
        random_init: build a fixed network drawn uniformly at random (seeded).
        drop_path: path dropout rate ``r`` at the end of training, in [0, 1).
        drop_path_schedule: ``linear`` (0 to ``r`` over training) or ``constant``.
        in_channels: input image channels (default: the experiment's ``input_shape[0]``).
        genotype: an ``arch.h5`` of this space: builds its fixed network.
        param_path: the seed-era name of ``genotype`` (moved there when checked).
    """

    name: str = "zoph"
    n_classes: int = 10
    stem_channels: int = 128
    cells: int | list[str] = 3
    cell_depth: int | list[int] = field(default_factory=lambda: [7, 7, 7])
    cell_channels: int | list[int] = field(default_factory=lambda: [128, 256, 512])
    reducing: list[bool] = field(default_factory=lambda: [False, True, True])
    merging_mode: str = "concat"
    mode: str = "sample"
    candidates: list[str] = field(default_factory=lambda: list(CANDIDATES))
    random_init: bool = False
    drop_path: float = 0.0
    drop_path_schedule: str = "linear"
    in_channels: int | None = None
    genotype: str | None = None
    param_path: str | None = None

    def check(self) -> None:
        """Refuses impossible values with a ConfigError naming the key; normalises ``cells``
        to a count and ``cell_depth``/``cell_channels`` to lists."""
        if isinstance(self.cells, list):
            bad = [c for c in self.cells if str(c).lower() != "zophcell"]
            if bad or not self.cells:
                raise ConfigError(f"cell types must be 'ZophCell' (the only one), got {bad}",
                                  key="cells")  # fmt: skip
            self.cells = len(self.cells)
        if self.cells < 1:
            raise ConfigError(f"must be >= 1, got {self.cells}", key="cells")
        self.cell_depth = _as_list(self.cell_depth, self.cells, "cell_depth")
        self.cell_channels = _as_list(self.cell_channels, self.cells, "cell_channels")
        _as_list(self.reducing, self.cells, "reducing")
        for key in ("cell_depth", "cell_channels"):
            if min(getattr(self, key)) < 1:
                raise ConfigError(f"every value must be >= 1, got {getattr(self, key)}", key=key)
        for key in ("n_classes", "stem_channels"):
            if getattr(self, key) < 1:
                raise ConfigError(f"must be >= 1, got {getattr(self, key)}", key=key)
        if self.in_channels is not None and self.in_channels < 1:
            raise ConfigError(f"must be >= 1, got {self.in_channels}", key="in_channels")
        for key, valid in (("merging_mode", _MERGING), ("mode", _MODES),
                           ("drop_path_schedule", _SCHEDULES)):  # fmt: skip
            if getattr(self, key) not in valid:
                raise ConfigError(f"expected one of {', '.join(valid)}, got "
                                  f"{getattr(self, key)!r}", key=key)  # fmt: skip
        unknown = [c for c in self.candidates if c not in CANDIDATES]
        if unknown or not self.candidates or len(set(self.candidates)) != len(self.candidates):
            raise ConfigError(
                f"expected distinct names among {', '.join(CANDIDATES)}; got {self.candidates}",
                key="candidates",
            )
        if not 0.0 <= self.drop_path < 1.0:
            raise ConfigError(f"must be in [0, 1), got {self.drop_path}", key="drop_path")
        if self.param_path is not None:
            if self.genotype is not None and self.genotype != self.param_path:
                raise ConfigError(
                    f"param_path {self.param_path!r} and genotype {self.genotype!r} differ: "
                    "param_path is the seed-era name of genotype, give one of them",
                    key="param_path",
                )
            self.genotype, self.param_path = self.param_path, None  # one name from here on
        if self.random_init and self.genotype is not None:
            raise ConfigError(
                "random_init draws an architecture, genotype gives one: set only one of them",
                key="random_init",
            )

    def labels(self) -> list[str]:
        """The label of every block, in order: ``cells/<i>/blocks/<j>``."""
        return [f"cells/{i}/blocks/{j}" for i, d in enumerate(self.cell_depth) for j in range(d)]


class ZophSpace(Model):
    """The ``zoph`` space (see the module docstring).

    Args:
        cfg: the space's configuration.
        genotype: None (the supernet, or with ``random_init`` a random fixed network), or a
            searched architecture (a Genotype of this space, or ``label -> candidate``).
        rng: weight initialisation and the ``random_init`` draw (default ``RandomState(0)``).

    Raises:
        ConfigError: an impossible configuration value (key named).
        GenotypeError: the genotype belongs to another space or does not fit the configuration.
    """

    Config = ZophConfig
    space_name: ClassVar[str] = "zoph"

    def __init__(
        self,
        cfg: ZophConfig,
        genotype: Genotype | Mapping[str, str] | None = None,
        rng: np.random.RandomState | None = None,
    ) -> None:
        rng = self.prepare(cfg, genotype, rng)
        self.cfg = cfg
        self.in_channels = cfg.in_channels or 3
        labels = cfg.labels()
        chosen = None
        if genotype is not None:
            chosen = self._check_genotype(genotype, labels)
        elif cfg.random_init:
            draws = rng.randint(len(cfg.candidates), size=len(labels))
            chosen = OrderedDict((lb, cfg.candidates[int(i)]) for lb, i in zip(labels, draws))
            logger.info("random_init: %s", ", ".join(chosen.values()))
        self.is_fixed = chosen is not None
        self._chosen = chosen
        self._path_dropout = PathDropout() if cfg.drop_path > 0 else None
        s = cfg.stem_channels
        self.stem0 = Sequential(Conv(self.in_channels, s, 3, pad=1, with_bias=False, rng=rng),
                                BatchNormalization(s, 4), ReLU())  # fmt: skip
        self.stem1 = Sequential(Conv(s, s, 3, pad=1, with_bias=False, rng=rng),
                                BatchNormalization(s, 4), ReLU())  # fmt: skip
        cells, prev_prev, prev = [], s, s
        for i, (depth, c) in enumerate(zip(cfg.cell_depth, cfg.cell_channels)):
            blocks = [self._block(f"cells/{i}/blocks/{j}", c, rng) for j in range(depth)]
            cell = ZophCell(prev_prev, prev, c, blocks, cfg.reducing[i], cfg.merging_mode,
                            self._path_dropout, rng)  # fmt: skip
            cells.append(cell)
            prev_prev, prev = prev, cell.out_channels
        self.cells = ModuleList(cells)
        self.relu = ReLU()
        self.pool = GlobalAvgPool()
        self.classifier = Linear(prev, cfg.n_classes, rng=rng)
        self.set_progress(0.0)

    def _block(self, label: str, channels: int, rng: np.random.RandomState) -> Any:
        def build(name: str) -> Any:
            return make_op(name, channels, 1, affine=True, pool_bn=False, rng=rng)

        if self._chosen is not None:
            return build(self._chosen[label])
        names = list(self.cfg.candidates)
        if len(names) == 1:
            return build(names[0])
        return MixedOp([build(n) for n in names], mode=self.cfg.mode, names=names)

    def _check_genotype(self, genotype: Any, labels: list[str]) -> OrderedDict[str, str]:
        where = self.genotype_source(genotype)
        choices = genotype.choices if isinstance(genotype, Genotype) else dict(genotype)
        unknown = [k for k in choices if k not in labels]
        missing = [k for k in labels if k not in choices]
        if unknown or missing:
            raise GenotypeError(
                f"{where} does not match this zoph configuration: unknown labels {unknown[:5]}, "
                f"missing labels {missing[:5]}; set cells, cell_depth as in the search",
                key="genotype",
            )
        bad = {k: v for k, v in choices.items() if v not in self.cfg.candidates}
        if bad:
            raise GenotypeError(
                f"{where} chooses {bad} which are not among the candidates {self.cfg.candidates}",
                key="genotype",
            )
        return OrderedDict((k, choices[k]) for k in labels)

    def call(self, x: nn.Variable) -> nn.Variable:
        self.check_input(x)
        s0 = self.stem0(x)
        s1 = self.stem1(s0)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.classifier(self.pool(self.relu(s1)))

    # ------------------------------------------------------------------ path dropout
    def set_progress(self, fraction: float) -> None:
        """Sets the path dropout rate for ``fraction`` of training done (in [0, 1]): ``r *
        fraction`` (``linear``) or ``r`` (``constant``)."""
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"the fraction of training done must be in [0, 1], got {fraction}")
        if self._path_dropout is not None:
            r = self.cfg.drop_path
            self._path_dropout.set_rate(
                r * fraction if self.cfg.drop_path_schedule == "linear" else r
            )

    @property
    def path_dropout_rate(self) -> float:
        """The current rate ``r_t`` (0 without path dropout)."""
        return self._path_dropout.rate if self._path_dropout is not None else 0.0

    # ------------------------------------------------------------------ architecture
    def block_names(self, architecture: Mapping[str, int] | None = None) -> OrderedDict[str, str]:
        """The candidate of every block: chosen (fixed network) or the one ``architecture``
        picks."""
        if self._chosen is not None:
            return OrderedDict(self._chosen)
        if len(self.cfg.candidates) == 1:
            return OrderedDict((lb, self.cfg.candidates[0]) for lb in self.cfg.labels())
        return self.genotype(architecture or {})

    def to_genotype(
        self,
        architecture: Mapping[str, int] | None = None,
        logits: Mapping[str, np.ndarray] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Genotype:
        """A supernet's architecture (with the searcher's logits); a fixed network's chosen
        candidates."""
        if not self.is_fixed:
            return super().to_genotype(architecture or {}, logits, extra)
        info = {"random_init": bool(self.cfg.random_init), **dict(extra or {})}
        return Genotype(self.space_name, OrderedDict(self._chosen), OrderedDict(), info)

    def export_files(
        self,
        folder: Path,
        architecture: Mapping[str, int] | None = None,
        probabilities: Mapping[str, np.ndarray] | None = None,
    ) -> list[Path]:
        """A fixed network (random or retrained): ``arch.h5`` (its architecture) and ``arch.png``
        (with graphviz's ``dot``), written when a Trainer run starts. Nothing for the supernet
        (the searchers write its ``arch.h5``)."""
        if not self.is_fixed:
            return []
        folder = Path(folder)
        written = [save_genotype(folder / "arch.h5", self.to_genotype())]
        if shutil.which("dot") is not None:
            written.append(draw_architecture(self.arch_graph(()), folder / "arch.png"))
        return written

    def arch_graph(
        self,
        input_shape: Sequence[int],
        architecture: Mapping[str, int] | None = None,
        probabilities: Mapping[str, np.ndarray] | None = None,
    ) -> ArchGraph:
        """A chain stem - cells - head; each cell lists its blocks' candidates."""
        shape = tuple(int(s) for s in input_shape) or None
        graph = ArchGraph()
        prev = graph.add(ArchNode("input", "input", "input", shape))
        h = w = None
        if shape is not None:
            h, w = shape[1], shape[2]
        s = self.cfg.stem_channels
        node = ArchNode("stem", "stem\\nconv 3x3, conv 3x3", "stem", (s, h, w) if h else None)
        prev = graph.add(node, prev.name)
        names = self.block_names(architecture)
        for i, cell in enumerate(self.cells):
            if self.cfg.reducing[i] and h is not None:
                h, w = h // 2, w // 2
            lines = [f"cells/{i}" + (" (reducing)" if self.cfg.reducing[i] else "")]
            lines += [f"{j}: {names[f'cells/{i}/blocks/{j}']}" for j in range(len(cell.blocks))]
            out = (cell.out_channels, h, w) if h is not None else None
            prev = graph.add(ArchNode(f"cell{i}", "\\n".join(lines), "op", out), prev.name)
        head = ArchNode("head", "global avg pool\\nlinear", "head", (self.cfg.n_classes,))
        prev = graph.add(head, prev.name)
        graph.add(ArchNode("output", "output", "output"), prev.name)
        return graph

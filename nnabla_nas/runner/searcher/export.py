"""The found architecture of a searcher (:class:`ArchExport`) and what is written of it every
epoch (:class:`Exporter`), the same for every searcher:

- ``arch.h5`` (the genotype, written atomically: candidate names by label, the searcher's logits
  where it has some, the epoch, its metrics and hardware estimates), the space's own files
  (:meth:`~nnabla_nas.contrib.model.Model.export_files`, e.g. DARTS' ``arch.json``) and
  ``arch.png`` (drawn with graphviz; skipped with a warning when ``dot`` is missing);
- TensorBoard: the drawings (``architecture/arch.png`` and the space's own, e.g. DARTS'
  ``architecture/normal.png`` and ``architecture/reduce.png``); for searchers with
  probabilities, every candidate's probability as ``arch/<label>/<candidate>``, grouped into
  one multi-line chart per choice (custom scalars, category ``architecture probabilities``), a
  heat map of them all (``architecture/probabilities``), every choice's entropy as
  ``arch_entropy/<label>`` and their mean as ``arch_entropy/mean`` (one chart); see :func:`tag`
  for the characters replaced. Every file and tag names a choice by its label;
- the log: a table of the architecture, with a ``changed`` column against the previous epoch.
"""

from __future__ import annotations

import logging
import math
import re
import shutil
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ...genotype import save_genotype
from ...visualize import draw_architecture, probability_image
from ..monitor import exact_tag

__all__ = ["ArchExport", "Exporter", "entropy", "tag"]

logger = logging.getLogger(__name__)


def tag(name: str) -> str:
    """``name`` as a TensorBoard tag: characters other than letters, digits, ``_ - . /`` become
    ``_`` (as tensorboardX would, with a log line each time), e.g. ``MB6 3x3`` -> ``MB6_3x3``."""
    return re.sub(r"[^-/\w.]", "_", name)


def entropy(probs: np.ndarray) -> float:
    """The Shannon entropy ``-sum p log p`` (nats) of a probability vector (``0 log 0 = 0``)."""
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


@dataclass
class ArchExport:
    """A searcher's found architecture.

    Attributes:
        architecture: ``label -> candidate index`` of every choice.
        probabilities: ``label -> probabilities of the candidates`` (numpy), for searchers with
            a distribution per choice; None otherwise.
        logits: what ``arch.h5`` stores besides the choices (file key -> array), e.g. the
            architecture logits; may be empty.
    """

    architecture: OrderedDict[str, int]
    probabilities: OrderedDict[str, np.ndarray] | None = None
    logits: OrderedDict[str, np.ndarray] = field(default_factory=OrderedDict)


class Exporter:
    """Writes a searcher's architecture every epoch (see the module docstring).

    Args:
        model: the supernet.
        output: the output folder.
        input_shape: one example's shape (drawings).
        monitor: TensorBoard.
        comm: the data-parallel processes (rank 0 writes files).
        algorithm: the searcher's name (recorded in ``arch.h5``).
    """

    def __init__(self, model: Any, output: Path, input_shape: Sequence[int], monitor: Any,
                 comm: Any, algorithm: str) -> None:  # fmt: skip
        self.model = model
        self.output = Path(output)
        self.input_shape = tuple(input_shape)
        self.monitor = monitor
        self.comm = comm
        self.algorithm = algorithm
        self.previous: dict[str, str] | None = None
        self._warned_no_dot = False

    def names(self, export: ArchExport) -> OrderedDict[str, str]:
        """``label -> candidate name`` of the exported architecture."""
        return self.model.genotype(export.architecture)

    def probabilities(self, export: ArchExport) -> OrderedDict[str, OrderedDict[str, float]]:
        """``label -> {candidate: probability}`` (empty without probabilities)."""
        choices = self.model.choices()
        return OrderedDict(
            (label, OrderedDict((n, float(p)) for n, p in zip(choices[label].names, probs)))
            for label, probs in (export.probabilities or {}).items()
        )

    def epoch_end(self, export: ArchExport, step: int, metrics: Mapping[str, float],
                  hardware: Mapping[str, float]) -> None:  # fmt: skip
        """Writes ``arch.h5``, the space's files and ``arch.png``, the architecture scalars and
        image, and the log table, after epoch ``step`` (1-based)."""
        extra = {"epoch": step, "algorithm": self.algorithm, "metrics": dict(metrics),
                 "hardware": dict(hardware)}  # fmt: skip
        if self.comm.is_main:  # the other data-parallel ranks hold the same architecture
            genotype = self.model.to_genotype(export.architecture, export.logits, extra)
            save_genotype(self.output / "arch.h5", genotype)
            written = self.model.export_files(self.output, export.architecture,
                                              export.probabilities)  # fmt: skip
            self._draw(export, step)
            for path in written:  # the space's drawings (DARTS: normal.png, reduce.png)
                if Path(path).suffix == ".png":
                    self.monitor.writer.add_png(f"architecture/{Path(path).name}", path, step)
        self._log_probabilities(export, step)
        logger.info("architecture after epoch %d:\n%s", step, self.table(export))
        self.previous = dict(self.names(export))

    def _draw(self, export: ArchExport, step: int) -> None:
        if shutil.which("dot") is None:
            if not self._warned_no_dot:
                logger.warning(
                    "graphviz's 'dot' binary is missing: arch.png is not drawn (install it with "
                    "'apt-get install graphviz')"
                )
                self._warned_no_dot = True
            return
        path = draw_architecture(self.model, self.output / "arch.png", self.input_shape,
                                 architecture=export.architecture,
                                 probabilities=export.probabilities)  # fmt: skip
        self.monitor.writer.add_png("architecture/arch.png", path, step)

    def layout(self, probabilities: Mapping[str, Mapping[str, float]]) -> dict[str, Any]:
        """The custom-scalars categories of the architecture: a multi-line chart per choice
        (its candidates' probabilities) and one of the entropies."""
        charts = OrderedDict(
            (label, [exact_tag(tag(f"arch/{label}/{name}")) for name in probs])
            for label, probs in probabilities.items()
        )
        entropies = {"entropy of every choice (nats)": ["^arch_entropy/"]}
        return {"architecture probabilities": charts, "architecture entropy": entropies}

    def _log_probabilities(self, export: ArchExport, step: int) -> None:
        writer = self.monitor.writer
        probabilities = self.probabilities(export)
        if not probabilities:
            return
        self.monitor.layout.update(self.layout(probabilities))
        entropies = []
        for label, probs in probabilities.items():
            for name, p in probs.items():
                writer.add_scalar(tag(f"arch/{label}/{name}"), p, step)
            h = entropy(np.fromiter(probs.values(), dtype=np.float64))
            entropies.append(h)
            writer.add_scalar(tag(f"arch_entropy/{label}"), h, step)
        writer.add_scalar("arch_entropy/mean", float(np.mean(entropies)), step)
        if self.comm.is_main:
            image = probability_image(probabilities, f"architecture probabilities, epoch {step}")
            writer.add_image("architecture/probabilities", image, step, dataformats="HWC")

    def table(self, export: ArchExport) -> str:
        """The architecture as a text table: choice, candidate and, with probabilities, its
        probability and the entropy over its maximum ``log n`` (1: uniform, 0: decided); a
        ``*`` in ``changed`` marks the choices whose candidate changed since the previous epoch.
        """
        names = self.names(export)
        if not names:
            return f"{type(self.model).__name__}: no architecture choices"
        previous = self.previous or {}
        probabilities = self.probabilities(export)
        rows = []
        for label, best in names.items():
            changed = "*" if label in previous and previous[label] != best else ""
            if label in probabilities:
                values = np.fromiter(probabilities[label].values(), dtype=np.float64)
                h = entropy(values)
                norm = h / math.log(len(values)) if len(values) > 1 else 0.0
                p = values[export.architecture[label]]
                rows.append((label, best, f"{p:.3f}", f"{norm:.3f}", changed))
            else:
                rows.append((label, best, "", "", changed))
        head = ("choice", "argmax" if probabilities else "chosen", "prob", "entropy/max",
                "changed")  # fmt: skip
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [head, *rows]]
        lines.insert(1, "  ".join("-" * w for w in widths).rstrip())
        return "\n".join(lines)

    def results(self, export: ArchExport) -> dict[str, Any]:
        """``{"architecture": {label: candidate}, "arch_probabilities": {label: {cand: p}}}``
        (the probabilities only for searchers that have them)."""
        out: dict[str, Any] = {"architecture": dict(self.names(export))}
        if export.probabilities is not None:
            out["arch_probabilities"] = {k: dict(v) for k, v in self.probabilities(export).items()}
        return out

    def state_dict(self) -> dict[str, Any]:
        """The previous epoch's architecture (the log's ``changed`` column)."""
        return {"previous_argmax": self.previous}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.previous = state["previous_argmax"]

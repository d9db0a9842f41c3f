"""The experiment's outputs besides ``trials.jsonl``: TensorBoard, ``results.json``,
``arch.h5`` of the best trial, and the Pareto plot.

TensorBoard (``tensorboard/``) is derived from the trial log: per trial ``k`` (step ``k``),
``trial/score`` and every numeric figure and estimate (``trial/mean_acc``, ``trial/macs``, ...);
at the end ``best/score`` (the best score among trials ``0..k``) and the ``pareto`` image. A
resumed experiment rewrites the event files from ``trials.jsonl``, so each recorded trial
appears once.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
from pathlib import Path
from typing import Any, Sequence

from ..genotype import Genotype, save_genotype
from ..utils.io import atomic_write_json
from .pareto import cost_key, plot_pareto
from .record import TrialRecord
from .space import SearchSpace

__all__ = ["TrialBoard", "best_trial", "draw_best", "write_outputs"]

logger = logging.getLogger(__name__)

_WRITER_IDS = itertools.count()


def _numbers(values: dict[str, Any]) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in values.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    }


class TrialBoard:
    """The TensorBoard writer of an experiment.

    Args:
        folder: the ``tensorboard/`` folder.
        records: trials already recorded (a resumed experiment): the old event files are
            replaced by these records' scalars.
    """

    def __init__(self, folder: str | os.PathLike, records: Sequence[TrialRecord] = ()) -> None:
        from tensorboardX import SummaryWriter

        self.folder = Path(folder)
        if self.folder.is_dir():
            for old in self.folder.rglob("events.out.tfevents.*"):
                old.unlink()
        suffix = f".{os.getpid()}.{next(_WRITER_IDS):06d}"
        self.writer = SummaryWriter(str(self.folder), flush_secs=10, filename_suffix=suffix)
        for record in sorted(records, key=lambda r: r.trial):
            self.add(record)

    def add(self, record: TrialRecord) -> None:
        """The scalars of one trial (nothing for a trial that did not finish)."""
        if record.status != "ok":
            return
        values = {"score": record.score, **_numbers(record.scores), **_numbers(record.estimates)}
        for name, value in values.items():
            self.writer.add_scalar(f"trial/{name}", value, record.trial)

    def finish(self, records: Sequence[TrialRecord], image: Any = None) -> None:
        """``best/score`` over the trials in order, the Pareto image; closes the writer."""
        best = -math.inf
        for record in sorted(records, key=lambda r: r.trial):
            if record.ok:
                best = max(best, float(record.score))
            if math.isfinite(best):
                self.writer.add_scalar("best/score", best, record.trial)
        if image is not None:
            self.writer.add_image("pareto", image, len(records), dataformats="HWC")
        self.close()

    def close(self) -> None:
        """Closes the writer (every event on disk)."""
        self.writer.close()


def draw_best(
    model: Any, output: Path, architecture: dict[str, int], input_shape: Sequence[int] | None
) -> None:
    """``arch.png`` of the best architecture (the space's ``arch_graph``; skipped with a
    warning without graphviz's ``dot``) and the space's own files of it (``export_files``)."""
    import shutil

    from ..visualize import draw_architecture

    model.export_files(Path(output), architecture)
    if input_shape is None:
        logger.info("no input shape given: arch.png is not drawn")
        return
    if shutil.which("dot") is None:
        logger.warning("graphviz's 'dot' binary is missing: arch.png is not drawn (install it "
                       "with 'apt-get install graphviz')")  # fmt: skip
        return
    draw_architecture(model, Path(output) / "arch.png", input_shape, architecture=architecture)


def best_trial(records: Sequence[TrialRecord]) -> TrialRecord | None:
    """The feasible evaluated trial of highest score (the earliest of equals), or None."""
    candidates = [r for r in records if r.ok]
    return max(candidates, key=lambda r: (r.score, -r.trial)) if candidates else None


def write_outputs(
    output: Path,
    space: SearchSpace,
    records: Sequence[TrialRecord],
    metric: str,
    summary: dict[str, Any],
    board: TrialBoard | None = None,
    cost: str | None = None,
    final: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Writes ``results.json``, ``arch.h5`` (of the best trial) and ``pareto.png``.

    Args:
        output: the output folder.
        space: the searched space (its name goes into ``arch.h5``).
        records: every trial.
        metric: the evaluator's metric (the plot's y axis).
        summary: experiment facts merged into ``results.json`` (strategy, budget, ...).
        board: the TensorBoard writer to finish (None: no TensorBoard).
        cost: the figure plotted as the cost (default: latency, MACs, FLOPs or params).
        final: the evaluator's figures of the best trial computed after the search
            (``results.json``'s ``best.final``, e.g. its test accuracy).

    Returns:
        The content of ``results.json``.
    """
    best = best_trial(records)
    counts = {s: sum(r.status == s for r in records) for s in ("ok", "error", "killed")}
    results: dict[str, Any] = {
        **summary,
        "trials": len(records),
        "evaluated": counts["ok"],
        "errors": counts["error"],
        "killed": counts["killed"],
        "infeasible": sum(r.status == "ok" and not r.feasible for r in records),
        "wall_time_trials": sum(r.wall_time for r in records),
        "best": None,
        "pareto": {"cost": None, "trials": []},
    }
    if best is not None:
        results["best"] = {
            "trial": best.trial,
            "score": best.score,
            "architecture": best.architecture,
            "genotype": best.genotype,
            "scores": best.scores,
            "estimates": best.estimates,
            "seed": best.seed,
            "final": dict(final or {}),
        }
        extra = {"trial": best.trial, "score": best.score, **_numbers(best.scores),
                 **_numbers(best.estimates), **_numbers(final or {})}  # fmt: skip
        save_genotype(output / "arch.h5", Genotype(space.name, space.genotype(best.architecture),
                                                   {}, extra))  # fmt: skip
    image = None
    key = cost_key(records, cost)
    if key is not None and counts["ok"]:
        front, image = plot_pareto(records, metric, key, output / "pareto.png")
        results["pareto"] = {"cost": key, "trials": front}
    elif counts["ok"]:
        logger.info("no cost figure (latency, macs, flops, params) in the trials: no pareto.png")
    atomic_write_json(output / "results.json", results)
    if board is not None:
        board.finish(records, image)
    return results

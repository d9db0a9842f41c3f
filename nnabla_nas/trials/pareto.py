"""The Pareto front of the trials (score up, cost down) and its plot (``pareto.png``)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..utils.io import atomic_path
from .record import TrialRecord

__all__ = ["cost_key", "pareto_front", "plot_pareto"]

logger = logging.getLogger(__name__)

#: The cost plotted against the score, by preference: the first a trial has.
COST_KEYS = ("latency", "macs", "flops", "params")


def pareto_front(costs: Sequence[float], scores: Sequence[float]) -> list[int]:
    """The indices of the non-dominated points, by increasing cost.

    A point is dominated when another has a cost no higher and a score no lower, one of them
    strictly; equal points are all kept.
    """
    order = sorted(range(len(costs)), key=lambda i: (costs[i], -scores[i]))
    front: list[int] = []
    for i in order:
        if not front or scores[i] > scores[front[-1]]:
            front.append(i)
        elif scores[i] == scores[front[-1]] and costs[i] == costs[front[-1]]:
            front.append(i)
    return front


def cost_key(records: Sequence[TrialRecord], preferred: str | None = None) -> str | None:
    """The figure plotted as the cost: ``preferred`` if given, else the first of
    :data:`COST_KEYS` that the evaluated trials have (None: no cost figure)."""
    evaluated = [r for r in records if r.status == "ok"]
    for key in [preferred] if preferred else COST_KEYS:
        if evaluated and all(r.value(key) is not None for r in evaluated):
            return key
    return None


def plot_pareto(
    records: Sequence[TrialRecord], metric: str, cost: str, path: str | os.PathLike
) -> tuple[list[int], np.ndarray]:
    """Plots ``metric`` against ``cost`` of the evaluated trials, the Pareto front of the
    feasible ones marked, to a PNG written atomically.

    Returns:
        ``(trial numbers on the front, by increasing cost; the image as an RGB uint8 array
        (H, W, 3))``.
    """
    import PIL.Image
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    done = [r for r in records if r.status == "ok" and r.value(metric) is not None]
    feasible = [r for r in done if r.feasible]
    infeasible = [r for r in done if not r.feasible]
    costs = [r.value(cost) for r in feasible]
    values = [r.value(metric) for r in feasible]
    front = [feasible[i] for i in pareto_front(costs, values)]

    fig = Figure(figsize=(6.4, 4.4), dpi=100)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.scatter(costs, values, s=14, c="#7f9fbf", alpha=0.7, label=f"trials ({len(feasible)})")
    if infeasible:
        xs, ys = [r.value(cost) for r in infeasible], [r.value(metric) for r in infeasible]
        ax.scatter(xs, ys, s=16, c="#d62728", marker="x", label=f"infeasible ({len(xs)})")
    if front:
        # a staircase: up to the next front point, the best attainable score stays the same
        xs, ys = [r.value(cost) for r in front], [r.value(metric) for r in front]
        ax.plot(xs, ys, "-o", drawstyle="steps-post", c="#ff7f0e", ms=5,
                label=f"Pareto front ({len(front)})")  # fmt: skip
        best = max(feasible, key=lambda r: (r.score, -r.trial))
        ax.scatter([best.value(cost)], [best.value(metric)], s=140, marker="*", c="#2ca02c",
                   zorder=3, label=f"best score (trial {best.trial})")  # fmt: skip
    positive = [c for c in costs if c > 0]
    if positive and max(positive) > 10 * min(positive):
        ax.set_xscale("log")
        ax.minorticks_off()  # (matplotlib's minor log ticks cost seconds to lay out)
    ax.set_xlabel(cost)
    ax.set_ylabel(metric)
    ax.set_title(f"{len(done)} evaluated trials: {metric} against {cost}")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.12, top=0.92)
    canvas.draw()  # drawn once: the PNG and TensorBoard's image are the same pixels
    image = np.asarray(canvas.buffer_rgba())[..., :3].copy()
    with atomic_path(Path(path)) as tmp:
        PIL.Image.fromarray(image).save(tmp, format="PNG")
    return [r.trial for r in front], image

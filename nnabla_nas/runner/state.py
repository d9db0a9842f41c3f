"""The position and history of a run: what a checkpoint restores besides parameters, solvers
and the algorithm's own state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["RunState", "describe"]


def describe(position: tuple[int, int, int]) -> str:
    """``(epoch, step, iteration)`` in words, for messages."""
    epoch, step, iteration = position
    if step == 0:
        return f"after epoch {epoch}, iteration {iteration}"
    return f"epoch {epoch + 1}, step {step}, iteration {iteration}"


@dataclass
class RunState:
    """Where a run is and what it has measured.

    Attributes:
        epoch: the epoch in progress (= epochs completed, warm-up included).
        step: weight updates done in the epoch in progress.
        iteration: weight updates done so far (all phases).
        arch_position: (epoch of the architecture loader, batches used in it).
        epoch_sums: sums of the step metrics of the epoch so far.
        history: the metrics of every completed epoch.
        best: the epoch with the lowest validation error (None before the first).
        last: the last epoch's metrics.
        hardware: the last epoch's hardware estimates.
        elapsed: wall time of previous sessions (a resumed run), seconds.
    """

    epoch: int = 0
    step: int = 0
    iteration: int = 0
    arch_position: tuple[int, int] = (0, 0)
    epoch_sums: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    best: dict[str, float] | None = None
    last: dict[str, float] = field(default_factory=dict)
    hardware: dict[str, float] = field(default_factory=dict)
    elapsed: float = 0.0

    @property
    def position(self) -> tuple[int, int, int]:
        """``(epoch, step, iteration)``."""
        return (self.epoch, self.step, self.iteration)

    def to_dict(self, elapsed: float) -> dict[str, Any]:
        """The JSON form (with the total wall time ``elapsed`` so far)."""
        return {
            "epoch": self.epoch,
            "step": self.step,
            "iteration": self.iteration,
            "arch_position": list(self.arch_position),
            "epoch_sums": dict(self.epoch_sums),
            "history": [dict(h) for h in self.history],
            "best": None if self.best is None else dict(self.best),
            "last": dict(self.last),
            "hardware": dict(self.hardware),
            "elapsed": elapsed,
        }

    def load(self, state: dict[str, Any]) -> None:
        """Restores a :meth:`to_dict`."""
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.iteration = int(state["iteration"])
        self.arch_position = (int(state["arch_position"][0]), int(state["arch_position"][1]))
        self.epoch_sums = {k: float(v) for k, v in state["epoch_sums"].items()}
        self.history = [dict(h) for h in state["history"]]
        self.best = None if state["best"] is None else dict(state["best"])
        self.last = dict(state["last"])
        self.hardware = dict(state["hardware"])
        self.elapsed = float(state["elapsed"])

"""Where the time of a run goes: exclusive wall time per phase (``benchmarks/profile_search.py``).

A :class:`PhaseClock` is a stack of phases: entering a phase inside another pauses the outer one,
so every second is counted once, in the innermost phase (the solver update's time excludes the
all-reduce it calls). A phase entered with ``absorb=True`` (an evaluation, a checkpoint) takes the
phases inside it as its own: the forwards of an evaluation count as evaluation.

:class:`~nnabla_nas.runner.steps.Steps` times graph construction, forwards and backwards on its
``clock`` (:data:`NO_CLOCK`, which costs nothing, unless a profiler installs a
:class:`PhaseClock`).
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, ContextManager, Iterator

__all__ = ["NO_CLOCK", "NoClock", "PhaseClock"]


class NoClock:
    """The clock of a run that is not profiled: every phase is a shared null context."""

    _NULL = contextlib.nullcontext()

    def __call__(self, name: str, absorb: bool = False) -> ContextManager[Any]:
        return self._NULL


#: The default clock of the passes (no profiling).
NO_CLOCK = NoClock()


class PhaseClock(NoClock):
    """Exclusive wall time and number of entries per phase (see the module docstring).

    Attributes:
        seconds: phase name -> seconds spent in it (inner phases excluded).
        calls: phase name -> times it was entered.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._stack: list[list[Any]] = []  # [name, start of the running stretch, absorbing]

    def _add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    @contextlib.contextmanager
    def _phase(self, name: str, absorb: bool) -> Iterator[None]:
        now = time.perf_counter()
        if self._stack:
            top = self._stack[-1]
            self._add(top[0], now - top[1])
        self._stack.append([name, now, absorb])
        self.calls[name] = self.calls.get(name, 0) + 1
        try:
            yield
        finally:
            now = time.perf_counter()
            top = self._stack.pop()
            self._add(top[0], now - top[1])
            if self._stack:
                self._stack[-1][1] = now

    def __call__(self, name: str, absorb: bool = False) -> ContextManager[Any]:
        """The context of phase ``name`` (inside an absorbing phase: that phase's)."""
        if self._stack and self._stack[-1][2]:
            return self._NULL
        return self._phase(name, absorb)

    def snapshot(self) -> dict[str, float]:
        """A copy of :attr:`seconds` (the running phases' current stretches included)."""
        out = dict(self.seconds)
        if self._stack:
            top = self._stack[-1]
            out[top[0]] = out.get(top[0], 0.0) + time.perf_counter() - top[1]
        return out

"""The phase clock of benchmarks/profile_search.py: every second counted once, in the innermost
phase; an absorbing phase keeps the phases inside it; the passes report to it."""

from __future__ import annotations

import numpy as np

from nnabla_nas.runner import profile
from nnabla_nas.runner.profile import NO_CLOCK, PhaseClock
from nnabla_nas.runner.steps import Steps


class _Time:
    """A clock that advances only when told."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_phases_are_exclusive_and_absorbing_phases_keep_the_inner_ones(monkeypatch):
    t = _Time()
    monkeypatch.setattr(profile.time, "perf_counter", t)
    clock = PhaseClock()
    with clock("other"):
        t.now += 1.0
        with clock("forward"):
            t.now += 2.0
            with clock("update"):
                t.now += 4.0
            t.now += 8.0
        with clock("evaluation", absorb=True):
            t.now += 16.0
            with clock("forward"):  # an evaluation's forward is evaluation
                t.now += 32.0
        t.now += 64.0
        assert clock.snapshot()["other"] == 65.0  # the running phase's stretch included
    assert clock.seconds == {"other": 65.0, "forward": 10.0, "update": 4.0, "evaluation": 48.0}
    assert clock.calls == {"other": 1, "forward": 1, "update": 1, "evaluation": 1}
    assert NO_CLOCK("forward") is NO_CLOCK("backward")  # unprofiled: one shared null context


def test_the_passes_report_graph_forward_and_backward():
    from searcher_toy import ToySpace, toy_data

    from nnabla_nas.distributed import SingleProcess
    from nnabla_nas.module import use_architecture

    model = ToySpace(seed=0)
    steps = Steps(model, SingleProcess(), 0.0, lambda what, done: RuntimeError(what))
    steps.clock = clock = PhaseClock()
    x, y = toy_data(8, seed=0)
    with use_architecture(model, {"choice": 2}):
        m = steps.accumulate(steps.split(x, y, 4), cache=True, key="train")
        steps.accumulate(steps.split(x, y, 4), cache=True, key="arch", backward=False)
    assert np.isfinite(m["loss"])
    # two graphs (one per key, the mini-batches share the shape), four forwards, two backwards
    assert clock.calls == {"graph": 2, "forward": 4, "backward": 2}
    assert all(s > 0 for s in clock.seconds.values())

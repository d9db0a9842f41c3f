"""Toy tables with known answers, and evaluators that misbehave on purpose (importable by Dask
workers: they are pickled by reference)."""

from __future__ import annotations

import itertools
import os
import signal
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from nnabla_nas.trials import BenchmarkTable, Evaluator, TableEvaluator
from nnabla_nas.trials.executor import Executor, Finished
from nnabla_nas.trials.record import TrialOutcome, TrialRequest
from nnabla_nas.trials.worker import load_count, run_trial


def toy_table(choices: int = 3, candidates: int = 3, name: str = "toy") -> BenchmarkTable:
    """A table over ``choices`` decisions ``c<i>`` with candidates ``k0..k{n-1}``.

    ``acc = 50 + sum_i (j_i + 1) * (i + 1) / 10`` where ``j_i`` is decision i's candidate: the
    unique best architecture takes the last candidate everywhere (key ``"22...2"`` for 3
    candidates); ``flops = sum_i 10 ** j_i`` grows with every candidate, so the cheapest is
    all first candidates and the Pareto front is not a single point.
    """
    entries = {}
    for combo in itertools.product(range(candidates), repeat=choices):
        key = "".join(str(j) for j in combo)
        acc = 50 + sum((j + 1) * (i + 1) / 10 for i, j in enumerate(combo))
        entries[key] = {"acc": acc, "flops": float(sum(10**j for j in combo)), "runs": [acc]}
    names = OrderedDict((f"k{j}", str(j)) for j in range(candidates))
    spec = OrderedDict((f"c{i}", names) for i in range(choices))
    return BenchmarkTable(entries, spec, name=name, metric="acc")


def best_key(table: BenchmarkTable) -> str:
    return max(table.entries, key=lambda k: table.entries[k]["acc"])


class ShuffledExecutor(Executor):
    """Runs trials at submission but returns them in a scrambled order (the last submitted
    first, every other time), as parallel workers of unequal speed would."""

    def __init__(self, evaluator: Any, workers: int = 3, lose: dict[int, int] | None = None):
        self.evaluator = evaluator
        self.workers = workers
        self.done: list[Finished] = []
        self.submitted: list[TrialRequest] = []
        self.lose = dict(lose or {})  # trial -> how many attempts die
        self.returned: list[int] = []  # trial numbers, in the order wait() returned them
        self._flip = False

    def submit(self, request: TrialRequest) -> None:
        self.submitted.append(request)
        if request.attempt <= self.lose.get(request.trial, 0):
            self.done.append((request, None, "KilledWorker: planted"))
        else:
            self.done.append((request, run_trial(self.evaluator, request), None))

    def wait(self) -> Finished:
        self._flip = not self._flip
        finished = self.done.pop(-1 if self._flip else 0)
        self.returned.append(finished[0].trial)
        return finished


class SlowTable(TableEvaluator):
    """A table lookup that takes ``delay`` seconds."""

    def __init__(self, table: Any, delay: float = 0.1) -> None:
        super().__init__(table)
        self.delay = delay

    def evaluate(self, request: TrialRequest, resources: Any) -> dict[str, Any]:
        time.sleep(self.delay)
        return super().evaluate(request, resources)


class CountingTable(TableEvaluator):
    """Reports how many times this process loaded the table (``loads``) and its pid."""

    def evaluate(self, request: TrialRequest, resources: Any) -> dict[str, Any]:
        time.sleep(0.05)
        return {**super().evaluate(request, resources), "loads": load_count(self),
                "pid": os.getpid()}  # fmt: skip


class RaisingTable(TableEvaluator):
    """Raises for trial ``bad``."""

    def __init__(self, table: Any, bad: int) -> None:
        super().__init__(table)
        self.bad = bad

    def evaluate(self, request: TrialRequest, resources: Any) -> dict[str, Any]:
        if request.trial == self.bad:
            raise ValueError(f"planted failure of trial {request.trial}")
        return super().evaluate(request, resources)


class HangingTable(TableEvaluator):
    """On its first attempt, trial ``victim`` writes its pid to ``folder/victim.pid`` and
    waits (at most 60 s) to be killed; every other evaluation is a lookup."""

    def __init__(self, table: Any, victim: int, folder: str) -> None:
        super().__init__(table)
        self.victim, self.folder = victim, folder

    def evaluate(self, request: TrialRequest, resources: Any) -> dict[str, Any]:
        if request.trial == self.victim and request.attempt == 1:
            Path(self.folder, "victim.pid").write_text(str(os.getpid()))
            time.sleep(60)
        time.sleep(0.05)
        return super().evaluate(request, resources)


class DyingTable(TableEvaluator):
    """Trial ``victim`` kills its own worker process (SIGKILL) on every attempt."""

    def __init__(self, table: Any, victim: int) -> None:
        super().__init__(table)
        self.victim = victim

    def evaluate(self, request: TrialRequest, resources: Any) -> dict[str, Any]:
        if request.trial == self.victim:
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.05)
        return super().evaluate(request, resources)


def outcome(scores: dict[str, Any]) -> TrialOutcome:
    return TrialOutcome("ok", scores)


class IndexSum(Evaluator):
    """A known answer for any space: ``acc`` is the sum of the candidate indices."""

    kind = "index_sum"

    @property
    def metric(self) -> str:
        return "acc"

    def metrics(self) -> list[str]:
        return ["acc"]

    def evaluate(self, request: TrialRequest, resources: Any) -> dict[str, Any]:
        return {"acc": float(sum(request.architecture.values()))}

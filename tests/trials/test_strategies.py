"""Strategies against known answers: uniform random without repeats, ageing evolution, TPE."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from nnabla_nas.errors import ConfigError
from nnabla_nas.trials import STRATEGIES, EvolutionSearcher, RandomTrials, TableEvaluator, TpeTrials
from nnabla_nas.trials.driver import Recorder, drive
from nnabla_nas.trials.executor import InlineExecutor
from nnabla_nas.trials.objective import Objective
from nnabla_nas.trials.record import TrialRecord

from .toy import best_key, toy_table


def record(trial: int, architecture: dict, score: float | None, status: str = "ok",
           feasible: bool = True) -> TrialRecord:  # fmt: skip
    return TrialRecord(trial, architecture, {}, status, score, feasible)


def queries_to_best(strategy, table, budget: int) -> int:
    """Trials a strategy needs until it proposes the table's best architecture (budget + 1 if
    it never does), run through the real driver in this process."""
    evaluator = TableEvaluator(table)
    target = best_key(table)
    records = drive(strategy, InlineExecutor(evaluator), budget,
                    Recorder(Objective(evaluator.metric)),
                    stop=lambda r: table.key(r.genotype) == target)  # fmt: skip
    keys = [table.key(r.genotype) for r in records]
    return keys.index(target) + 1 if target in keys else budget + 1


def test_registry_names():
    assert STRATEGIES.get("evolution") is EvolutionSearcher
    assert STRATEGIES.get("RandomTrials") is RandomTrials and STRATEGIES.get("tpe") is TpeTrials
    with pytest.raises(ConfigError, match="unknown trial strategy 'x'; valid choices"):
        STRATEGIES.get("x")


def test_random_covers_the_space_without_repeats_then_stops():
    space = toy_table(2, 3).space()
    strategy = RandomTrials(space, seed=3)
    proposals = [strategy.propose() for _ in range(9)]
    assert sorted(space.key(a) for a in proposals) == sorted(space.key(a) for a in space)
    assert strategy.propose() is None


def test_random_is_deterministic_per_seed():
    space = toy_table(4, 3).space()
    a = [RandomTrials(space, seed=7).propose() for _ in range(1)]
    s1, s2, s3 = RandomTrials(space, 7), RandomTrials(space, 7), RandomTrials(space, 8)
    seq1 = [s1.propose() for _ in range(20)]
    assert seq1 == [s2.propose() for _ in range(20)] and seq1[0] == a[0]
    assert seq1 != [s3.propose() for _ in range(20)]


def test_mutation_changes_exactly_one_choice():
    space = toy_table(5, 4).space()
    evo = EvolutionSearcher(space, seed=0)
    parent = {label: 1 for label in space.labels}
    changed = []
    for _ in range(400):
        child = evo.mutate(parent)
        diff = [k for k in parent if child[k] != parent[k]]
        assert len(diff) == 1 and 0 <= child[diff[0]] < 4
        changed.append((diff[0], child[diff[0]]))
    # every decision and every other candidate is reachable (uniform: 400 / 15 ~ 27 each)
    assert len(set(changed)) == 5 * 3
    assert parent == {label: 1 for label in space.labels}  # the parent is not modified


def test_ageing_removes_the_oldest_not_the_worst():
    space = toy_table(3, 3).space()
    cfg = EvolutionSearcher.Config(population_size=3, sample_size=2)
    evo = EvolutionSearcher(space, seed=0, config=cfg)
    scores = [90.0, 10.0, 20.0, 30.0, 40.0]  # the oldest is the best
    for i, s in enumerate(scores):
        arch = evo.propose()
        evo.tell(record(i, arch, s))
    assert [ind.trial for ind in evo.population] == [2, 3, 4]
    assert max(ind.fitness for ind in evo.population) == 40.0


def test_failed_trials_do_not_join_and_random_phase_counts_pending():
    space = toy_table(3, 3).space()
    evo = EvolutionSearcher(space, seed=1, config=EvolutionSearcher.Config(3, 3))
    first = [evo.propose() for _ in range(3)]  # population 0 + pending 0..2 < 3: random
    evo.tell(record(0, first[0], None, status="error"))
    evo.tell(record(1, first[1], 5.0))
    evo.tell(record(2, first[2], 7.0, feasible=False))
    assert [ind.trial for ind in evo.population] == [1, 2]
    assert evo.population[1].fitness == -math.inf
    # population 2 + pending 0 < 3: still random; with one pending (2 + 1 = 3): a child
    evo.propose()
    child = evo.propose()
    diffs = [sum(child[k] != ind.architecture[k] for k in child) for ind in evo.population]
    assert 1 in diffs


def test_tournament_parent_is_the_best_of_the_sample():
    space = toy_table(3, 3).space()
    # sample_size == population_size and a draw with replacement still sees the best often;
    # with the best 1000x better, every child must be one mutation away from SOME sampled
    # parent, and over many proposals most children come from the best.
    evo = EvolutionSearcher(space, seed=2, config=EvolutionSearcher.Config(4, 4))
    archs = [evo.propose() for _ in range(4)]
    for i, (a, s) in enumerate(zip(archs, [1.0, 2.0, 1000.0, 3.0])):
        evo.tell(record(i, a, s))
    best = archs[2]
    from_best = 0
    for _ in range(200):
        child = evo.propose()
        evo.proposed -= 1  # keep the population as it is (no tell)
        from_best += sum(child[k] != best[k] for k in child) == 1
    # P(best not in a sample of 4 with replacement) = (3/4)^4 = 0.32
    assert 110 < from_best < 170


@pytest.mark.parametrize("bad, key", [((1, 1), "population_size"), ((4, 5), "sample_size"),
                                      ((4, 0), "sample_size")])  # fmt: skip
def test_evolution_config_is_checked(bad, key):
    with pytest.raises(ConfigError, match=f"searcher.{key}"):
        EvolutionSearcher(toy_table().space(), config=EvolutionSearcher.Config(*bad))


def test_evolution_finds_the_optimum_faster_than_random():
    """On a 1,024-architecture toy table with an additive landscape, over 10 fixed seeds
    (random needs about 512 queries in expectation)."""
    table = toy_table(5, 4)
    space, budget = table.space(), 1024
    cfg = EvolutionSearcher.Config(population_size=20, sample_size=5)
    evo = [queries_to_best(EvolutionSearcher(space, s, cfg), table, budget) for s in range(10)]
    rnd = [queries_to_best(RandomTrials(space, s), table, budget) for s in range(10)]
    assert max(evo) <= budget and max(rnd) <= budget  # unique random search covers the space
    assert np.mean(evo) < 0.4 * np.mean(rnd), (evo, rnd)


def test_tpe_is_deterministic_and_proposes_better_than_random():
    table = toy_table(4, 3)
    space = table.space()

    def run(strategy, n=40):
        scores = []
        for i in range(n):
            arch = strategy.propose()
            scores.append(table.lookup(space.genotype(arch))["acc"])
            strategy.tell(record(i, arch, scores[-1]))
        return scores

    assert run(TpeTrials(space, seed=0)) == run(TpeTrials(space, seed=0))
    # after the 10 random start-up trials, TPE's proposals are better than random ones
    tpe = np.mean([np.mean(run(TpeTrials(space, seed=s))[20:]) for s in range(4)])
    rnd = np.mean([np.mean(run(RandomTrials(space, seed=s))[20:]) for s in range(4)])
    assert tpe > rnd + 0.3, (tpe, rnd)


def test_tpe_without_optuna_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna -> ImportError
    with pytest.raises(ConfigError, match=r"TpeTrials needs Optuna.*nnabla_nas\[tpe\]"):
        TpeTrials(toy_table().space())

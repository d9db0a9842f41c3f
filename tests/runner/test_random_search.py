"""RandomSearcher: the uniform and fair schedules' frequencies (exactly, for fair), independent
draws across decisions and reproducible ones, the candidates, the best exported being the best
evaluated, the hardware term of the score, and the refusals."""

from __future__ import annotations

import itertools
import json
from collections import Counter

import numpy as np
import pytest
from oneshot_toy import MACS, CostToy, flops_regularizer, searcher

from nnabla_nas.errors import ConfigError
from nnabla_nas.genotype import load_genotype
from nnabla_nas.runner.searcher.random_schedule import (
    FairSchedule,
    UniformSchedule,
    draw_candidates,
)
from nnabla_nas.runner.searcher.random_search import RandomSearchConfig
from nnabla_nas.runner.searcher.reward import HardwareReward

SIZES = {"a": 3, "b": 4, "c": 3}


def test_uniform_draws_are_uniform_and_independent_across_decisions():
    n = 2400
    schedule = UniformSchedule(SIZES, np.random.RandomState(0))
    draws = [schedule.next() for _ in range(n)]

    def bound(p):  # 4 standard deviations of a rate over n draws
        return 4 * np.sqrt(p * (1 - p) / n)

    for label, size in SIZES.items():
        freq = np.bincount([d[label] for d in draws], minlength=size) / n
        assert np.all(np.abs(freq - 1 / size) < bound(1 / size)), (label, freq)
    pairs = Counter((d["a"], d["b"]) for d in draws)  # joint = product of the marginals
    for i, j in itertools.product(range(3), range(4)):
        assert abs(pairs[i, j] / n - 1 / 12) < bound(1 / 12), (i, j)
    same = np.mean([d["a"] == d["c"] for d in draws])
    assert abs(same - 1 / 3) < bound(1 / 3)


def test_fair_schedule_trains_every_candidate_exactly_once_per_round():
    schedule = FairSchedule(SIZES, np.random.RandomState(0))
    draws = [schedule.next() for _ in range(24)]  # 8 rounds of a and c, 6 of b
    for label, size in SIZES.items():
        column = [d[label] for d in draws]
        for start in range(0, 24, size):
            assert sorted(column[start : start + size]) == list(range(size)), (label, start)
        assert Counter(column) == {i: 24 // size for i in range(size)}
    rounds = {tuple(d["a"] for d in draws[s : s + 3]) for s in range(0, 24, 3)}
    assert len(rounds) > 1  # a new random permutation every round
    assert [d["a"] for d in draws] != [d["c"] for d in draws]  # each decision its own


@pytest.mark.parametrize("cls", [UniformSchedule, FairSchedule])
def test_schedules_are_reproducible_and_resume_from_their_state(cls):
    rng = np.random.RandomState(5)
    schedule = cls(SIZES, rng)
    first = [schedule.next() for _ in range(5)]  # stops mid-round
    state, rng_state = schedule.state_dict(), rng.get_state()
    rest = [schedule.next() for _ in range(7)]
    again_rng = np.random.RandomState(0)
    again_rng.set_state(rng_state)
    resumed = cls(SIZES, again_rng)
    resumed.load_state_dict(json.loads(json.dumps(state)))  # as a checkpoint stores it
    assert [resumed.next() for _ in range(7)] == rest
    other = cls(SIZES, np.random.RandomState(5))  # another rank, the same seed: the same paths
    assert [other.next() for _ in range(5)] == first


def test_candidates_are_distinct_and_all_of_a_small_space():
    rng = np.random.RandomState(0)
    drawn = draw_candidates(SIZES, 30, rng)
    assert len({tuple(a.values()) for a in drawn}) == 30 and list(drawn[0]) == list(SIZES)
    every = draw_candidates(SIZES, 100, rng)  # 36 architectures: all of them, shuffled
    assert sorted(tuple(a.values()) for a in every) == list(
        itertools.product(*map(range, [3, 4, 3]))
    )
    assert [tuple(a.values()) for a in every[:3]] != [(0, 0, 0), (0, 0, 1), (0, 0, 2)]


def test_the_best_exported_is_the_best_evaluated(tmp_path):
    algo = searcher("RandomSearcher", tmp_path / "run", {"num_candidates": 3,
                    "bn_recalibration_batches": 1, "evaluate_every": 1}, epoch=2)  # fmt: skip
    results = algo.run()
    records = results["candidates"]
    assert sorted(r["architecture"]["choice"] for r in records) == sorted(MACS)  # all three
    scores = [r["score"] for r in records]
    best = results["best_candidate"]
    assert scores[best] == max(scores) and len(set(scores)) > 1
    assert results["architecture"] == records[best]["architecture"]
    geno = load_genotype(tmp_path / "run" / "arch.h5", expected_space="toy")
    assert dict(geno.choices) == records[best]["architecture"]
    # the loop evaluated the exported candidate as the search scored it: the same network
    # (recalibrated statistics), the same data
    assert results["final"]["valid_error"] == pytest.approx(records[best]["valid_error"])
    assert results["final"]["valid_loss"] == pytest.approx(records[best]["valid_loss"], rel=1e-6)
    assert results["candidates_epoch"] == 4  # 2 warm-up + 2 epochs
    for r in records:  # the estimates of every candidate
        assert r["flops_macs"] == MACS[r["architecture"]["choice"]]
        assert r["params"] == CostToy(0).num_params(
            {"choice": ["zero", "mean", "wide"].index(r["architecture"]["choice"])}
        )
        assert r["score"] == pytest.approx(1.0 - r["valid_error"]) and r["reward_factor"] == 1.0


@pytest.mark.parametrize("weight, found", [(0.0, "wide"), (0.5, "mean")])
def test_the_hardware_term_of_the_score_moves_the_result(tmp_path, weight, found):
    algo = searcher("RandomSearcher", tmp_path / "run", {"num_candidates": 3,
                    "bn_recalibration_batches": 1}, regularizers=flops_regularizer(weight),
                    epoch=2, warmup=2)  # fmt: skip
    results = algo.run()
    assert results["architecture"] == {"choice": found}
    assert results["hardware"]["latency_macs"] == MACS[found]
    mean = sum(MACS.values()) / 3  # the reference: the average over the space
    for r in results["candidates"]:
        factor = (mean / MACS[r["architecture"]["choice"]]) ** weight
        assert r["reward_factor"] == pytest.approx(factor)
        assert r["score"] == pytest.approx((1.0 - r["valid_error"]) * factor)


def test_reward_reference_given_or_averaged_and_the_bound_form():
    model = CostToy(0)
    average = HardwareReward(flops_regularizer(0.5), model)
    assert average.references == {"latency": pytest.approx(sum(MACS.values()) / 3)}
    given = HardwareReward(flops_regularizer(0.5, ref=48.0), model)
    assert given.references == {"latency": 48.0}
    assert given.factor({"choice": 2}) == pytest.approx((48.0 / MACS["wide"]) ** 0.5)
    bound = HardwareReward(flops_regularizer(0.5), model, form="bound")  # bound 100
    assert bound.factor({"choice": 0}) == 1.0
    assert bound.factor({"choice": 2}) == pytest.approx((100.0 / MACS["wide"]) ** 0.5)
    assert HardwareReward(flops_regularizer(0.0), model).factor({"choice": 2}) == 1.0


@pytest.mark.parametrize(
    "keys, key",
    [({"sampling": "greedy"}, "sampling"), ({"num_candidates": 0}, "num_candidates"),
     ({"bn_recalibration_batches": -1}, "bn_recalibration_batches"),
     ({"hardware_reward": "add"}, "hardware_reward")],
)  # fmt: skip
def test_bad_options_name_the_key(keys, key):
    with pytest.raises(ConfigError) as err:
        RandomSearchConfig(**keys).check()
    assert err.value.key == key

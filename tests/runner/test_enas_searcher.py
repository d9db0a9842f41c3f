"""EnasSearcher on the toy space with a known answer: the controller moves to the rewarded
architecture through the searcher (and to another one when the reward prices the FLOPs), the
final architecture is the best of the final samples, the controller phases' schedule, the
marginals exported, and the refusals."""

from __future__ import annotations

import numpy as np
import pytest
from oneshot_toy import MACS, NAMES, flops_regularizer, searcher

from nnabla_nas.errors import ConfigError
from nnabla_nas.genotype import load_genotype
from nnabla_nas.runner.searcher.enas_config import EnasConfig

#: A small controller that learns in a few dozen updates (no tanh nor temperature, a wider
#: initialisation than the paper's, no entropy bonus: the toy has a single decision).
FAST = {"lstm_size": 8, "init_range": 0.5, "temperature": None, "tanh_constant": None,
        "entropy_weight": 0.0, "baseline_decay": 0.5, "controller_steps": 10, "num_samples": 4,
        "num_final_samples": 3, "marginal_samples": 20, "bn_recalibration_batches": 0}  # fmt: skip


@pytest.mark.parametrize("weight, found", [(0.0, "wide"), (0.5, "mean")])
def test_the_controller_moves_to_the_rewarded_architecture(tmp_path, weight, found):
    options = {**FAST, "controller_steps": 16}
    algo = searcher("EnasSearcher", tmp_path / "run", options, epoch=2, warmup=1,
                    regularizers=flops_regularizer(weight))  # fmt: skip
    results = algo.run()
    assert results["architecture"] == {"choice": found}
    assert results["hardware"]["latency_macs"] == MACS[found]
    probs = algo.controller.score({"choice": 0}).probabilities["choice"]
    assert probs[NAMES.index(found)] > 0.9, probs
    phases = results["controller_phases"]
    assert len(phases) == 2 and results["controller_updates"] == 32  # one phase per epoch
    assert phases[-1]["reward"] > phases[0]["reward"]
    # the final architecture is the best of the distinct final samples
    records = results["final_candidates"]
    best = results["best_final_candidate"]
    assert records[best]["architecture"] == {"choice": found}
    assert records[best]["score"] == max(r["score"] for r in records)
    geno = load_genotype(tmp_path / "run" / "arch.h5", expected_space="toy")
    assert dict(geno.choices) == {"choice": found}


def test_controller_every_sets_the_phases_and_the_final_selection_uses_the_reward(tmp_path):
    options = {**FAST, "controller_every": 2, "controller_steps": 2, "num_final_samples": 20,
               "init_range": 0.01}  # fmt: skip
    algo = searcher("EnasSearcher", tmp_path / "run", options, epoch=2, warmup=1,
                    regularizers=flops_regularizer(0.5))  # fmt: skip
    results = algo.run()
    # 2 epochs of 4 steps: phases after every 2nd architecture call
    assert [p["updates"] for p in results["controller_phases"]] == [2, 4, 6, 8]
    records = results["final_candidates"]  # a nearly uniform controller: all three drawn
    assert sorted(r["architecture"]["choice"] for r in records) == sorted(NAMES)
    mean = sum(MACS.values()) / 3
    for r in records:
        factor = (mean / MACS[r["architecture"]["choice"]]) ** 0.5
        assert r["reward_factor"] == pytest.approx(factor)
        assert r["score"] == pytest.approx((1.0 - r["valid_error"]) * factor)
    best = results["best_final_candidate"]
    assert results["architecture"] == records[best]["architecture"]
    assert records[best]["score"] == max(r["score"] for r in records)


def test_the_marginals_estimate_the_controllers_probabilities(tmp_path):
    options = {**FAST, "marginal_samples": 400, "init_range": 3.0}
    algo = searcher("EnasSearcher", tmp_path / "run", options, epoch=1)
    algo.loop()  # set up
    exact = algo.controller.score({"choice": 0}).probabilities["choice"]
    assert exact.max() - exact.min() > 0.3  # not uniform: the estimate is tested
    state = algo.rng.get_state()[1].copy()
    marginals = algo.marginals()
    n, bound = 400, 4 * np.sqrt(0.25 / 400)
    assert abs(marginals["choice"].sum() - 1.0) < 1e-12
    np.testing.assert_array_less(np.abs(marginals["choice"] - exact), bound)
    np.testing.assert_array_equal(algo.marginals()["choice"], marginals["choice"])  # cached
    np.testing.assert_array_equal(algo.rng.get_state()[1], state)  # the search's draws untouched
    assert n * marginals["choice"][0] == int(n * marginals["choice"][0])  # counts of samples
    export = algo.export()
    greedy = algo.controller.greedy().architecture
    assert export.architecture == greedy and greedy["choice"] == int(np.argmax(exact))
    algo.options.marginal_samples = 0
    assert algo.marginals() is None


@pytest.mark.parametrize(
    "keys, key",
    [({"controller_steps": 0}, "controller_steps"), ({"num_final_samples": 0},
     "num_final_samples"), ({"controller_every": -1}, "controller_every"),
     ({"marginal_samples": -1}, "marginal_samples"), ({"hardware_reward": "sum"},
     "hardware_reward"), ({"skip_target": 1.0}, "skip_target")],
)  # fmt: skip
def test_bad_options_name_the_key(keys, key):
    with pytest.raises(ConfigError) as err:
        EnasConfig(**keys).check()
    assert err.value.key == key

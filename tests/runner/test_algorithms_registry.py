"""Registry-driven: every registered algorithm runs a few steps on a tiny space through the
Python API, checkpoints, resumes exactly where it stopped, and exports its architecture.

A new algorithm adds its tiny configuration to TINY (the test fails until it does).
"""

from __future__ import annotations

import json

import nnabla as nn
import numpy as np
import pytest
from searcher_toy import ToySpace, make_data, make_optimizers, make_options

from nnabla_nas.contrib.model import Model
from nnabla_nas.genotype import load_genotype
from nnabla_nas.module import Linear
from nnabla_nas.runner import ALGORITHMS


class FixedToy(Model):
    """The toy space's network with its choice fixed to the linear candidate."""

    space_name = "toy"

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.RandomState(seed)
        self.choice = Linear(8, 8, rng=rng)
        self.head = Linear(8, 3, rng=rng)

    def call(self, x):
        return self.head(self.choice(x))


#: name -> (the algorithm's options, the model factory); tiny: seconds on 2 cores.
TINY = {
    "Trainer": ({}, FixedToy),
    "ProxylessNasSearcher": ({"estimator": "reinforce", "num_samples": 2}, ToySpace),
    "DartsSearcher": ({"order": 2}, ToySpace),
    "EnasSearcher": (
        {"lstm_size": 8, "controller_steps": 2, "num_samples": 2, "num_final_samples": 3,
         "marginal_samples": 5, "bn_recalibration_batches": 1},
        ToySpace,
    ),
    "RandomSearcher": ({"sampling": "fair", "num_candidates": 2, "evaluate_every": 1}, ToySpace),
}  # fmt: skip


def _algorithm(name, output):
    options, factory = TINY[name]
    nn.clear_parameters()
    return ALGORITHMS.get(name)(
        factory(0), make_data(16), output, options=options, loop=make_options(epoch=2, warmup=1),
        optimizers=make_optimizers(), seed=3,
    )  # fmt: skip


class _Stop(Exception):
    pass


def _everything(algo):
    params = {**algo.model.get_parameters(), **algo.parameters()}
    return {k: np.array(v.d, copy=True) for k, v in params.items()}


@pytest.mark.parametrize("name", ALGORITHMS.names())
def test_every_algorithm_runs_checkpoints_resumes_and_exports(name, tmp_path, monkeypatch):
    if name not in TINY:
        pytest.fail(f"add a tiny configuration of the {name!r} algorithm to TINY in {__file__}")
    full = _algorithm(name, tmp_path / "full")
    results = full.run()
    expected = _everything(full)
    assert results["steps"] == 3 * 4 and results["algorithm"] == name
    assert json.loads((tmp_path / "full" / "results.json").read_text())["steps"] == 12
    config = json.loads((tmp_path / "full" / "config.json").read_text())
    assert config["algorithm"] == name and config["epoch"] == 2 and config["warmup"] == 1
    assert (tmp_path / "full" / "weights.h5").is_file()
    if full.search:
        geno = load_genotype(tmp_path / "full" / "arch.h5", expected_space="toy")
        assert set(geno.choices) == set(full.model.choices()) == {"choice"}
        assert dict(geno.choices) == results["architecture"]
        assert geno.extra["epoch"] == 3

    # Stopped right after its second checkpoint (end of the first epoch after warm-up), then
    # rebuilt from scratch and resumed: it ends exactly as the uninterrupted run.
    stopped = _algorithm(name, tmp_path / "stopped")
    loop = stopped.loop()
    save, calls = type(loop).save_checkpoint, []

    def save_then_stop(self):
        calls.append(save(self))
        if len(calls) == 2:
            raise _Stop

    monkeypatch.setattr(type(loop), "save_checkpoint", save_then_stop)
    with pytest.raises(_Stop):
        stopped.run()
    monkeypatch.undo()
    stopped.rng.randn(7)  # the algorithm's state that must not leak into the resumed run
    resumed = _algorithm(name, tmp_path / "stopped")
    assert resumed.resume()
    assert resumed.loop().state.epoch == 2
    again = resumed.run()
    got = _everything(resumed)
    assert got.keys() == expected.keys()
    for key, value in got.items():
        np.testing.assert_array_equal(value, expected[key], err_msg=f"{name}: {key}")
    assert again["history"] == results["history"]
    assert again.get("architecture") == results.get("architecture")

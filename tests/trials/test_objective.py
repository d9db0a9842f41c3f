"""Hardware estimates per trial (against hand counts) and the score under constraints."""

from __future__ import annotations

import pytest

from nnabla_nas.config import RegularizerConfig
from nnabla_nas.errors import ConfigError
from nnabla_nas.estimator import FlopsEstimator
from nnabla_nas.trials import Constraint, HardwareEstimates, Objective, SearchSpace

from .test_space import Cells

# Conv(4, 4, k) with bias: 16 k^2 + 4 weights; on a 4x8x8 input: 256 outputs x 4 k^2 MACs.
PARAMS = {"conv3": 148, "conv5": 404, "id": 0, "pw": 20, "id2": 0}
MACS = {"conv3": 9216, "conv5": 25600, "id": 0, "pw": 1024, "id2": 0}


def test_estimates_follow_the_trial_architecture_and_shared_labels():
    model = Cells()
    space = SearchSpace.from_model(model)
    estimates = HardwareEstimates.default(model, (4, 8, 8))
    assert estimates.names() == ["params", "macs"]
    for arch in space:
        cell, last = space.genotype(arch).values()
        # the shared decision 'cell' sets both MixedOps a and b
        assert estimates(arch) == {
            "params": 2 * PARAMS[cell] + PARAMS[last],
            "macs": 2 * MACS[cell] + MACS[last],
        }


def test_extra_estimators_are_named_by_their_section():
    model = Cells()
    extra = {"flops_b2": FlopsEstimator((4, 8, 8), batch_size=2)}
    estimates = HardwareEstimates.default(model, (4, 8, 8), extra)
    got = estimates({"cell": 1, "c": 1})
    assert got["flops_b2"] == 2 * got["macs"] == 2 * (2 * 25600 + 1024)
    assert estimates.describe() == {"params": "ParamsEstimator", "macs": "FlopsEstimator",
                                    "flops_b2": "FlopsEstimator"}  # fmt: skip


def test_soft_constraint_is_the_reward_factor():
    obj = Objective("acc", [Constraint("macs", bound=100.0, weight=0.5)])
    assert obj({"acc": 80.0}, {"macs": 400.0}) == (pytest.approx(40.0), True)  # (1/4)^0.5
    assert obj({"acc": 80.0}, {"macs": 50.0}) == (80.0, True)  # within the bound: factor 1


def test_hard_constraint_marks_infeasible_and_factors_compose():
    obj = Objective("acc", [Constraint("flops", 10.0, hard=True),
                            Constraint("macs", 100.0, weight=1.0)])  # fmt: skip
    score, feasible = obj({"acc": 90.0, "flops": 20.0}, {"macs": 200.0})
    assert (score, feasible) == (45.0, False)  # the table's flops and the estimate's macs
    assert obj({"acc": 90.0, "flops": 10.0}, {"macs": 100.0}) == (90.0, True)


def test_objective_check_names_the_key():
    obj = Objective("acc", [Constraint("latency", 2.0, 0.1)])
    with pytest.raises(ConfigError, match="no trial figure or estimate is named 'latency'") as e:
        obj.check(["acc", "macs", "params"])
    assert e.value.key == "regularizer.latency"
    with pytest.raises(ConfigError, match="reports no 'top1'"):
        Objective("top1").check(["acc"])


def test_constraint_from_a_regularizer_section():
    cfg = RegularizerConfig(name="FlopsEstimator", bound=5e6, weight=0.07)
    cfg.check()
    c = Constraint.from_regularizer("macs", cfg, hard=True)
    assert c == Constraint("macs", 5e6, 0.07, True)
    with pytest.raises(ConfigError, match="regularizer.macs.bound"):
        Constraint("macs", 0.0)

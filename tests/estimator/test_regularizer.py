"""Hardware constraints: the regularizer keys, the losses, the architecture gradient and reward,
and a latency-constrained search end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from nnabla_nas.config import RegularizerConfig, parse_dataclass
from nnabla_nas.errors import ConfigError
from nnabla_nas.estimator import FlopsEstimator, LatencyEstimator
from nnabla_nas.estimator.regularizer import Regularizer, build_regularizer
from nnabla_nas.genotype import load_genotype
from nnabla_nas.module import softmax
from nnabla_nas.runner.searcher.proxyless_gates import gate_gradient, hardware_gradient

from ..conftest import run_cli, tiny_mnist_config, write_json
from ..events import read_scalars
from ..runner.searcher_toy import ToySpace, make_searcher, toy_data
from .toy import no_clock

# ------------------------------------------------------------------------------ configuration


def test_seed_era_keys_and_defaults():
    cfg = parse_dataclass(RegularizerConfig, {"name": "LatencyEstimator", "weight": 0.1,
                                              "bound": 2.0}, "regularizer.latency")  # fmt: skip
    reg = build_regularizer("latency", cfg, (1, 8, 8))
    assert isinstance(reg.estimator, LatencyEstimator)
    assert (reg.loss_type, reg.lam, reg.ref, reg.bound, reg.weight) == ("add#linear", 0.1, 2.0,
                                                                        2.0, 0.1)  # fmt: skip
    cfg = parse_dataclass(RegularizerConfig, {
        "name": "flops", "bound": 5e6, "grad_reg_loss_type": "mul#log", "ref_latency": 4e6,
        "grad_reg_loss_params": {"alpha": 0.5, "beta": 0.7}}, "regularizer.f")  # fmt: skip
    reg = build_regularizer("f", cfg, (1, 8, 8))
    assert (reg.alpha, reg.beta, reg.ref, cfg.name) == (0.5, 0.7, 4e6, "FlopsEstimator")


@pytest.mark.parametrize(
    "section, key",
    [
        ({"name": "LatencyEstimator", "weight": 0.1}, "bound"),
        ({"name": "LatencyEstimator", "bound": 2.0, "grad_reg_loss_type": "add"},
         "grad_reg_loss_type"),
        ({"name": "LatencyEstimator", "bound": 2.0, "grad_reg_loss_params": {"alpha": 1.0}},
         "grad_reg_loss_params.alpha"),
        ({"name": "LatencyEstimator", "bound": 1.0, "grad_reg_loss_type": "mul#log"}, "bound"),
        ({"name": "LatencyEstimator", "bound": -1.0}, "bound"),
        ({"name": "Speedometer", "bound": 1.0}, "name"),
        ({"name": "FlopsEstimator", "bound": 1.0, "lookup_table": "t.json"}, "lookup_table"),
        ({"name": "LatencyEstimator", "bound": 1.0, "options": {"repeats": 3}}, "options.repeats"),
        ({"name": "LatencyEstimator", "bound": 1.0, "wieght": 3}, "wieght"),
    ],
)  # fmt: skip
def test_bad_keys_are_refused_naming_the_key(section, key):
    with pytest.raises(ConfigError) as err:
        parse_dataclass(RegularizerConfig, section, "regularizer.latency")
    assert err.value.key == f"regularizer.latency.{key}"


@pytest.mark.parametrize(
    "section, key, text",
    [
        ({"name": "LatencyEstimator", "weight": 0.1, "grad_reg_loss_type": "linear"},
         "regularizer.latency.bound", "missing"),
        ({"name": "LatencyEstimator", "bound": 2.0, "grad_reg_loss_type": "linear"},
         "regularizer.latency.grad_reg_loss_type", "add#linear, mul#log"),
        ({"name": "LatencyEstimator", "bound": 2.0, "grad_reg_loss_type": "mul#log",
          "ref_latency": 0.5}, "regularizer.latency.ref_latency", "smaller unit"),
    ],
)  # fmt: skip
def test_cli_exits_2_naming_the_key(tmp_path, section, key, text):
    exp = write_json(tmp_path / "exp.json", tiny_mnist_config(regularizer={"latency": section}))
    res = run_cli(["--search", "-f", exp, "-a", "ProxylessNasSearcher", "-o", tmp_path / "o"])
    assert res.returncode == 2, res.stderr
    assert key in res.stderr and text in res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "o").exists()


def test_cli_exits_2_on_a_corrupt_table(tmp_path):
    table = tmp_path / "table.json"
    table.write_text('{"format": "nnabla_nas.latency_table/1", "runtimes": ')
    section = {"name": "LatencyEstimator", "weight": 0.1, "bound": 2.0, "lookup_table": str(table)}
    exp = write_json(tmp_path / "exp.json", tiny_mnist_config(regularizer={"latency": section}))
    res = run_cli(["--search", "-f", exp, "-a", "ProxylessNasSearcher", "-o", tmp_path / "o"])
    assert res.returncode == 2, res.stderr
    assert "regularizer.latency.lookup_table" in res.stderr and str(table) in res.stderr


# ------------------------------------------------------------------------------ losses, reward


def _scalar(value):
    import nnabla as nn

    v = nn.Variable(())
    v.d = value
    return v


def test_losses_and_reward_factor_by_hand():
    est = FlopsEstimator((8,))
    lin = Regularizer("x", est, bound=0.4, weight=0.2)
    out = lin.loss(_scalar(1.3), _scalar(0.5))
    out.forward()
    assert float(out.d) == pytest.approx(1.3 + 0.2 * (0.5 - 0.4) / 0.4, rel=1e-6)
    log = Regularizer("x", est, bound=2.0, loss_type="mul#log", alpha=0.2, beta=0.3)
    out = log.loss(_scalar(1.3), _scalar(3.0))
    out.forward()
    assert float(out.d) == pytest.approx(0.2 * 1.3 * (math.log(3) / math.log(2)) ** 0.3, rel=1e-5)
    reward = Regularizer("x", est, bound=2.0, weight=0.5)
    assert reward.reward_factor(4.0) == pytest.approx(0.5**0.5)
    assert reward.reward_factor(1.0) == 1.0
    assert Regularizer("x", est, bound=2.0, weight=0.0).reward_factor(4.0) == 1.0
    assert not Regularizer("x", est, bound=2.0, weight=0.0).in_gradient


# ------------------------------------------------------------------------------ ProxylessNAS

# The toy space at batch 1: zero 0 MACs, mean 0, linear 8 * 8 = 64; the head 8 * 3 = 24.
COSTS = np.array([0.0, 0.0, 64.0])


def _searcher(tmp_path, reg: Regularizer | None, estimator: str = "gradient"):
    regs = {reg.label: reg} if reg is not None else {}
    return make_searcher(ToySpace(), tmp_path, estimator, regularizers=regs)


def _batch():
    x, y = toy_data(16, seed=3)
    return [(x[:8], y[:8]), (x[8:], y[8:])]


def _pair_probabilities(values, pair) -> np.ndarray:
    """The pair's renormalised probabilities, zero elsewhere (what the hardware term uses)."""
    p = np.zeros(len(values))
    p[list(pair)] = softmax(np.asarray(values)[list(pair)])
    return p


def _gradients(searcher, alpha_values, draw=(0, 2, 2)):
    alpha = searcher.logits.params["choice"]
    alpha.d = np.asarray(alpha_values).reshape(alpha.shape)
    alpha.grad.zero()
    metrics = gate_gradient(searcher, _batch(), {"choice": draw})
    ce_grad = np.array(alpha.g, copy=True).reshape(-1)
    on = hardware_gradient(searcher, metrics, {"choice": draw})
    return ce_grad, np.array(alpha.g, copy=True).reshape(-1), metrics, on


def test_add_linear_term_reaches_the_architecture_gradient(tmp_path):
    reg = Regularizer("flops", FlopsEstimator((8,)), bound=50.0, weight=0.0, lam=0.5)
    searcher = _searcher(tmp_path, reg)
    values = [0.3, -0.2, 0.1]
    ce_grad, total, metrics, on = _gradients(searcher, values)
    assert on and np.abs(ce_grad).sum() > 0
    p = _pair_probabilities(values, (0, 2))  # the drawn pair's renormalised probabilities
    expected = 24.0 + p @ COSTS
    assert metrics["expected_flops"] == pytest.approx(expected, rel=1e-6)
    assert metrics["loss_regularized"] == pytest.approx(
        metrics["loss"] + 0.5 * (expected - 50.0) / 50.0, rel=1e-5
    )
    exact = 0.5 / 50.0 * p * (COSTS - p @ COSTS)  # lambda / ref * dE/dalpha, zero off the pair
    assert exact[1] == 0.0
    np.testing.assert_allclose(total - ce_grad, exact, rtol=1e-4, atol=1e-7)
    assert not np.allclose(total, ce_grad)
    # Without the term (lambda 0 = weight 0): the gradient is the cross-entropy's alone.
    off = _searcher(tmp_path, Regularizer("flops", FlopsEstimator((8,)), bound=50.0))
    ce_off, total_off, _, on_off = _gradients(off, values)
    assert not on_off
    np.testing.assert_allclose(total_off, ce_off)
    np.testing.assert_allclose(ce_off, ce_grad, rtol=1e-5)


def test_mul_log_term_scales_the_gate_gradient_and_adds_the_exact_part(tmp_path):
    reg = Regularizer("flops", FlopsEstimator((8,)), bound=50.0, loss_type="mul#log",
                      alpha=0.2, beta=0.3)  # fmt: skip
    searcher = _searcher(tmp_path, reg)
    values = [0.3, -0.2, 0.1]
    ce_grad, total, metrics, _ = _gradients(searcher, values)
    p = _pair_probabilities(values, (0, 2))
    e = 24.0 + p @ COSTS
    ce = metrics["loss"]
    ratio = math.log(e) / math.log(50.0)
    scale = 0.2 * ratio**0.3  # dL/dCE
    d_e = 0.2 * ce * 0.3 * ratio ** (0.3 - 1) / (e * math.log(50.0))  # dL/dE
    hand = scale * ce_grad + d_e * p * (COSTS - p @ COSTS)
    np.testing.assert_allclose(total, hand, rtol=1e-4, atol=1e-7)
    assert metrics["loss_regularized"] == pytest.approx(0.2 * ce * ratio**0.3, rel=1e-5)


def test_mul_log_warns_once_when_the_expected_value_falls_to_one_unit(tmp_path, caplog):
    # FLOPs of the toy space: 24 (head) + p . (0, 0, 64); in units of 100 MACs the expected
    # value is below 1: ln E < 0, the ratio is floored and the hardware gradient vanishes.
    import nnabla.functions as F

    class HundredsOfMacs(FlopsEstimator):
        def expected(self, model, distribution):
            return F.mul_scalar(super().expected(model, distribution), 0.01)

    reg = Regularizer("flops", HundredsOfMacs((8,)), bound=50.0, loss_type="mul#log")
    with caplog.at_level("WARNING"):
        ce_grad, total, _, _ = _gradients(_searcher(tmp_path, reg), [0.3, -0.2, 0.1])
        _gradients(_searcher(tmp_path, reg), [0.3, -0.2, 0.1])
    warnings = [r for r in caplog.records if "mul#log" in r.getMessage()]
    assert len(warnings) == 1 and "smaller unit" in warnings[0].getMessage()
    np.testing.assert_allclose(total, 0.2 * 1e-6**0.3 * ce_grad, rtol=1e-4)  # the stall
    caplog.clear()
    reg = Regularizer("flops", FlopsEstimator((8,)), bound=50.0, loss_type="mul#log")
    with caplog.at_level("WARNING"):
        _gradients(_searcher(tmp_path, reg), [0.3, -0.2, 0.1])
    assert not [r for r in caplog.records if "mul#log" in r.getMessage()]


@pytest.mark.parametrize("lam", [0.0, 1e-6, 5.0])
def test_logits_outside_the_pair_never_move_under_adam_with_momentum(tmp_path, monkeypatch, lam):
    # Adam with beta1 = 0.5 (the examples' architecture optimizer): after steps on every pair,
    # every logit has momentum; a step on the pair (1, 2) must leave logit 0 exactly unchanged,
    # whatever lambda is, and move the pair as the hand-computed gradient says.
    reg = Regularizer("flops", FlopsEstimator((8,)), bound=50.0, weight=0.0, lam=lam)
    valid = {"solver": {"name": "Adam", "alpha": 0.01, "beta1": 0.5}}
    searcher = make_searcher(ToySpace(), tmp_path, regularizers={"flops": reg}, valid=valid)
    alpha = searcher.logits.params["choice"]
    from nnabla_nas.runner.searcher import proxyless

    pairs = iter([(0, 1, 0), (0, 2, 2), (1, 0, 1), (2, 0, 0), (1, 2, 2), (1, 2, 1)])
    monkeypatch.setattr(proxyless, "draw_gates", lambda logits, rng: {"choice": next(pairs)})
    for _ in range(4):
        searcher.gradient_step(_batch())
    for _ in range(2):
        before = np.array(alpha.d, copy=True).reshape(-1)
        searcher.gradient_step(_batch())
        after = np.array(alpha.d).reshape(-1)
        assert after[0] - before[0] == 0.0  # not sampled: not moved, not even by momentum
        lse = lambda v: math.log(np.exp(v).sum())  # noqa: E731
        assert lse(after[1:]) == pytest.approx(lse(before[1:]), abs=1e-5)  # the pair's mass kept
        assert not np.allclose(after[1:], before[1:], rtol=0, atol=1e-6)


def test_hardware_term_moves_the_pair_away_from_the_costly_path(tmp_path, monkeypatch):
    # The pair (1, 2): "mean" costs 0 MACs, "linear" 64. With Sgd and a dominant lambda the
    # pair's update is -lr * (CE gradient + lambda / ref * q (c - q.c)); the difference of the
    # two logits is checked against that, and logit 0 stays put.
    lam, lr = 50.0, 0.1
    reg = Regularizer("flops", FlopsEstimator((8,)), bound=50.0, weight=0.0, lam=lam)
    searcher = make_searcher(ToySpace(), tmp_path, regularizers={"flops": reg},
                             valid={"solver": {"name": "Sgd", "lr": lr}})  # fmt: skip
    alpha = searcher.logits.params["choice"]
    values = np.array([0.2, 0.1, -0.3])
    alpha.d = values.reshape(alpha.shape)
    ce_grad, _, _, _ = _gradients(searcher, values, draw=(1, 2, 1))
    from nnabla_nas.runner.searcher import proxyless

    monkeypatch.setattr(proxyless, "draw_gates", lambda logits, rng: {"choice": (1, 2, 1)})
    alpha.d = values.reshape(alpha.shape)
    searcher.gradient_step(_batch())
    after = np.array(alpha.d).reshape(-1)
    q = _pair_probabilities(values, (1, 2))
    grad = ce_grad + lam / 50.0 * q * (COSTS - q @ COSTS)
    want = (values[2] - lr * grad[2]) - (values[1] - lr * grad[1])
    assert after[2] - after[1] == pytest.approx(want, abs=1e-5)
    assert after[2] - after[1] < values[2] - values[1]  # the costly path lost probability
    assert after[0] == pytest.approx(values[0], abs=0)


def test_reinforce_reward_factor_uses_the_sampled_architecture(tmp_path):
    reg = Regularizer("flops", FlopsEstimator((8,)), bound=50.0, weight=2.0)
    searcher = _searcher(tmp_path, reg, estimator="reinforce")
    assert searcher.reward_factor({"choice": 2}) == pytest.approx((50.0 / 88.0) ** 2)
    assert searcher.reward_factor({"choice": 0}) == 1.0  # 24 MACs, within the bound
    assert _searcher(tmp_path, None, "reinforce").reward_factor({"choice": 2}) == 1.0


# ------------------------------------------------------------------------------ end to end


def test_latency_constrained_search_end_to_end(tmp_path):
    table = tmp_path / "table.json"
    section = {"name": "LatencyEstimator", "weight": 0.5, "bound": 0.2,
               "lookup_table": str(table), "options": {"warmup": 1, "repeat": 3}}  # fmt: skip
    cfg = tiny_mnist_config(regularizer={"latency": section}, train_portion=0.1)
    exp = write_json(tmp_path / "exp.json", cfg)
    out = tmp_path / "out"
    res = run_cli(["--search", "-f", exp, "-a", "ProxylessNasSearcher", "-o", out])
    assert res.returncode == 0, res.stderr + res.stdout
    results = json.loads((out / "results.json").read_text())
    latency = results["hardware"]["latency_ms"]
    assert latency > 0 and results["history"][-1]["latency_ms"] == latency
    assert results["hardware"]["flops_macs"] > 0 and results["hardware"]["flops_params"] > 0
    assert results["final"]["train_arch_expected_latency"] > 0
    log = (out / "log.txt").read_text()
    from nnabla_nas.runner.monitor import readable

    assert f"latency_ms {readable(latency)}" in log
    assert read_scalars(out / "tensorboard")["hardware/latency_ms"][-1][1] == pytest.approx(
        latency, rel=1e-6
    )
    assert load_genotype(out / "arch.h5").extra["hardware"]["latency_ms"] == latency
    # The reported latency is the table's sum over the argmax architecture's layers.
    from nnabla_nas.config import ExperimentConfig
    from nnabla_nas.contrib import SPACES

    parsed = ExperimentConfig.from_dict({**cfg, "algorithm": "ProxylessNasSearcher"})
    model = SPACES.get("mobilenet")(parsed.network.space)
    arch = {label: model.choices()[label].names.index(name)
            for label, name in results["architecture"].items()}  # fmt: skip
    est = LatencyEstimator((1, 28, 28), lookup_table=table, timer=no_clock)
    assert est.predict(model, arch) == pytest.approx(latency, rel=1e-9)

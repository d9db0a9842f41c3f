"""Tests of nnabla_nas.optimizer: solvers by name, schedules, clipping, weight decay, accumulation,
exact resume. Numbers are checked against hand computations in numpy."""

from __future__ import annotations

import math
import pickle
from collections import OrderedDict

import nnabla as nn
import nnabla.functions as F
import numpy as np
import pytest

from nnabla_nas.config import parse_dataclass, to_dict
from nnabla_nas.errors import ConfigError
from nnabla_nas.optimizer import (
    LR_SCHEDULERS,
    SOLVERS,
    ConstantScheduler,
    CosineScheduler,
    Optimizer,
    OptimizerConfig,
    check_accumulation,
    learning_rate_key,
    make_optimizer,
    make_scheduler,
    make_solver,
    optimizer_section,
    parse_scheduler,
    parse_solver,
    solver_arguments,
    solver_config,
)


def _param(values, need_grad: bool = True) -> nn.Variable:
    return nn.Variable.from_numpy_array(np.asarray(values, dtype=np.float32), need_grad=need_grad)


def _params(rng: np.random.RandomState, shapes=((3, 2), (2,), (2, 2, 2))) -> OrderedDict:
    return OrderedDict((f"p{i}", _param(rng.randn(*s))) for i, s in enumerate(shapes))


def _solver(name: str, **arguments):
    """A typed solver section, as the config parses ``{"name": name, **arguments}``."""
    return solver_config(name)(**arguments)


def _scheduler(cfg, init_lr, max_iter, iter_per_epoch, **kwargs):
    """The scheduler of a JSON ``lr_scheduler`` section."""
    return make_scheduler(parse_scheduler(cfg), init_lr, max_iter, iter_per_epoch, **kwargs)


# --------------------------------------------------------------------------------------------
# Solvers by name
# --------------------------------------------------------------------------------------------


def test_registry_holds_the_nnabla_solvers():
    for name in ("Sgd", "Momentum", "Nesterov", "Adam", "AdamW", "Adagrad", "Adadelta", "RMSprop"):
        assert name in SOLVERS.names()
    for name in ("Adamax", "AMSGRAD", "AdaBound", "Lars"):
        assert name in SOLVERS.names()
    assert "iteritems" not in SOLVERS and "Solver" not in SOLVERS
    assert SOLVERS.canonical("momentum") == "Momentum" and SOLVERS.canonical("ADAM") == "Adam"


@pytest.mark.parametrize("name", SOLVERS.names())
def test_every_solver_builds_with_defaults_and_its_lr_key_sets_the_rate(name):
    w = _param([1.0, -2.0])
    solver = make_solver(_solver(name))
    solver.set_parameters({"w": w})
    w.g = np.array([0.5, -0.5], dtype=np.float32)
    solver.update()
    assert np.all(np.isfinite(w.d)) and np.all(w.d != np.array([1.0, -2.0], np.float32))
    lr_key = learning_rate_key(name)
    defaults = solver_arguments(name)
    assert lr_key in defaults
    assert solver.learning_rate() == pytest.approx(defaults[lr_key], rel=1e-6)
    assert make_solver(_solver(name, **{lr_key: 0.0123})).learning_rate() == pytest.approx(
        0.0123, rel=1e-6
    )


def test_learning_rate_keys():
    assert learning_rate_key("Sgd") == "lr"
    assert learning_rate_key("momentum") == "lr"
    assert learning_rate_key("Adam") == "alpha"
    assert learning_rate_key("Adamax") == "alpha"
    assert learning_rate_key("AMSGRAD") == "alpha"
    assert learning_rate_key("AdaBound") == "alpha"
    assert solver_arguments("Momentum") == {"lr": 0.001, "momentum": 0.9}
    assert parse_solver({"name": "Adam", "beta1": 0.5}).learning_rate == 0.001
    assert parse_solver({"name": "momentum", "lr": 0.1}).learning_rate == 0.1


def test_make_solver_passes_arguments():
    solver = make_solver(parse_solver({"name": "momentum", "lr": 0.25, "momentum": 0}, "s"))
    assert solver.name == "Momentum" and solver.learning_rate() == 0.25
    w = _param([1.0])
    solver.set_parameters({"w": w})
    for _ in range(2):  # momentum 0 (an int in JSON) -> plain SGD
        w.g = np.array([2.0], dtype=np.float32)
        solver.update()
    assert w.d[0] == pytest.approx(1.0 - 2 * 0.25 * 2.0)


def test_unknown_solver_lists_valid_names():
    with pytest.raises(ConfigError) as err:
        parse_solver({"name": "Adamm"}, key="optimizer.train.solver")
    assert err.value.key == "optimizer.train.solver.name"
    assert "Adamm" in str(err.value) and "Momentum" in str(err.value) and "Adam," in str(err.value)


def test_unknown_or_mistyped_solver_argument_names_the_key():
    with pytest.raises(ConfigError) as err:
        parse_solver({"name": "Momentum", "lrr": 0.1}, key="optimizer.train.solver")
    assert err.value.key == "optimizer.train.solver.lrr"
    assert "valid arguments: lr, momentum" in str(err.value) and "did you mean 'lr'" in str(
        err.value
    )
    with pytest.raises(ConfigError) as err:
        parse_solver({"name": "Adam", "alpha": "fast"}, key="optimizer.valid.solver")
    assert err.value.key == "optimizer.valid.solver.alpha" and "a number" in str(err.value)
    with pytest.raises(ConfigError) as err:
        parse_solver({"name": "Adam", "alpha": True}, key="s")
    assert err.value.key == "s.alpha"
    with pytest.raises(ConfigError) as err:
        parse_solver({"name": "AdaBelief", "amsgrad": 1}, key="s")
    assert err.value.key == "s.amsgrad" and "true or false" in str(err.value)
    with pytest.raises(ConfigError) as err:
        parse_solver({"name": "Sgd", "lr": -0.1}, key="s")
    assert err.value.key == "s.lr" and "learning rate must be >= 0" in str(err.value)
    with pytest.raises(ConfigError) as err:
        _solver("Adam", alpha=float("nan"))  # built in Python: checked all the same
    assert err.value.key == "alpha"


def _section(solver, lr_scheduler=None, **keys) -> OptimizerConfig:
    data = {"solver": solver, **keys}
    if lr_scheduler is not None:
        data["lr_scheduler"] = lr_scheduler
    return parse_dataclass(OptimizerConfig, data)


def test_optimizer_section_is_parsed_strictly():
    section = _section({"name": "Momentum", "lr": 0.1}, {"name": "step", "milestones": [1]})
    assert section.solver == _solver("Momentum", lr=0.1)
    assert section.lr_scheduler.milestones == [1] and section.lr_scheduler.gamma == 0.1
    with pytest.raises(ConfigError) as err:
        _section({"lr": 0.1})
    assert err.value.key == "solver.name" and "Momentum" in str(err.value)
    with pytest.raises(ConfigError) as err:
        _section({"name": "Sgd", "momentum": 0.9})
    assert err.value.key == "solver.momentum" and "valid arguments: lr" in str(err.value)
    with pytest.raises(ConfigError) as err:
        _section({"name": "Sgd"}, {"name": "cosine", "gamma": 0.1})
    assert err.value.key == "lr_scheduler.gamma" and "eta_min" in str(err.value)
    with pytest.raises(ConfigError) as err:
        _section({"name": "AdamW", "wd": 1e-4}, None, weight_decay=1e-4)
    assert err.value.key == "weight_decay"
    _section({"name": "AdamW"}, None, weight_decay=1e-4)  # the default wd is not "given"
    with pytest.raises(ConfigError) as err:
        _section("Sgd")
    assert err.value.key == "solver" and "an object" in str(err.value)


def test_sections_are_written_back_as_given_and_reparse_equal():
    data = {
        "solver": {"name": "adamw", "alpha": 0.01},
        "weight_decay": 0.1,
        "lr_scheduler": {"name": "multistep", "warmup_epochs": 1, "milestones": [2]},
    }
    section = _section(**data)
    assert section.solver.arguments() == {"alpha": 0.01, "beta1": 0.9, "beta2": 0.999,
                                          "eps": 1e-08, "wd": 0.0001}  # fmt: skip
    assert section.solver.given == {"alpha"}
    written = to_dict(section)
    assert written == {
        "solver": {"name": "AdamW", "alpha": 0.01},
        "grad_clip": None,
        "weight_decay": 0.1,
        "lr_scheduler": {"name": "step", "milestones": [2], "warmup_epochs": 1},
    }
    again = parse_dataclass(OptimizerConfig, written)  # the wd default was not pinned
    assert again == section and to_dict(again) == written
    # the generated classes pickle (sections may be sent to other processes)
    assert pickle.loads(pickle.dumps(section)) == section
    assert pickle.loads(pickle.dumps(section)).solver.given == {"alpha"}


def test_a_python_section_is_parsed_and_checked_like_a_json_one():
    section = OptimizerConfig(solver={"name": "Sgd", "lr": 0.3}, lr_scheduler={"name": "step",
                              "milestones": [1]})  # fmt: skip
    assert section == _section({"name": "Sgd", "lr": 0.3}, {"name": "step", "milestones": [1]})
    with pytest.raises(ConfigError) as err:
        OptimizerConfig(solver={"name": "Sgd", "lr": -1})
    assert err.value.key == "solver.lr"
    with pytest.raises(ConfigError) as err:
        OptimizerConfig(solver=_solver("Sgd"), grad_clip=-1.0)
    assert err.value.key == "grad_clip"


# --------------------------------------------------------------------------------------------
# The optimizer of a phase, with the defaults
# --------------------------------------------------------------------------------------------


def test_make_optimizer_defaults_per_phase():
    params = _params(np.random.RandomState(0))
    train = make_optimizer("train", None, params, max_iter=40, iter_per_epoch=4)
    assert (train.name, train.key, train.grad_clip, train.weight_decay) == (
        "Momentum", "optimizer.train", None, None)  # fmt: skip
    assert train.solver.info["momentum"] == pytest.approx(0.9)
    assert isinstance(train.lr_scheduler, CosineScheduler)
    assert train.lr_scheduler.get_learning_rate(20) == pytest.approx(0.05)  # half of 0.1
    valid = make_optimizer("valid", None, params, max_iter=40, iter_per_epoch=4)
    assert valid.name == "Adam" and isinstance(valid.lr_scheduler, ConstantScheduler)
    assert [valid.solver.info[k] for k in ("alpha", "beta1", "beta2")] == pytest.approx(
        [0.001, 0.5, 0.999]
    )
    # a section without lr_scheduler: cosine for the weights, constant for the architecture
    sgd = _section({"name": "Sgd", "lr": 0.2})
    assert isinstance(make_optimizer("warmup", sgd, params, 8, 4).lr_scheduler, CosineScheduler)
    assert isinstance(make_optimizer("valid", sgd, params, 8, 4).lr_scheduler, ConstantScheduler)
    # the warm-up trains the weights as the training proper when it has no section
    assert optimizer_section("warmup", {"train": sgd}) is sgd
    assert optimizer_section("warmup", {"train": sgd, "warmup": train}) is train
    assert optimizer_section("valid", {"train": sgd}) is None
    assert make_optimizer("train", None, params, 0, 0).lr_scheduler.max_iter == 1
    with pytest.raises(ValueError):
        make_optimizer("arch", None, params, 1, 1)


def test_make_optimizer_follows_its_section_by_hand():
    w0, g = np.array([1.0, -2.0], np.float32), np.array([3.0, 4.0], np.float32)
    params = OrderedDict(w=_param(w0))
    section = _section({"name": "Sgd", "lr": 0.4}, {"name": "step", "milestones": [1],
                       "gamma": 0.5}, grad_clip=1.0)  # fmt: skip
    opt = make_optimizer("train", section, params, max_iter=4, iter_per_epoch=2)
    w = w0.astype(np.float64)
    for lr in (0.4, 0.4, 0.2):  # the milestone is epoch 1 = update 2
        params["w"].g = g
        opt.update()
        assert opt.get_learning_rate() == pytest.approx(lr)
        w = w - lr * g / 5.0  # clipped from norm 5 to 1
        np.testing.assert_allclose(params["w"].d, w, rtol=1e-6)


# --------------------------------------------------------------------------------------------
# Learning-rate schedules
# --------------------------------------------------------------------------------------------


def test_registered_schedulers():
    assert LR_SCHEDULERS.names() == ["constant", "cosine", "exponential", "polynomial", "step"]
    assert LR_SCHEDULERS.get("CosineScheduler") is CosineScheduler


def test_cosine_schedule_matches_formula():
    lr, T = 0.1, 100
    s = _scheduler({"name": "cosine"}, lr, T, iter_per_epoch=10)
    for t in (0, 1, 25, 50, 99, 100):
        assert s.get_learning_rate(t) == pytest.approx(0.5 * lr * (1 + math.cos(math.pi * t / T)))
    assert s.get_learning_rate(0) == pytest.approx(lr)
    assert s.get_learning_rate(50) == pytest.approx(lr / 2)
    assert s.get_learning_rate(150) == pytest.approx(0.0, abs=1e-12)  # stays at the end value
    s = _scheduler({"name": "Cosine", "eta_min": 0.01}, lr, T, iter_per_epoch=10)
    for t in (0, 30, 70, 100):
        expected = 0.01 + 0.5 * (lr - 0.01) * (1 + math.cos(math.pi * t / T))
        assert s.get_learning_rate(t) == pytest.approx(expected)


def test_default_scheduler_is_cosine_or_constant():
    s = make_scheduler(None, 0.2, 40, 4)
    assert isinstance(s, CosineScheduler) and s.get_learning_rate(20) == pytest.approx(0.1)
    s = make_scheduler(None, 0.2, 40, 4, default=None)
    assert isinstance(s, ConstantScheduler)
    assert [s.get_learning_rate(t) for t in (0, 20, 39)] == [0.2, 0.2, 0.2]
    s = _scheduler({"warmup_iter": 3}, 0.2, 40, 4)  # no name: the default, with warm-up
    assert isinstance(s, CosineScheduler) and s.warmup_iter == 3


def test_step_schedule_milestones_are_epochs():
    s = _scheduler({"name": "step", "milestones": [2, 5], "gamma": 0.5}, 0.8, 70, 10)
    expected = {0: 0.8, 19: 0.8, 20: 0.4, 49: 0.4, 50: 0.2, 69: 0.2}
    for t, lr in expected.items():
        assert s.get_learning_rate(t) == pytest.approx(lr)


def test_exponential_schedule():
    s = _scheduler({"name": "exponential", "gamma": 0.9}, 0.1, 100, 10)
    for t in (0, 9, 10, 35, 99):
        assert s.get_learning_rate(t) == pytest.approx(0.1 * 0.9 ** (t // 10))
    s = _scheduler({"name": "exponential", "gamma": 0.9, "staircase": False}, 0.1, 100, 10)
    for t in (0, 5, 35):
        assert s.get_learning_rate(t) == pytest.approx(0.1 * 0.9 ** (t / 10))


def test_polynomial_schedule():
    s = _scheduler({"name": "polynomial", "power": 2.0, "eta_min": 0.001}, 0.1, 50, 5)
    for t in (0, 10, 25, 49, 50, 80):
        expected = 0.001 + (0.1 - 0.001) * (1 - min(t, 50) / 50) ** 2
        assert s.get_learning_rate(t) == pytest.approx(expected)
    s = _scheduler({"name": "poly"}, 0.1, 50, 5)  # default power 1: linear
    assert s.get_learning_rate(10) == pytest.approx(0.08)


def test_linear_warmup_ramp_then_the_schedule():
    lr, T, W = 0.1, 100, 4
    s = _scheduler({"name": "cosine", "warmup_epochs": 2}, lr, T, iter_per_epoch=2)
    assert s.warmup_iter == W
    cos = [0.5 * lr * (1 + math.cos(math.pi * t / T)) for t in range(T)]
    ramp = [s.get_learning_rate(t) for t in range(W + 1)]
    assert ramp == pytest.approx([cos[W] * (t + 1) / (W + 1) for t in range(W + 1)])
    assert ramp[0] == pytest.approx(cos[W] / 5) and ramp[-1] == pytest.approx(cos[W])
    assert np.allclose(np.diff(ramp), cos[W] / 5)  # linear, no jump where it joins
    for t in (W, 10, 60):
        assert s.get_learning_rate(t) == pytest.approx(cos[t])
    s = _scheduler({"name": "constant", "warmup_iter": 9}, 0.5, 20, 1)
    assert [s.get_learning_rate(t) for t in (0, 4, 9, 15)] == pytest.approx([0.05, 0.25, 0.5, 0.5])


def test_scheduler_config_errors():
    with pytest.raises(ConfigError) as err:
        parse_scheduler({"name": "cosin"}, key="optimizer.train.lr_scheduler")
    assert err.value.key == "optimizer.train.lr_scheduler.name" and "cosine" in str(err.value)
    with pytest.raises(ConfigError) as err:
        parse_scheduler({"name": "step"})
    assert err.value.key == "lr_scheduler.milestones" and "missing" in str(err.value)
    with pytest.raises(ConfigError) as err:
        parse_scheduler({"name": "step", "milestones": [3, 2]})
    assert err.value.key == "lr_scheduler.milestones" and "increasing" in str(err.value)
    with pytest.raises(ConfigError) as err:
        parse_scheduler({"name": "step", "milestones": "30"})
    assert err.value.key == "lr_scheduler.milestones" and "list of integers" in str(err.value)
    with pytest.raises(ConfigError) as err:
        parse_scheduler({"name": "cosine", "eta_mn": 0.0})
    assert err.value.key == "lr_scheduler.eta_mn" and "did you mean 'eta_min'" in str(err.value)
    with pytest.raises(ConfigError) as err:
        parse_scheduler({"warmup_epochs": 1, "warmup_iter": 3})
    assert err.value.key == "lr_scheduler.warmup_epochs"
    with pytest.raises(ConfigError) as err:
        parse_scheduler({"warmup_epochs": -1})
    assert err.value.key == "lr_scheduler.warmup_epochs"
    with pytest.raises(ConfigError) as err:
        parse_scheduler({"name": "exponential", "gamma": 0})
    assert err.value.key == "lr_scheduler.gamma"


# --------------------------------------------------------------------------------------------
# Clipping, weight decay, solver updates
# --------------------------------------------------------------------------------------------


def _set_grads(params: OrderedDict, grads: list[np.ndarray]) -> None:
    for p, g in zip(params.values(), grads):
        p.g = g


@pytest.mark.parametrize("clip", [1.0, 100.0])
def test_global_norm_clipping_matches_numpy(clip):
    rng = np.random.RandomState(0)
    params = _params(rng)
    w0 = [p.d.copy() for p in params.values()]
    grads = [rng.randn(*p.shape).astype(np.float32) for p in params.values()]
    opt = Optimizer(params, _solver("Sgd", lr=0.5), grad_clip=clip)
    _set_grads(params, grads)
    opt.update()
    norm = math.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads))
    assert 1.0 < norm < 100.0  # one case clips, the other does not
    assert opt.grad_norm == pytest.approx(norm, rel=1e-5)
    scale = clip / norm if norm > clip else 1.0
    for p, w, g in zip(params.values(), w0, grads):
        np.testing.assert_allclose(p.d, w - 0.5 * scale * g, rtol=1e-5, atol=1e-6)
    # a global clip keeps the direction: the ratio between parameters' updates is unchanged
    if norm > clip:
        total = math.sqrt(sum(float(np.sum((w - p.d) ** 2)) for p, w in zip(params.values(), w0)))
        assert total == pytest.approx(0.5 * clip, rel=1e-5)


def test_grad_norm_follows_a_replaced_grad_array():
    params = OrderedDict(a=_param([1.0, 1.0]), b=_param([2.0]))
    opt = Optimizer(params, _solver("Sgd", lr=0.0))
    _set_grads(params, [np.array([3.0, 0.0]), np.array([4.0])])
    assert opt.compute_grad_norm() == pytest.approx(5.0)
    params["b"].grad = nn.NdArray.from_numpy_array(np.array([12.0], dtype=np.float32))
    assert opt.compute_grad_norm() == pytest.approx(math.sqrt(9 + 144))


def test_weight_decay_adds_wd_times_w_to_the_gradient():
    w0, g = np.array([1.0, -2.0, 3.0], np.float32), np.array([0.5, 0.5, -1.0], np.float32)
    lr, wd = 0.1, 0.01
    params = OrderedDict(w=_param(w0))
    opt = Optimizer(params, _solver("Sgd", lr=lr), weight_decay=wd)
    params["w"].g = g
    opt.update()
    np.testing.assert_allclose(params["w"].d, w0 - lr * (g + wd * w0), rtol=1e-6)
    # clipping applies to the loss gradient, before weight decay (as PyTorch's weight_decay)
    params = OrderedDict(w=_param(w0))
    opt = Optimizer(params, _solver("Sgd", lr=lr), weight_decay=wd, grad_clip=0.5)
    params["w"].g = g
    opt.update()
    norm = float(np.linalg.norm(g))
    np.testing.assert_allclose(params["w"].d, w0 - lr * (g * 0.5 / norm + wd * w0), rtol=1e-6)


def test_weight_decay_conflicts_with_solver_wd():
    def parse(section):
        return parse_dataclass(OptimizerConfig, section, "optimizer.x")

    with pytest.raises(ConfigError) as err:
        parse({"solver": {"name": "AdamW", "wd": 0.1}, "weight_decay": 0.1})
    assert err.value.key == "optimizer.x.weight_decay"
    with pytest.raises(ConfigError) as err:
        parse({"solver": {"name": "Sgd"}, "grad_clip": 0.0})
    assert err.value.key == "optimizer.x.grad_clip"
    with pytest.raises(ConfigError) as err:
        parse({"solver": {"name": "Sgd", "lrr": 1}})
    assert err.value.key == "optimizer.x.solver.lrr"
    with pytest.raises(ConfigError) as err:  # built in Python: checked on construction
        OptimizerConfig(solver=_solver("SgdW", wd=0.0), weight_decay=-1.0)
    assert err.value.key == "weight_decay"


def test_momentum_two_steps_with_scheduled_lr_by_hand():
    w0 = np.array([1.0, -1.0], np.float32)
    g1, g2 = np.array([0.5, 2.0], np.float32), np.array([-1.0, 0.25], np.float32)
    sched = _scheduler({"name": "step", "milestones": [1]}, 0.2, 10, iter_per_epoch=1)
    params = OrderedDict(w=_param(w0))
    opt = Optimizer(params, _solver("Momentum", lr=0.2, momentum=0.9), lr_scheduler=sched)
    params["w"].g = g1
    opt.update(0)
    assert opt.get_learning_rate() == pytest.approx(0.2)
    params["w"].g = g2
    opt.update()  # iteration 1 (counted): lr 0.02 after the milestone
    assert opt.iteration == 2 and opt.get_learning_rate() == pytest.approx(0.02)
    v1 = 0.2 * g1
    v2 = 0.9 * v1 + 0.02 * g2
    np.testing.assert_allclose(params["w"].d, w0 - v1 - v2, rtol=1e-6)


def test_params_without_need_grad_are_skipped():
    params = OrderedDict(a=_param([1.0]), frozen=_param([2.0], need_grad=False))
    opt = Optimizer(params, _solver("Sgd", lr=1.0))
    assert list(opt.params) == ["a"]
    params["a"].g = np.array([1.0])
    params["frozen"].g = np.array([1.0])
    opt.update()
    assert params["a"].d[0] == pytest.approx(0.0) and params["frozen"].d[0] == 2.0
    assert opt.grad_norm == pytest.approx(1.0)


def test_learning_rate_accessors_and_scale_grad():
    params = OrderedDict(w=_param([1.0]))
    opt = Optimizer(params, _solver("Adam", alpha=0.01))
    assert opt.get_learning_rate() == pytest.approx(0.01)
    opt.set_learning_rate(0.5)
    assert opt.get_learning_rate() == 0.5
    params["w"].g = np.array([4.0])
    opt.scale_grad(0.25)
    assert params["w"].g[0] == 1.0
    opt.zero_grad()
    assert params["w"].g[0] == 0.0


# --------------------------------------------------------------------------------------------
# Gradient accumulation: the runner's pattern
# --------------------------------------------------------------------------------------------


def _affine_ce(batch: int, W: nn.Variable, b: nn.Variable):
    x = nn.Variable((batch, 4))
    t = nn.Variable((batch, 1))
    loss = F.mean(F.softmax_cross_entropy(F.affine(x, W, b), t))
    return x, t, loss


def _affine_problem():
    rng = np.random.RandomState(3)
    x = rng.randn(8, 4).astype(np.float32)
    y = rng.randint(0, 3, size=(8, 1)).astype(np.int32)
    W0 = rng.randn(4, 3).astype(np.float32) * 0.5
    b0 = rng.randn(3).astype(np.float32) * 0.1
    return x, y, W0, b0


def _numpy_grad(x, y, W, b):
    z = x @ W + b
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(len(y)), y[:, 0]] -= 1.0
    p /= len(y)
    return x.T @ p, p.sum(0)


@pytest.mark.parametrize("scaled_loss", [True, False])
def test_accumulating_mini_batches_equals_one_batch(scaled_loss):
    x, y, W0, b0 = _affine_problem()
    k = check_accumulation(8, 2, "mini_batch_train")
    assert k == 4

    def run(batch: int, passes: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
        params = OrderedDict(W=_param(W0), b=_param(b0))
        xv, tv, loss = _affine_ce(batch, params["W"], params["b"])
        if scaled_loss:
            loss = loss / passes  # the loss divided by k ...
        opt = Optimizer(params, _solver("Momentum", lr=0.1), grad_clip=10.0, weight_decay=1e-3)
        grads = []
        for _ in range(2):  # two updates: zero_grad must reset the accumulation
            opt.zero_grad()
            for i in range(passes):
                xv.d, tv.d = x[i * batch : (i + 1) * batch], y[i * batch : (i + 1) * batch]
                loss.forward(clear_no_need_grad=True)
                # ... or, equivalently, the backward seed 1/k
                loss.backward(grad=1.0 if scaled_loss else 1.0 / passes, clear_buffer=True)
            grads.append([p.g.copy() for p in params.values()])
            opt.update()
        return grads, [p.d.copy() for p in params.values()]

    full_grads, full_w = run(8, 1)
    acc_grads, acc_w = run(2, k)
    gW, gb = _numpy_grad(x, y, W0, b0)
    np.testing.assert_allclose(full_grads[0][0], gW, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(full_grads[0][1], gb, rtol=1e-4, atol=1e-6)
    for g_full, g_acc in zip(full_grads, acc_grads):
        for a, b in zip(g_full, g_acc):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    for a, b in zip(full_w, acc_w):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert not np.allclose(full_w[0], W0)


def test_backward_accumulates_into_parameter_gradients():
    x, y, W0, b0 = _affine_problem()
    W, b = _param(W0), _param(b0)
    xv, tv, loss = _affine_ce(8, W, b)
    xv.d, tv.d = x, y
    W.grad.zero()
    b.grad.zero()
    loss.forward()
    loss.backward(clear_buffer=True)
    once = W.g.copy()
    loss.forward()
    loss.backward(clear_buffer=True)  # clear_buffer frees intermediates, not parameters' .g
    np.testing.assert_allclose(W.g, 2 * once, rtol=1e-6)


@pytest.mark.parametrize(
    "batch, mini, message",
    [(8, 3, "must divide"), (2, 4, "must divide"), (8, 0, "positive"), (8, -2, "positive")],
)
def test_check_accumulation_refuses(batch, mini, message):
    with pytest.raises(ConfigError) as err:
        check_accumulation(batch, mini, "mini_batch_train")
    assert err.value.key == "mini_batch_train" and message in str(err.value)


def test_check_accumulation_counts():
    assert check_accumulation(64, 64, "k") == 1
    assert check_accumulation(64, 16, "k") == 4
    with pytest.raises(ConfigError) as err:
        check_accumulation(12, 5, "mini_batch_valid")
    assert "e.g. 4 divides it" in str(err.value) and "multiple of 5 (10 or 15)" in str(err.value)


def test_check_accumulation_never_enumerates_the_divisors():
    # 10**18 + 1 = 101 x 9901 x 999999000001: the divisors used to be listed one by one (10**8
    # took 13 s; this would never end). The suggestion is found within a bounded search.
    with pytest.raises(ConfigError) as err:
        check_accumulation(10**18 + 1, 2, "mini_batch_train")
    assert "e.g. 1 divides it" in str(err.value)
    assert f"({10**18} or {10**18 + 2})" in str(err.value)
    with pytest.raises(ConfigError) as err:
        check_accumulation(10**12 + 2, 4, "mini_batch_train")
    assert "e.g. 3 divides it" in str(err.value)  # (the largest divisor <= 4)


# --------------------------------------------------------------------------------------------
# Exact resume
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("solver, args", [("Momentum", {"lr": 0.1}), ("Adam", {"alpha": 0.01})])
def test_state_dict_round_trip_gives_identical_next_updates(solver, args):
    rng = np.random.RandomState(1)
    shapes = ((3, 2), (2,))
    grads = [[rng.randn(*s).astype(np.float32) for s in shapes] for _ in range(5)]

    def make(params):
        sched = _scheduler({"name": "cosine", "warmup_iter": 1}, 0.1, 5, iter_per_epoch=1)
        return Optimizer(params, _solver(solver, **args), grad_clip=2.0, weight_decay=1e-2,
                         lr_scheduler=sched)  # fmt: skip

    pa = _params(np.random.RandomState(2), shapes)
    a = make(pa)
    for step in range(3):
        _set_grads(pa, grads[step])
        a.update()
    state = a.state_dict()
    assert state["iteration"] == 3 and state["solver"] == solver
    assert all(
        isinstance(v, np.ndarray) for s in state["states"].values() for v in s["pstate"].values()
    )
    assert all(s["t"] == 3 for s in state["states"].values())
    snapshot = {
        k: {n: v.copy() for n, v in s["pstate"].items()} for k, s in state["states"].items()
    }

    pb = OrderedDict((k, _param(v.d)) for k, v in pa.items())
    b = make(pb)
    b.load_state_dict(state)
    assert b.iteration == 3 and b.get_learning_rate() == pytest.approx(a.get_learning_rate())
    # without the state (same weights, same iteration) the next update would differ
    pc = OrderedDict((k, _param(v.d)) for k, v in pa.items())
    c = make(pc)
    for step in (3, 4):
        for params in (pa, pb, pc):
            _set_grads(params, grads[step])
        a.update()
        b.update()
        c.update(step)
        for k in pa:
            np.testing.assert_array_equal(pa[k].d, pb[k].d)
    assert not np.allclose(pa["p0"].d, pc["p0"].d)
    # the saved state is a copy, untouched by later updates
    for k, s in state["states"].items():
        for n, v in s["pstate"].items():
            np.testing.assert_array_equal(v, snapshot[k][n])


def test_load_state_dict_refuses_another_solver_or_parameters():
    a = Optimizer({"w": _param([1.0])}, _solver("Momentum"), key="optimizer.train")
    b = Optimizer({"w": _param([1.0])}, _solver("Adam"))
    with pytest.raises(ConfigError) as err:
        b.load_state_dict(a.state_dict())
    assert "Momentum" in str(err.value)
    c = Optimizer({"v": _param([1.0])}, _solver("Momentum"), key="optimizer.train")
    with pytest.raises(ConfigError) as err:
        c.load_state_dict(a.state_dict())
    assert err.value.key == "optimizer.train"
    d = Optimizer({"w": _param([1.0, 2.0])}, _solver("Momentum"))
    with pytest.raises(ConfigError):
        d.load_state_dict(a.state_dict())

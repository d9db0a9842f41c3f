"""The one value parser (nnabla_nas.parsing) and the typed sections of the experiment file: the
optimizer block with its per-section defaults, the regularizer's loss parameters, and
config.json written back in the shape it was read."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import ClassVar

import pytest

from nnabla_nas.config import (
    AddLinearParams,
    ExperimentConfig,
    MulLogParams,
    RegularizerConfig,
    parse_dataclass,
    parse_value,
    to_dict,
)
from nnabla_nas.errors import ConfigError
from nnabla_nas.estimator.regularizer import build_regularizer
from nnabla_nas.optimizer import (
    ConstantSchedulerConfig,
    CosineSchedulerConfig,
    StepSchedulerConfig,
    solver_config,
)
from nnabla_nas.parsing import GivenFields

from .conftest import tiny_mnist_config

# --------------------------------------------------------------------------------------------
# The parser
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tp, value, text",
    [
        (list[int], "30", "expected a list of integers, got '30'"),
        (list[float], [1.0, "x"], "expected a number, got 'x'"),
        (int, 2.5, "expected an integer, got 2.5"),
        (float, True, "expected a number, got True"),
        (float | None, "x", "expected a number or null, got 'x'"),
    ],
)
def test_parse_value_names_what_was_expected(tp, value, text):
    with pytest.raises(ConfigError) as err:
        parse_value(tp, value, "a.b")
    assert err.value.key.startswith("a.b") and text in str(err.value)


def test_parse_value_converts():
    assert parse_value(int, 3.0, "k") == 3 and isinstance(parse_value(int, 3.0, "k"), int)
    assert parse_value(float, 2, "k") == 2.0 and isinstance(parse_value(float, 2, "k"), float)
    assert parse_value(list[int], [1, 2.0], "k") == [1, 2]
    assert parse_value(float | None, None, "k") is None


@dataclass
class _Params(GivenFields):
    ARGUMENTS_OF: ClassVar[str] = "the toy loss"
    lam: float | None = field(default=None, metadata={"key": "lambda"})
    beta: float = 0.3

    def __post_init__(self) -> None:
        if self.beta < 0:
            raise ConfigError(f"must be >= 0, got {self.beta}", key="beta")


def test_json_keys_given_fields_and_messages():
    p = parse_dataclass(_Params, {"lambda": 0.5}, "x.params")
    assert (p.lam, p.beta, p.given) == (0.5, 0.3, {"lam"})
    assert to_dict(p) == {"lambda": 0.5}  # only what was given, under its JSON key
    assert parse_dataclass(_Params, to_dict(p)) == p
    assert _Params(0.1, 0.2).given == {"lam", "beta"} and _Params(beta=1.0).given == {"beta"}
    with pytest.raises(ConfigError) as err:
        parse_dataclass(_Params, {"lamda": 0.5}, "x.params")
    assert err.value.key == "x.params.lamda"
    assert str(err.value) == ("x.params.lamda: unknown argument 'lamda' of the toy loss; did you "
                              "mean 'lambda'? valid arguments: lambda, beta")  # fmt: skip
    with pytest.raises(ConfigError) as err:  # raised by __post_init__, named with the full path
        parse_dataclass(_Params, {"beta": -1}, "x.params")
    assert err.value.key == "x.params.beta" and "must be >= 0" in str(err.value)


# --------------------------------------------------------------------------------------------
# The optimizer block
# --------------------------------------------------------------------------------------------


def _experiment(**changes) -> dict:
    cfg = copy.deepcopy(tiny_mnist_config())
    cfg.update(changes)
    return cfg


def test_a_scheduler_without_name_is_the_sections_default():
    optimizer = {
        "train": {"solver": {"name": "Sgd"}, "lr_scheduler": {"warmup_epochs": 1}},
        "warmup": {"solver": {"name": "Sgd"}, "lr_scheduler": {"eta_min": 0.01}},
        "valid": {"solver": {"name": "Adam"}, "lr_scheduler": {"warmup_iter": 2}},
    }
    cfg = ExperimentConfig.from_dict(_experiment(optimizer=optimizer))
    assert cfg.optimizer["train"].lr_scheduler == CosineSchedulerConfig(warmup_epochs=1)
    assert cfg.optimizer["warmup"].lr_scheduler == CosineSchedulerConfig(eta_min=0.01)
    assert cfg.optimizer["valid"].lr_scheduler == ConstantSchedulerConfig(warmup_iter=2)
    optimizer["valid"]["lr_scheduler"] = {"eta_min": 0.01}  # cosine's, not constant's
    with pytest.raises(ConfigError) as err:
        ExperimentConfig.from_dict(_experiment(optimizer=optimizer))
    assert err.value.key == "optimizer.valid.lr_scheduler.eta_min"
    assert "of learning-rate scheduler 'constant'" in str(err.value)


def test_optimizer_sections_are_typed():
    optimizer = {
        "train": {"solver": {"name": "momentum", "lr": 0.05}, "grad_clip": 5,
                  "lr_scheduler": {"name": "multistep", "milestones": [1, 2]}},
        "valid": {"solver": {"name": "Adam", "alpha": 0.01, "beta1": 0.5}},
    }  # fmt: skip
    cfg = ExperimentConfig.from_dict(_experiment(optimizer=optimizer))
    train, valid = cfg.optimizer["train"], cfg.optimizer["valid"]
    assert train.solver == solver_config("Momentum")(lr=0.05) and train.grad_clip == 5.0
    assert train.lr_scheduler == StepSchedulerConfig(milestones=[1, 2])
    assert valid.solver.arguments() == {"alpha": 0.01, "beta1": 0.5, "beta2": 0.999, "eps": 1e-8}
    assert valid.solver.learning_rate == 0.01 and valid.lr_scheduler is None
    with pytest.raises(ConfigError) as err:
        ExperimentConfig.from_dict(_experiment(optimizer={"train": {"grad_clip": 1.0}}))
    assert err.value.key == "optimizer.train.solver" and "missing" in str(err.value)


def test_config_json_keeps_the_shape_it_was_read_in():
    raw = _experiment(
        optimizer={
            "train": {"solver": {"name": "Momentum", "lr": 0.05}, "weight_decay": 1e-4,
                      "lr_scheduler": {"name": "step", "milestones": [1], "warmup_iter": 3}},
            "valid": {"solver": {"name": "AdamW", "alpha": 0.01}, "weight_decay": 0.1},
        },
        regularizer={
            "lat": {"name": "FlopsEstimator", "bound": 5e6, "weight": 0.2},
            "mem": {"name": "MemoryEstimator", "bound": 5e6, "grad_reg_loss_type": "mul#log",
                    "grad_reg_loss_params": {"beta": 0.7}},
        },
    )  # fmt: skip
    written = ExperimentConfig.from_dict(copy.deepcopy(raw)).to_dict()
    # the sections as written (the former raw dicts), the unset top-level keys filled in
    assert written["optimizer"] == {
        "train": {**raw["optimizer"]["train"], "grad_clip": None},
        "valid": {**raw["optimizer"]["valid"], "grad_clip": None, "lr_scheduler": None},
    }
    assert written["regularizer"]["lat"]["grad_reg_loss_params"] == {}
    assert written["regularizer"]["mem"]["grad_reg_loss_params"] == {"beta": 0.7}
    again = ExperimentConfig.from_dict(json.loads(json.dumps(written)))  # -f config.json
    assert again.to_dict() == written
    assert again.optimizer == ExperimentConfig.from_dict(copy.deepcopy(raw)).optimizer


# --------------------------------------------------------------------------------------------
# The regularizer's loss parameters
# --------------------------------------------------------------------------------------------


def _regularizer(**keys) -> RegularizerConfig:
    section = {"name": "FlopsEstimator", "bound": 5e6, **keys}
    return parse_dataclass(RegularizerConfig, section, "regularizer.f")


def test_grad_reg_loss_params_are_typed_per_loss():
    cfg = _regularizer(weight=0.1, grad_reg_loss_params={"lambda": 0.3})
    assert cfg.grad_reg_loss_params == AddLinearParams(lam=0.3)
    assert build_regularizer("f", cfg, (1, 8, 8)).lam == 0.3
    cfg = _regularizer(weight=0.1)
    assert cfg.grad_reg_loss_params == AddLinearParams()
    assert build_regularizer("f", cfg, (1, 8, 8)).lam == 0.1  # lambda defaults to weight
    cfg = _regularizer(grad_reg_loss_type="mul#log", grad_reg_loss_params={"alpha": 0.5})
    assert cfg.grad_reg_loss_params == MulLogParams(alpha=0.5, beta=0.3)
    reg = build_regularizer("f", cfg, (1, 8, 8))
    assert (reg.alpha, reg.beta) == (0.5, 0.3)
    assert to_dict(cfg)["grad_reg_loss_params"] == {"alpha": 0.5}


@pytest.mark.parametrize(
    "keys, key, text",
    [
        ({"grad_reg_loss_params": {"beta": 1.0}}, "grad_reg_loss_params.beta",
         "unknown argument 'beta' of the add#linear loss; valid arguments: lambda"),
        ({"grad_reg_loss_type": "mul#log", "grad_reg_loss_params": {"lambda": 1.0}},
         "grad_reg_loss_params.lambda", "valid arguments: alpha, beta"),
        ({"grad_reg_loss_params": {"lambda": "big"}}, "grad_reg_loss_params.lambda",
         "expected a number or null"),
        ({"grad_reg_loss_params": [1.0]}, "grad_reg_loss_params", "expected an object"),
    ],
)  # fmt: skip
def test_bad_loss_params_name_the_key(keys, key, text):
    with pytest.raises(ConfigError) as err:
        _regularizer(**keys)
    assert err.value.key == f"regularizer.f.{key}" and text in str(err.value)

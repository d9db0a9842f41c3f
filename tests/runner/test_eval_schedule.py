"""The evaluation schedule: ``eval_every``, ``eval_examples``, ``test_at_end``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from searcher_toy import ArrayLoader, ToySpace, make_data, make_optimizers, make_options, toy_data

from nnabla_nas.assemble import loop_options
from nnabla_nas.config import ExperimentConfig
from nnabla_nas.errors import ConfigError
from nnabla_nas.runner import LoopOptions
from nnabla_nas.runner.searcher.proxyless import ProxylessNasSearcher
from nnabla_nas.runner.steps import Steps


class _Comm:
    """Rank ``rank`` of ``size`` processes whose all-reduce returns this rank's part."""

    def __init__(self, rank: int, size: int) -> None:
        self.rank, self.size = rank, size

    def all_reduce(self, value, op):
        return value


def _numpy_metrics(model: ToySpace, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Mean cross-entropy and error of the toy network (``linear`` candidate) in numpy."""
    lin, head = model.choice.ops[2], model.head
    logits = (x @ lin._W.d + lin._b.d) @ head._W.d + head._b.d
    z = logits - logits.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    ce = -logp[np.arange(len(x)), y.ravel()].mean()
    return float(ce), float((logits.argmax(1) != y.ravel()).mean())


@pytest.mark.parametrize("rank, size, first", [(0, 1, 21), (0, 2, 11), (1, 2, 10)])
def test_evaluate_limit_takes_the_first_examples(rank, size, first):
    from nnabla_nas.module import use_architecture

    model = ToySpace(seed=3)
    x, y = toy_data(40, seed=5)
    steps = Steps(model, _Comm(rank, size), 0.0, lambda what, done: RuntimeError(what))
    with use_architecture(model, {"choice": 2}):
        got = steps.evaluate(ArrayLoader(x, y, 8), "valid", 4, limit=21)
        whole = steps.evaluate(ArrayLoader(x, y, 8), "valid", 4)
    # rank r of size holds the positions r, r + size, ... of the loader's order: its loader
    # here is already its shard, of which it takes its share of the first 21
    loss, err = _numpy_metrics(model, x[:first], y[:first])
    np.testing.assert_allclose([got["loss"], got["error"]], [loss, err], rtol=1e-5)
    loss_all, _ = _numpy_metrics(model, x, y)
    np.testing.assert_allclose(whole["loss"], loss_all, rtol=1e-5)
    assert abs(got["loss"] - whole["loss"]) > 1e-4  # the subset is not the whole loader


def test_evaluates_every_n_epochs_and_the_test_set_at_the_end():
    opts = LoopOptions(epochs=4, warmup=1, eval_every=2, test_at_end=True)
    assert [opts.evaluates(e) for e in range(5)] == [
        (False, False), (True, False), (False, False), (True, False), (True, True),
    ]  # fmt: skip
    every = LoopOptions(epochs=3)
    assert [every.evaluates(e) for e in range(3)] == [(True, True)] * 3


def test_search_run_follows_the_schedule(tmp_path):
    loop = make_options(epoch=3, eval_every=2, eval_examples=20, test_at_end=True)
    searcher = ProxylessNasSearcher(ToySpace(seed=0), make_data(16), tmp_path, loop=loop,
                                    optimizers=make_optimizers(), seed=0)  # fmt: skip
    calls = []
    steps = searcher.loop().steps
    evaluate = steps.evaluate

    def counted(loader, key, mini, network=None, limit=None):
        calls.append((key, limit))
        return evaluate(loader, key, mini, network, limit)

    steps.evaluate = counted
    results = searcher.run()
    assert calls == [("valid", 20), ("valid", 20), ("test", 20)]  # after epochs 2 and 3
    history = results["history"]
    assert [sorted(k for k in h if k.startswith(("valid", "test"))) for h in history] == [
        [], ["valid_error", "valid_loss"], ["test_error", "test_loss", "valid_error", "valid_loss"],
    ]  # fmt: skip
    assert results["best"]["epoch"] in (2, 3) and "test_error" in results["final"]
    config = json.loads((tmp_path / "config.json").read_text())
    assert (config["eval_every"], config["eval_examples"], config["test_at_end"]) == (2, 20, True)


def test_experiment_keys_reach_the_loop():
    raw = {"network": {"search_space": "mobilenet", "num_classes": 10}, "eval_every": 5,
           "eval_examples": 512, "test_at_end": True}  # fmt: skip
    opts = loop_options(ExperimentConfig.from_dict(raw))
    assert (opts.eval_every, opts.eval_examples, opts.test_at_end) == (5, 512, True)
    defaults = loop_options(ExperimentConfig.from_dict({"network": raw["network"]}))
    assert (defaults.eval_every, defaults.eval_examples, defaults.test_at_end) == (1, None, False)


@pytest.mark.parametrize("key, value", [("eval_every", 0), ("eval_examples", 0)])
def test_bad_schedule_names_the_key(key, value):
    with pytest.raises(ConfigError) as err:
        ExperimentConfig.from_dict({"network": {"search_space": "mobilenet"}, key: value})
    assert err.value.key == key
    with pytest.raises(ConfigError) as err:
        LoopOptions(**{key: value}).check()
    assert err.value.key == key

"""Batch-norm recalibration: the statistics become the exact mean of the batches' statistics for
the architecture built, the supernet's come back afterwards (also after an error), flags and
decay rates are restored, and a BN with fixed running statistics is left alone."""

from __future__ import annotations

import nnabla as nn
import nnabla.functions as F
import numpy as np
import pytest

from nnabla_nas.contrib.model import Model
from nnabla_nas.module import (
    BatchNormalization,
    Dropout,
    Linear,
    MixedOp,
    Sequential,
    use_architecture,
)
from nnabla_nas.runner.searcher.recalibration import (
    preserved_statistics,
    recalibrated,
    statistics,
)

EPS = 1e-5


class BnToy(Model):
    """x -> BN -> choice(dropout -> linear -> BN, linear) -> dropout -> linear; plus a BN with
    fixed running statistics on the input. Recalibration must run without the dropouts."""

    space_name = "bn_toy"

    def __init__(self) -> None:
        rng = np.random.RandomState(0)
        self.bn0 = BatchNormalization(4, 2, decay_rate=0.9)
        self.choice = MixedOp(
            [
                Sequential(Dropout(0.5), Linear(4, 3, rng=rng), BatchNormalization(3, 2)),
                Linear(4, 3, rng=rng),
            ],
            names=["bn", "plain"],
        )
        self.drop = Dropout(0.9)
        self.head = Linear(3, 2, rng=rng)
        self.fixed = BatchNormalization(4, 2, batch_stat=False)

    def call(self, x):
        side = self.fixed(x)
        return self.head(self.drop(self.choice(self.bn0(x)))) + 0.0 * F.mean(side, keepdims=True)


def _model():
    model = BnToy()
    rng = np.random.RandomState(1)
    for path, p in model.get_parameters().items():  # supernet statistics and affine weights
        if path.endswith(("_mean", "_beta", "_gamma")):
            p.d = rng.normal(size=p.shape)
        elif path.endswith("_var"):
            p.d = rng.uniform(0.5, 2.0, size=p.shape)
    model.apply(training=False)
    return model


def _batches(n=3, size=6):
    rng = np.random.RandomState(2)
    return [(rng.normal(2.0, 3.0, size=(size, 4)).astype(np.float32), None) for _ in range(n)]


def _stats(x):
    """Batch mean and nnabla's (unbiased) batch variance per feature."""
    return x.mean(0), x.var(0, ddof=1)


def test_recalibration_is_the_exact_mean_of_the_batch_statistics_and_is_undone():
    model = _model()
    before = statistics(model)
    batches = _batches()
    w, b = (model.choice.ops[0][1].get_parameters()[k].d for k in ("_W", "_b"))
    gamma0, beta0 = (p.d.reshape(-1) for p in (model.bn0._gamma, model.bn0._beta))
    bn1 = model.choice.ops[0][2]
    expected0, expected1 = [], []
    for x, _ in batches:
        mean, _ = _stats(x)
        z = (x - mean) / np.sqrt(x.var(0) + EPS) * gamma0 + beta0  # normalised by the batch
        expected0.append(_stats(x))
        expected1.append(_stats(z @ w + b))
    with use_architecture(model, {"choice": 0}), recalibrated(model, batches):
        inside = statistics(model)
        for key, i in (("bn0/_mean", 0), ("bn0/_var", 1)):
            want = np.mean([s[i] for s in expected0], axis=0)
            np.testing.assert_allclose(inside[key].reshape(-1), want, rtol=1e-5, err_msg=key)
        for key, i in (("choice/ops/0/2/_mean", 0), ("choice/ops/0/2/_var", 1)):
            want = np.mean([s[i] for s in expected1], axis=0)
            np.testing.assert_allclose(inside[key].reshape(-1), want, rtol=1e-4, err_msg=key)
        # the fixed BN never updates: it keeps the supernet's statistics
        np.testing.assert_array_equal(inside["fixed/_mean"], before["fixed/_mean"])
        # every module back in its mode, the decay rates as they were
        assert not model.training and not bn1.training and not model.bn0.training
        assert model.bn0._decay_rate == 0.9 and bn1._decay_rate == 0.9
        assert not np.allclose(inside["bn0/_mean"], before["bn0/_mean"])
    after = statistics(model)
    for key, value in before.items():
        np.testing.assert_array_equal(after[key], value, err_msg=key)


def test_the_statistics_of_the_architecture_built_and_restored_after_an_error():
    model = _model()
    before = statistics(model)
    batches = _batches(n=2)
    with use_architecture(model, {"choice": 1}), recalibrated(model, batches):
        inside = statistics(model)
    # candidate 1 has no BN of its own: candidate 0's is reset (unused), bn0 recalibrated
    assert np.all(inside["choice/ops/0/2/_mean"] == 0) and np.all(
        inside["choice/ops/0/2/_var"] == 1
    )
    want = np.mean([x.mean(0) for x, _ in batches], axis=0)
    np.testing.assert_allclose(inside["bn0/_mean"].reshape(-1), want, rtol=1e-5)
    with pytest.raises(RuntimeError, match="inside"):
        with use_architecture(model, {"choice": 0}), recalibrated(model, batches):
            raise RuntimeError("inside")
    for key, value in statistics(model).items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)


def test_mini_batches_are_batches_of_the_mean_and_training_forwards_are_undone():
    model = _model()
    ((x, _),) = _batches(n=1, size=8)
    with use_architecture(model, {"choice": 1}), recalibrated(model, [(x, None)], mini=4):
        got = statistics(model)["bn0/_var"].reshape(-1)
    want = np.mean([x[:4].var(0, ddof=1), x[4:].var(0, ddof=1)], axis=0)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    before = statistics(model)
    model.apply(training=True)
    with preserved_statistics(model), use_architecture(model, {"choice": 0}):
        out = model(nn.Variable.from_numpy_array(x))
        out.forward()  # a training forward moves the running statistics ...
        assert not np.allclose(statistics(model)["bn0/_mean"], before["bn0/_mean"])
    for key, value in statistics(model).items():  # ... and they come back
        np.testing.assert_array_equal(value, before[key], err_msg=key)


def test_no_batch_is_an_error():
    model = _model()
    before = statistics(model)
    with pytest.raises(ValueError, match="at least one batch"):
        with use_architecture(model, {"choice": 0}), recalibrated(model, []):
            pass
    for key, value in statistics(model).items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)

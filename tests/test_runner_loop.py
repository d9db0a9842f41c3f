"""The shared loop's services: gradient accumulation over mini-batches."""

from __future__ import annotations

import numpy as np
import pytest

from nnabla_nas.contrib.model import Model
from nnabla_nas.module import Linear
from nnabla_nas.runner import DataBundle, LoopOptions, Trainer


class TinyNet(Model):
    """Softmax regression: no batch statistics, so accumulation must be exact."""

    space_name = "tiny"

    def __init__(self, rng):
        self.fc = Linear(12, 3, rng=rng)

    def call(self, x):
        return self.fc(x)


class _Loader:
    def __len__(self):
        return 1

    def set_epoch(self, epoch):
        pass

    def __iter__(self):
        return iter(())


def _trainer(mini: int, tmp_path) -> Trainer:
    optimizers = {
        "train": {"solver": {"name": "Momentum", "lr": 0.3}, "grad_clip": 0.5,
                  "weight_decay": 0.01}
    }  # fmt: skip
    loaders = DataBundle(train=_Loader(), valid=_Loader(), test=_Loader())
    loop = LoopOptions(mini_batch_train=mini, input_shape=(12,))
    trainer = Trainer(TinyNet(np.random.RandomState(0)), loaders, tmp_path, loop=loop,
                      optimizers=optimizers)  # fmt: skip
    trainer.loop()  # set up
    return trainer


@pytest.mark.parametrize("mini", [1, 2, 4])
def test_accumulated_update_equals_one_pass(tmp_path, mini):
    rng = np.random.RandomState(3)
    x = rng.randn(8, 12).astype(np.float32)
    y = rng.randint(0, 3, size=(8, 1)).astype(np.int32)
    weights = []
    for m in (8, mini):
        trainer = _trainer(m, tmp_path)
        steps = trainer.ctx.steps
        for _ in range(3):  # momentum and clipping take part over several updates
            metrics = trainer.train_step(steps.split(x, y, m), "train")
            trainer.loop().state.iteration += 1
        weights.append({k: v.d.copy() for k, v in trainer.model.get_parameters().items()})
        assert np.isfinite(metrics["loss"])
    for k in weights[0]:
        np.testing.assert_allclose(weights[0][k], weights[1][k], rtol=1e-5, atol=1e-6)
    # and the update did something
    fresh = TinyNet(np.random.RandomState(0)).get_parameters()
    assert not np.allclose(fresh["fc/_W"].d, weights[0]["fc/_W"])


def test_accumulate_reports_batch_means(tmp_path):
    rng = np.random.RandomState(4)
    x = rng.randn(8, 12).astype(np.float32)
    y = rng.randint(0, 3, size=(8, 1)).astype(np.int32)
    trainer = _trainer(2, tmp_path)
    logits = x @ trainer.model.fc._W.d + trainer.model.fc._b.d
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    ce = -np.log(p[np.arange(8), y.ravel()]).mean()
    err = (logits.argmax(1) != y.ravel()).mean()
    steps = trainer.ctx.steps
    m = steps.accumulate(steps.split(x, y, 2), backward=False)
    assert m["loss"] == pytest.approx(ce, rel=1e-5)
    assert m["error"] == pytest.approx(err)

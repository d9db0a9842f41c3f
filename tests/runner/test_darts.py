"""DartsSearcher: both architecture gradients against float64 finite differences of a numpy model,
the weight step against hand computation, exact restoring of weights and batch-norm statistics,
accumulation, and search on the toy space with a known best candidate."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from searcher_toy import (
    NAMES,
    ArrayLoader,
    ToySpace,
    make_data,
    make_optimizers,
    make_options,
    toy_data,
)

from nnabla_nas.cli import main
from nnabla_nas.config import parse_dataclass
from nnabla_nas.contrib.model import Model
from nnabla_nas.errors import ConfigError, NnasError
from nnabla_nas.genotype import load_genotype
from nnabla_nas.module import (
    BatchNormalization,
    Linear,
    MixedOp,
    Parameter,
    Sequential,
    Zero,
    softmax,
)
from nnabla_nas.runner import ALGORITHMS, DataBundle
from nnabla_nas.runner.searcher.darts import DartsSearcher, DartsSearcherConfig
from tests.conftest import run_cli, write_json


def make_darts(
    model: Model, output: str, seed: int = 0, data: DataBundle | None = None, batch: int = 16,
    mini: int = 8, epoch: int = 1, train: dict | None = None, valid: dict | None = None, **kwargs
) -> DartsSearcher:  # fmt: skip
    """A DartsSearcher on ``model`` with the toy data, set up; ``kwargs`` are its options
    (``order``, ``unrolled_lr``, ``epsilon``, ``logit_init_std``)."""
    options = parse_dataclass(DartsSearcherConfig, kwargs)
    s = DartsSearcher(model, data or make_data(batch), output, options=options,
                      loop=make_options(epoch, mini), optimizers=make_optimizers(train, valid),
                      seed=seed)  # fmt: skip
    s.loop()  # set up
    return s


def _split(s, x, y, mini):
    return s.ctx.steps.split(x, y, mini)


# ------------------------------------------------------------------------------ numpy models


class LinearHeadSpace(Model):
    """``head(sum_i p_i (x W_i + b_i))``: three linear candidates and a linear head, so the
    unrolled loss has a non-trivial mixed second derivative in ``(alpha, w)``."""

    space_name = "darts_linear_toy"

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.RandomState(seed)
        ops = [Linear(4, 3, rng=rng) for _ in range(3)]
        # mode "sample": the searcher must install the full rule itself. The logits are declared
        # (as a space ported from the original NNabla NAS would): the searcher trains them.
        self.choice = MixedOp(ops, mode="sample", names=["a", "b", "c"],
                              alpha=Parameter((3, 1, 1, 1, 1)))  # fmt: skip
        self.head = Linear(3, 3, rng=rng)
        for _, p in self.get_net_parameters().items():
            p.d = (rng.randn(*p.shape) * 0.8).astype(np.float32)
        self.choice.alpha.d = np.float32([0.3, -0.4, 0.2]).reshape(self.choice.alpha.shape)

    def call(self, x):
        return self.head(self.choice(x))


def np_weights(space: Model) -> dict[str, np.ndarray]:
    return {k: p.d.astype(np.float64) for k, p in space.get_net_parameters().items()}


def _ce(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy and its gradient with respect to the logits."""
    z = logits - logits.max(axis=1, keepdims=True)
    prob = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    onehot = np.eye(logits.shape[1])[y[:, 0]]
    loss = float(-(np.log(prob) * onehot).sum(axis=1).mean())
    return loss, (prob - onehot) / len(y)


def linear_head_loss(w: dict, alpha: np.ndarray, x: np.ndarray, y: np.ndarray):
    """Loss of :class:`LinearHeadSpace` and its weight gradient, by hand in float64."""
    x = x.astype(np.float64)  # a float64 scalar times a float32 array stays float32 in numpy 1
    p = softmax(alpha)
    outs = [x @ w[f"choice/ops/{i}/_W"] + w[f"choice/ops/{i}/_b"] for i in range(3)]
    z = sum(pi * o for pi, o in zip(p, outs))
    loss, dlogits = _ce(z @ w["head/_W"] + w["head/_b"], y)
    dz = dlogits @ w["head/_W"].T
    grad = {"head/_W": z.T @ dlogits, "head/_b": dlogits.sum(axis=0)}
    for i in range(3):
        grad[f"choice/ops/{i}/_W"] = p[i] * x.T @ dz
        grad[f"choice/ops/{i}/_b"] = p[i] * dz.sum(axis=0)
    return loss, grad


def finite_difference(f, alpha: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Central differences of the float64 function ``f(alpha)`` in every coordinate."""
    out = np.zeros_like(alpha)
    for k in range(len(alpha)):
        e = np.zeros_like(alpha)
        e[k] = h
        out[k] = (f(alpha + e) - f(alpha - e)) / (2 * h)
    return out


def unrolled_loss(w, alpha, train, valid, xi, mu=0.0, m=None, wd=0.0) -> float:
    """``L_val(w - mu m - xi (grad_w L_train(w, alpha) + wd w), alpha)`` in float64."""
    _, g = linear_head_loss(w, alpha, *train)
    m = m or {k: 0.0 for k in w}
    w1 = {k: w[k] - mu * m[k] - xi * (g[k] + wd * w[k]) for k in w}
    return linear_head_loss(w1, alpha, *valid)[0]


def _batches(n: int = 8):
    rng = np.random.RandomState(11)
    train = (rng.randn(n, 4), rng.randint(0, 3, (n, 1)))
    valid = (rng.randn(n, 4), rng.randint(0, 3, (n, 1)))
    return [(x.astype(np.float32), y.astype(np.int32)) for x, y in (train, valid)]


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(np.ravel(a) - np.ravel(b)) / np.linalg.norm(np.ravel(b)))


# ------------------------------------------------------------------------------ options


def test_options_are_checked_with_the_key_and_valid_values():
    assert ALGORITHMS.get("dartssearcher") is DartsSearcher
    default = parse_dataclass(DartsSearcherConfig, {}, "searcher")
    assert (default.order, default.unrolled_lr, default.epsilon) == (1, None, 0.01)
    for bad, key, text in [
        ({"order": 3}, "searcher.order", "valid values: 1, 2"),
        ({"epsilon": 0.0}, "searcher.epsilon", "must be > 0"),
        ({"unrolled_lr": -0.1}, "searcher.unrolled_lr", "must be >= 0"),
        ({"logit_init_std": -1.0}, "searcher.logit_init_std", "must be >= 0"),
        ({"order": "2"}, "searcher.order", "expected an integer"),
        ({"estimator": "gradient"}, "searcher.estimator", "valid keys: order"),
    ]:
        with pytest.raises(ConfigError) as err:
            parse_dataclass(DartsSearcherConfig, bad, "searcher")
        assert err.value.key == key and text in str(err.value)


def test_the_searcher_initialises_the_logits_as_darts(tmp_path):
    """``logit_init_std * randn`` per decision from the searcher's generator (seed + 1); a
    space that declares its logits keeps them."""
    s = make_darts(ToySpace(0), str(tmp_path), seed=4)
    want = 1e-3 * np.random.RandomState(5).randn(3)
    np.testing.assert_allclose(s.logits.params["choice"].d.reshape(-1), want, rtol=1e-6)
    s = make_darts(ToySpace(0), str(tmp_path), seed=4, logit_init_std=0.0)
    np.testing.assert_array_equal(s.logits.params["choice"].d, 0.0)
    ported = LinearHeadSpace(0)
    s = make_darts(ported, str(tmp_path))
    assert s.logits.params["choice"] is ported.choice.alpha
    np.testing.assert_allclose(ported.choice.alpha.d.reshape(-1), [0.3, -0.4, 0.2], rtol=1e-6)


# ------------------------------------------------------------------------------ gradients


def test_first_order_gradient_matches_finite_differences(tmp_path):
    space = LinearHeadSpace(0)
    s = make_darts(space, str(tmp_path), order=1)
    _, (x, y) = _batches()
    alpha0 = space.choice.alpha.d.reshape(-1).astype(np.float64)
    w = np_weights(space)
    s.first_order_gradient(_split(s, x, y, 4))
    want = finite_difference(lambda a: linear_head_loss(w, a, x, y)[0], alpha0)
    # Measured relative error ~1e-7 (float32 nnabla against float64 differences).
    assert _rel(space.choice.alpha.g, want) < 1e-4


@pytest.mark.parametrize("mini", [8, 4, 2])
def test_second_order_gradient_matches_finite_differences(tmp_path, mini):
    space = LinearHeadSpace(1)
    s = make_darts(space, str(tmp_path), order=2, train={"solver": {"name": "Sgd", "lr": 0.7}})
    (xt, yt), (xv, yv) = _batches()
    alpha0 = space.choice.alpha.d.reshape(-1).astype(np.float64)
    w = np_weights(space)
    before = {k: p.d.copy() for k, p in space.get_parameters().items()}
    s.second_order_gradient(_split(s, xv, yv, mini), _split(s, xt, yt, mini))
    assert s.unrolled_lr() == pytest.approx(0.7)  # xi defaults to the train learning rate
    train, valid = (xt, yt), (xv, yv)
    want = finite_difference(lambda a: unrolled_loss(w, a, train, valid, xi=0.7), alpha0)
    first = finite_difference(lambda a: linear_head_loss(w, a, xv, yv)[0], alpha0)
    got = space.choice.alpha.g.reshape(-1)
    # Measured relative error 5e-6 (mini 8) to 1e-5 (mini 2) with the default epsilon 0.01 (the
    # float32 finite-difference Hessian-vector product: 1e-3 at epsilon 0.1 (truncation) and at
    # 1e-4 (rounding)); the second-order term changes the gradient by 82% here.
    assert _rel(got, want) < 1e-3
    assert _rel(first, want) > 0.5
    # Weights exactly restored, weight gradients cleared.
    for k, p in space.get_parameters().items():
        np.testing.assert_array_equal(p.d, before[k])
    for p in s.weights.values():
        np.testing.assert_array_equal(p.g, 0.0)


def test_hessian_step_is_normalised_by_the_gradient_norm(tmp_path):
    # Validation inputs x100 make ||grad_w' L_val|| about 100 times larger: the finite-difference
    # step epsilon / ||grad|| keeps the perturbation of the weights at norm epsilon, and the
    # Hessian-vector product stays accurate (measured 7e-6). A step of epsilon alone would move
    # the weights 100 times further (measured error 2e-2).
    space = LinearHeadSpace(1)
    s = make_darts(space, str(tmp_path), order=2, train={"solver": {"name": "Sgd", "lr": 0.7}})
    (xt, yt), (xv, yv) = _batches()
    xv = xv * 100.0
    alpha0 = space.choice.alpha.d.reshape(-1).astype(np.float64)
    w = np_weights(space)
    s.second_order_gradient(_split(s, xv, yv, 8), _split(s, xt, yt, 8))
    want = finite_difference(lambda a: unrolled_loss(w, a, (xt, yt), (xv, yv), xi=0.7), alpha0)
    assert _rel(space.choice.alpha.g, want) < 1e-4


def test_weight_step_and_virtual_step_with_momentum_and_weight_decay(tmp_path):
    space = LinearHeadSpace(2)
    lr, mu, wd = 0.3, 0.9, 0.05
    train = {"solver": {"name": "Momentum", "lr": lr, "momentum": mu}, "weight_decay": wd,
             "lr_scheduler": {"name": "constant"}}  # fmt: skip
    valid = {"solver": {"name": "Sgd", "lr": 0.5}}
    s = make_darts(space, str(tmp_path), order=2, train=train, valid=valid)
    (xt, yt), (xv, yv) = _batches()
    alpha = space.choice.alpha
    a0 = alpha.d.reshape(-1).astype(np.float64)
    w0 = np_weights(space)

    # Weight step: full mode, Momentum with L2 weight decay; alpha untouched, no gradient.
    weight_batch = _split(s, xt, yt, 4)
    s.train_step(weight_batch, "train")
    _, g0 = linear_head_loss(w0, a0, xt, yt)
    m = {k: lr * (g0[k] + wd * w0[k]) for k in w0}
    w1 = {k: w0[k] - m[k] for k in w0}
    for k, p in s.weights.items():
        np.testing.assert_allclose(p.d, w1[k], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(alpha.d.reshape(-1), a0.astype(np.float32))
    np.testing.assert_array_equal(alpha.g, 0.0)

    # Architecture step: the unrolled gradient includes mu * m and wd * w; then Sgd on alpha.
    w1 = np_weights(space)
    stored = {k: p.d.copy() for k, p in space.get_parameters().items()}
    s.arch_step(_split(s, xv, yv, 8), weight_batch)
    want = finite_difference(lambda a: unrolled_loss(w1, a, (xt, yt), (xv, yv), lr, mu, m, wd), a0)
    plain = finite_difference(lambda a: unrolled_loss(w1, a, (xt, yt), (xv, yv), lr), a0)
    new = alpha.d.reshape(-1).astype(np.float64)
    # Measured relative error 2.3e-4: the truncation of the epsilon 0.01 Hessian-vector product,
    # relative to a gradient whose two terms nearly cancel here (4e-6 at epsilon 0.003).
    assert _rel((a0 - new) / 0.5, want) < 1e-3
    assert _rel(plain, want) > 0.5  # without momentum and decay: 200% off
    for k, p in space.get_parameters().items():
        if k != "choice/alpha":
            np.testing.assert_array_equal(p.d, stored[k])


def test_second_order_needs_the_weight_batch(tmp_path):
    s = make_darts(LinearHeadSpace(0), str(tmp_path), order=2)
    _, (x, y) = _batches()
    with pytest.raises(NnasError, match="weight batch"):
        s.arch_step(_split(s, x, y, 8), [])


# ------------------------------------------------------------------------------ batch norm


class BNSpace(Model):
    """A choice among ``linear+bn``, ``linear`` and ``zero``, then a linear head."""

    space_name = "darts_bn_toy"

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.RandomState(seed)
        ops = [Sequential(Linear(8, 8, rng=rng), BatchNormalization(8, 2)), Linear(8, 8, rng=rng),
               Zero()]  # fmt: skip
        self.choice = MixedOp(ops, names=["linear_bn", "linear", "zero"],
                              alpha=Parameter((3, 1, 1, 1, 1)))  # fmt: skip
        self.head = Linear(8, 3, rng=rng)
        # The batch mean far from the running 0.
        self.choice.ops[0][0]._b.d = (rng.randn(8) * 3).astype(np.float32)
        self.choice.alpha.d = np.float32([0.5, -0.2, 0.1]).reshape(self.choice.alpha.shape)

    def call(self, x):
        return self.head(self.choice(x))

    def np_loss(self, alpha: np.ndarray, x: np.ndarray, y: np.ndarray, batch_stat: bool):
        lin_bn, bn, lin = self.choice.ops[0][0], self.choice.ops[0][1], self.choice.ops[1]
        h = x @ lin_bn._W.d + lin_bn._b.d
        mean, var = (h.mean(0), h.var(0)) if batch_stat else (bn._mean.d, bn._var.d)
        h = (h - mean) / np.sqrt(var + 1e-5) * bn._gamma.d + bn._beta.d
        p = softmax(alpha)
        z = p[0] * h + p[1] * (x @ lin._W.d + lin._b.d)
        return _ce(z @ self.head._W.d + self.head._b.d, y)[0]


@pytest.mark.parametrize("order", [1, 2])
def test_arch_step_uses_batch_statistics_and_restores_running_ones(tmp_path, order):
    space = BNSpace(0)
    s = make_darts(space, str(tmp_path), order=order, valid={"solver": {"name": "Sgd", "lr": 1.0}})
    x, y = toy_data(16, seed=3)
    x = x.astype(np.float64)
    s.model.apply(training=True)
    weight_batch = _split(s, *toy_data(16, seed=4), 16)
    stats = {k: p.d.copy() for k, p in s.stats.items()}
    weights = {k: p.d.copy() for k, p in s.weights.items()}
    assert sorted(stats) == ["choice/ops/0/1/_mean", "choice/ops/0/1/_var"]
    seen = []  # the running mean after each forward/backward pass of the step
    accumulate = s.ctx.steps.accumulate

    def recording(*args, **kwargs):
        out = accumulate(*args, **kwargs)
        seen.append(s.stats["choice/ops/0/1/_mean"].d.copy())
        return out

    s.ctx.steps.accumulate = recording
    a0 = space.choice.alpha.d.reshape(-1).astype(np.float64)
    s.arch_step(_split(s, x.astype(np.float32), y, 16), weight_batch)
    assert len(seen) == (1 if order == 1 else 4)
    assert not np.allclose(seen[-1], stats["choice/ops/0/1/_mean"])  # the forwards moved them
    for k, p in s.stats.items():  # ... and the architecture step put them back
        np.testing.assert_array_equal(p.d, stats[k])
    for k, p in s.weights.items():
        np.testing.assert_array_equal(p.d, weights[k])
    step = a0 - space.choice.alpha.d.reshape(-1)
    if order == 1:
        want = finite_difference(lambda a: space.np_loss(a, x, y, True), a0)
        running = finite_difference(lambda a: space.np_loss(a, x, y, False), a0)
        # Measured relative error 2e-6; the running statistics would give another gradient.
        assert _rel(step, want) < 1e-3
        assert _rel(running, want) > 0.1
    else:
        assert np.abs(step).max() > 1e-4


# ------------------------------------------------------------------------------ search


@pytest.mark.parametrize("order", [1, 2])
def test_search_finds_the_best_candidate(tmp_path, order):
    # 256 + 256 examples: with the 64 of make_data() the full-mode mixture overfits, and the
    # validation gradient then shrinks the learnt linear path (in DARTS the softmax weight also
    # scales a candidate's output) in favour of the uninformative candidates.
    x, y = toy_data(256, seed=0)
    xa, ya = toy_data(256, seed=1)
    data = DataBundle(ArrayLoader(x, y, 32), ArrayLoader(xa, ya, 32), ArrayLoader(xa, ya, 32),
                      ArrayLoader(xa, ya, 32))  # fmt: skip
    train = {"solver": {"name": "Momentum", "lr": 0.1}, "lr_scheduler": {"name": "constant"}}
    s = make_darts(ToySpace(0), str(tmp_path), data=data, mini=16, train=train, order=order)

    def probs():
        return s.logits.probabilities()["choice"]

    linear = NAMES.index("linear")
    start = probs()[linear]
    for _ in range(30):
        for (x, y), (xa, ya) in zip(s.data.train, s.data.arch):
            weight_batch = _split(s, x, y, 16)
            s.train_step(weight_batch, "train")
            s.arch_step(_split(s, xa, ya, 16), weight_batch)
        if probs()[linear] > 0.8:
            break
    assert start < 0.34 and probs()[linear] > 0.7, probs()
    assert s.model.genotype(s.export().architecture)["choice"] == "linear"


def test_run_exports_the_architecture(tmp_path):
    s = make_darts(ToySpace(0), str(tmp_path), order=2, epoch=2)
    summary = s.run()
    assert summary["algorithm"] == "DartsSearcher" and summary["steps"] == 8
    probs = s.logits.probabilities()["choice"]
    res = json.loads((tmp_path / "results.json").read_text())
    np.testing.assert_allclose(list(res["arch_probabilities"]["choice"].values()), probs)
    genotype = load_genotype(tmp_path / "arch.h5", expected_space="toy")
    assert dict(genotype.choices) == {"choice": NAMES[int(np.argmax(probs))]}
    np.testing.assert_array_equal(genotype.logits["choice/alpha"], s.logits.params["choice"].d)


# ------------------------------------------------------------------------------ CLI


def _write_tiny_mnist(folder: Path, per_class: int = 16, test_per_class: int = 4) -> Path:
    """Real digits of the embedded subset as the four MNIST IDX files: ``10 * per_class``
    training and ``10 * test_per_class`` test images."""
    from nnabla_nas.data.mnist import IDX_FILES, load_embedded

    x, y = load_embedded()
    idx = [np.flatnonzero(y == c)[: per_class + test_per_class] for c in range(10)]
    train = np.concatenate([i[:per_class] for i in idx])
    test = np.concatenate([i[per_class:] for i in idx])
    folder.mkdir(parents=True, exist_ok=True)
    for part, rows in (("train", train), ("test", test)):
        for kind, arr in (("images", x[rows, 0]), ("labels", y[rows].astype(np.uint8))):
            head = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(
                f">{arr.ndim}I", *arr.shape
            )
            (folder / IDX_FILES[f"{part}_{kind}"]).write_bytes(head + arr.tobytes())
    return folder


def _tiny_darts_config(data_dir: Path) -> dict:
    """The darts space at its smallest on 160 + 40 digits: 2 search steps of 16 examples."""
    return {
        "dataset": "mnist",
        "data_dir": str(data_dir),
        "epoch": 1,
        "input_shape": [1, 28, 28],
        "batch_size_train": 16,
        "batch_size_valid": 60,
        "mini_batch_train": 8,
        "mini_batch_valid": 60,
        "print_frequency": 1,
        "train_portion": 0.25,
        "network": {
            "search_space": "darts",
            "num_classes": 10,
            "init_channels": 4,
            "num_cells": 3,
            "num_choices": 2,
            "multiplier": 2,
            "stem_multiplier": 1,
            "shared": True,
            "mode": "full",
        },  # fmt: skip
        "optimizer": {
            "train": {"solver": {"name": "Momentum", "lr": 0.05}, "weight_decay": 3e-4},
            "valid": {"solver": {"name": "Adam", "alpha": 0.01, "beta1": 0.5}},
        },
    }


@pytest.mark.parametrize("order, genotype_file", [(1, "arch.h5"), (2, "arch.json")])
def test_cli_search_then_retrain(tmp_path, order, genotype_file):
    cfg = _tiny_darts_config(_write_tiny_mnist(tmp_path / "mnist"))
    search = tmp_path / "search"
    args = ["--search", "-f", write_json(tmp_path / "s.json", cfg), "-a", "DartsSearcher",
            "-o", search, "--set", f"searcher.order={order}"]  # fmt: skip
    proc = run_cli(args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    resolved = json.loads((search / "config.json").read_text())
    assert resolved["algorithm"] == "DartsSearcher"
    assert resolved["searcher"] == {"order": order, "unrolled_lr": None, "epsilon": 0.01,
                                    "logit_init_std": 1e-3}  # fmt: skip
    res = json.loads((search / "results.json").read_text())
    assert res["steps"] == 2 and res["algorithm"] == "DartsSearcher"
    assert "arch_loss" in (search / "log.txt").read_text()

    # arch.h5: the final logits, their argmax per choice as in results.json, and moved by the
    # architecture steps from the searcher's initial logits (1e-3 * randn: all near 0).
    genotype = load_genotype(search / "arch.h5", expected_space="darts")
    assert dict(genotype.choices) == res["architecture"]
    edges = ["edge_2_0", "edge_2_1", "edge_3_0", "edge_3_1", "edge_3_2"]
    labels = [f"{kind}/{e}" for kind in ("normal", "reduce") for e in edges]
    assert set(genotype.logits) == {f"{label}/alpha" for label in labels}
    for _key, logits in genotype.logits.items():
        assert np.abs(logits).max() > 5e-3
    # one label per decision in every output: results.json, arch.h5 and the log
    assert set(res["arch_probabilities"]) == set(res["architecture"]) == set(labels)
    for label, probs in res["arch_probabilities"].items():
        np.testing.assert_allclose(list(probs.values()), softmax(genotype.logits[f"{label}/alpha"]))
    # arch.json: the DARTS cells derived from those logits (two edges per node).
    cells = json.loads((search / "arch.json").read_text())
    assert len(cells["normal"]) == len(cells["reduce"]) == 4
    assert cells["normal_concat"] == cells["reduce_concat"] == [2, 3]

    # Retraining the found architecture with the Trainer.
    train_cfg = {k: v for k, v in cfg.items() if k != "searcher"}
    train_cfg["network"] = dict(cfg["network"], genotype=str(search / genotype_file))
    del train_cfg["network"]["mode"]
    train_cfg.update(batch_size_train=64, mini_batch_train=32)  # 2 steps on 144 digits
    out = tmp_path / "train"
    code = main(["-f", str(write_json(tmp_path / "t.json", train_cfg)), "-a", "Trainer",
                 "-o", str(out)])  # fmt: skip
    assert code == 0
    res2 = json.loads((out / "results.json").read_text())
    assert res2["algorithm"] == "Trainer" and res2["epochs"] == 1 and res2["steps"] == 2
    # The search reports the retrained network's weights, and the argmax path's, labelled.
    assert res["num_parameters"] == res2["num_parameters"]
    assert res["num_parameters_argmax_path"] != res["num_parameters"]
    assert (out / "weights.h5").is_file()


def test_darts_evaluates_the_mixture_it_trains(tmp_path):
    """Validation runs every edge as the softmax mixture, not the argmax op alone."""
    import nnabla as nn

    space = ToySpace()
    searcher = make_darts(space, str(tmp_path))
    alpha = searcher.logits.params["choice"]
    alpha.d = np.array([0.3, -1.0, 0.9]).reshape(3, 1, 1, 1, 1)
    x = nn.Variable((4, 8))
    x.d = np.random.RandomState(0).randn(4, 8)
    with searcher.evaluating():
        y = space(x)
    y.forward()
    parts = [op(x) for op in space.choice.ops]
    for part in parts:
        part.forward()
    p = softmax(alpha.d)
    mixed = sum(pi * part.d for pi, part in zip(p, parts))
    head = space.head(nn.Variable.from_numpy_array(mixed.astype(np.float32)))
    head.forward()
    np.testing.assert_allclose(y.d, head.d, rtol=1e-5, atol=1e-6)
    assert space.choice.rule is None  # restored after evaluation

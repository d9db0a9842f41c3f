"""ProxylessNasSearcher: the two estimators against hand computation, and search on a toy space.

Exact facts about the binary-gate estimator that are checked here (derivation in
docs/proxyless.rst): with a loss that is linear in the choice's output, the gate gradient of path
``l`` is that path's loss ``L_l``, so for a drawn pair the update is the gradient of
``sum_pair q_l L_l``. Hence (a) with two candidates every draw gives exactly the gradient of
``E_{path~p}[L] = sum_k p_k L_k``; (b) with ``n`` candidates at uniform ``p`` the expectation over
pairs and gate draws is ``n / (2 (n - 1))`` times that gradient; (c) otherwise the expectation is
``sum_j P({i,j}) q_i q_j (L_i - L_j)``, which is not proportional to the exact gradient.
"""

from __future__ import annotations

import nnabla as nn
import nnabla.functions as F
import numpy as np
import pytest
from searcher_toy import NAMES, ToySpace, make_searcher, toy_data

from nnabla_nas.config import parse_dataclass
from nnabla_nas.contrib.model import Model
from nnabla_nas.errors import ConfigError
from nnabla_nas.module import Linear, MixedOp, Zero, softmax, use_architecture
from nnabla_nas.runner import ALGORITHMS
from nnabla_nas.runner.searcher import proxyless
from nnabla_nas.runner.searcher.proxyless import ProxylessNasConfig, ProxylessNasSearcher
from nnabla_nas.runner.searcher.proxyless_gates import gate_gradient, pair_gradient
from nnabla_nas.runner.searcher.reinforce import log_prob_gradient
from nnabla_nas.runner.searcher.sampling import sample_pair


@pytest.fixture(autouse=True)
def clean_parameter_scope():
    nn.clear_parameters()
    yield
    nn.clear_parameters()


class LinearLossSpace(Model):
    """A choice among ``n`` linear layers whose output is the logits; the loss is linear in the
    logits (``mean_b sum_c y_bc * c_c``), so it is linear in the binary gates. With ``shared``, a
    second choice on ``2 x`` is the same decision (same label) and adds its output."""

    space_name = "linear_toy"

    def __init__(self, n: int, seed: int = 0, shared: bool = False) -> None:
        rng = np.random.RandomState(seed)
        names = [f"l{k}" for k in range(n)]
        self.choice = MixedOp([Linear(4, 3, rng=rng) for _ in range(n)], names=names,
                              label="choice")  # fmt: skip
        self.shared = shared
        if shared:
            ops = [Linear(4, 3, rng=rng) for _ in range(n)]
            self.other = MixedOp(ops, names=names, label="choice")
        self.c = rng.randn(1, 3).astype(np.float32)

    def call(self, x):
        y = self.choice(x)
        return y + self.other(2.0 * x) if self.shared else y

    def loss(self, outputs, target, aux_weight=0.0):
        return F.mean(F.sum(F.mul2(outputs, nn.Variable.from_numpy_array(self.c)), axis=1))

    def path_losses(self, x: np.ndarray) -> np.ndarray:
        """``L_k`` (numpy): the loss of the network that runs candidate ``k`` everywhere."""
        out = []
        for k in range(len(self.choice.ops)):
            y = x @ self.choice.ops[k]._W.d + self.choice.ops[k]._b.d
            if self.shared:
                y = y + (2 * x) @ self.other.ops[k]._W.d + self.other.ops[k]._b.d
            out.append(float(np.mean((y * self.c).sum(axis=1))))
        return np.array(out)


def _batch(n: int = 8, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(seed)
    return rng.randn(n, 4).astype(np.float32), rng.randint(0, 3, (n, 1)).astype(np.int32)


def _split(searcher, x, y, mini):
    return searcher.ctx.steps.split(x, y, mini)


def _recording_gates(monkeypatch):
    """Records the gate draws of the gradient estimator (``draw_gates``)."""
    draws = []
    real = proxyless.draw_gates

    def record(logits, rng):
        out = real(logits, rng)
        draws.append(out["choice"])
        return out

    monkeypatch.setattr(proxyless, "draw_gates", record)
    return draws


def _expected_gate_gradient(searcher, alpha, batch) -> np.ndarray:
    """The exact expectation of the binary-gate gradient: every ordered draw ``i`` then ``j``
    (probability ``p_i p_j / (1 - p_i)``) and every active gate (probability ``q``)."""
    p = softmax(alpha.d)
    n = len(p)
    total = np.zeros(n)
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            q = np.array([p[i], p[j]]) / (p[i] + p[j])
            for active, q_active in ((i, q[0]), (j, q[1])):
                gate_gradient(searcher, batch, {"choice": (i, j, active)})
                total += p[i] * p[j] / (1 - p[i]) * q_active * alpha.g.reshape(-1)
    return total


# ------------------------------------------------------------------------------ options


def test_options_are_checked_with_the_key_and_valid_values():
    assert ALGORITHMS.get("proxylessnassearcher") is ProxylessNasSearcher
    assert ProxylessNasSearcher.Config is ProxylessNasConfig
    default = parse_dataclass(ProxylessNasConfig, {}, "searcher")
    assert (default.estimator, default.num_samples, default.baseline_decay) == ("gradient", 8, 0.9)
    with pytest.raises(ConfigError) as err:
        parse_dataclass(ProxylessNasConfig, {"estimator": "evolution"}, "searcher")
    assert err.value.key == "searcher.estimator"
    assert "gradient, reinforce" in str(err.value)
    with pytest.raises(ConfigError) as err:
        parse_dataclass(ProxylessNasConfig, {"num_samples": 0}, "searcher")
    assert err.value.key == "searcher.num_samples"
    with pytest.raises(ConfigError) as err:
        parse_dataclass(ProxylessNasConfig, {"baseline_decay": 1.0}, "searcher")
    assert err.value.key == "searcher.baseline_decay"
    with pytest.raises(ConfigError) as err:
        parse_dataclass(ProxylessNasConfig, {"entropy_weight": 0.1}, "searcher")
    assert err.value.key == "searcher.entropy_weight"
    assert (default.arch_update_frequency, default.arch_update_delay) == (1, 0)
    assert default.logit_init_std == 0.0
    for key, value in (("arch_update_frequency", 0), ("arch_update_delay", -1),
                       ("logit_init_std", -1e-3), ("logit_init_std", float("nan"))):  # fmt: skip
        with pytest.raises(ConfigError) as err:
            parse_dataclass(ProxylessNasConfig, {key: value}, "searcher")
        assert err.value.key == f"searcher.{key}"


def test_logit_initialisation_from_the_searchers_generator(tmp_path):
    s = make_searcher(ChainSpace(0), str(tmp_path), seed=7, logit_init_std=1e-3)
    rng = np.random.RandomState(8)  # the searcher's generator: seed + 1
    for param in s.logits.params.values():
        np.testing.assert_allclose(param.d.reshape(-1), 1e-3 * rng.randn(3), rtol=1e-6)
    zero = make_searcher(ChainSpace(0), str(tmp_path / "z"), seed=7)
    assert all(np.all(p.d == 0) for p in zero.logits.params.values())


@pytest.mark.parametrize("frequency, delay", [(1, 0), (3, 1)])
def test_architecture_updates_every_n_steps_after_the_delay(tmp_path, frequency, delay):
    # 64 training examples in batches of 16: 4 steps per epoch, 3 epochs; the logits change
    # exactly on the steps that are due, and the metrics of a step without update repeat the
    # last update's.
    s = make_searcher(ToySpace(0), str(tmp_path), epoch=3, arch_update_frequency=frequency,
                      arch_update_delay=delay)  # fmt: skip
    alpha = s.logits.params["choice"]
    changed, reported = [], []
    real = s.arch_step

    def spy(batch, weight_batch):
        before = np.array(alpha.d, copy=True)
        out = real(batch, weight_batch)
        changed.append(not np.array_equal(before, alpha.d))
        reported.append(out)
        return out

    s.arch_step = spy
    s.run()
    due = [k >= 4 * delay and (k - 4 * delay) % frequency == 0 for k in range(12)]
    assert changed == due
    for k in range(12):
        if not due[k]:
            last = max((j for j in range(k) if due[j]), default=None)
            assert reported[k] == ({} if last is None else reported[last])


# ------------------------------------------------------------------------------ sampling


def test_sampling_follows_the_probabilities(tmp_path):
    s = make_searcher(ToySpace(0), str(tmp_path), seed=5)
    alpha = s.logits.params["choice"]
    alpha.d = np.array([0.5, -1.0, 1.0]).reshape(alpha.shape)
    p = softmax(alpha.d)
    draws = 20000
    counts = np.bincount([s.sample_architecture()["choice"] for _ in range(draws)], minlength=3)
    np.testing.assert_allclose(counts / draws, p, atol=0.015)
    # Pairs without replacement: P({i, j}) = p_i p_j (1 / (1 - p_i) + 1 / (1 - p_j)); the
    # active path of the pair is drawn from the renormalised probabilities.
    pairs, active_first = {}, {}
    for _ in range(draws):
        i, j, a = sample_pair(p, s.rng)
        assert i != j and a in (i, j)
        key = (min(i, j), max(i, j))
        pairs[key] = pairs.get(key, 0) + 1
        active_first[key] = active_first.get(key, 0) + (a == key[0])
    for (i, j), count in pairs.items():
        expected = p[i] * p[j] * (1 / (1 - p[i]) + 1 / (1 - p[j]))
        assert abs(count / draws - expected) < 0.015
        assert abs(active_first[(i, j)] / count - p[i] / (p[i] + p[j])) < 0.03


class ChainSpace(Model):
    """Four independent decisions in a row (labels ``c0``..``c3``), three linear candidates each,
    then a classifier."""

    space_name = "chain_toy"

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.RandomState(seed)
        for k in range(4):
            ops = [Linear(8, 8, rng=rng) for _ in range(3)]
            setattr(self, f"c{k}", MixedOp(ops, names=["a", "b", "c"], label=f"c{k}"))
        self.head = Linear(8, 3, rng=rng)

    def call(self, x):
        for k in range(4):
            x = F.relu(getattr(self, f"c{k}")(x))
        return self.head(x)


# c0 and c1 share their probabilities (independent draws agree with probability sum_k p_k^2,
# one draw reused for both: always); c2 and c3 differ.
CHAIN_LOGITS = {"c0": [0.2, -0.3, 0.1], "c1": [0.2, -0.3, 0.1], "c2": [1.0, 0.0, -1.0],
                "c3": [-0.5, 0.8, 0.0]}  # fmt: skip


def _independence_checks(draws: np.ndarray, probs: list[np.ndarray], bound_sigmas: float = 5.0):
    """``draws`` (N x decisions) of independent categorical draws: for every two decisions, the
    agreement rate against ``sum_k p_k q_k`` and the correlation of the indicators of each
    candidate against 0, each within ``bound_sigmas`` standard errors."""
    n = len(draws)
    for a in range(draws.shape[1]):
        for b in range(a + 1, draws.shape[1]):
            expected = float(np.dot(probs[a], probs[b]))
            agree = float(np.mean(draws[:, a] == draws[:, b]))
            assert abs(agree - expected) < bound_sigmas * np.sqrt(expected * (1 - expected) / n)
            for k in range(3):
                corr = np.corrcoef(draws[:, a] == k, draws[:, b] == k)[0, 1]
                assert abs(corr) < bound_sigmas / np.sqrt(n), (a, b, k, corr)


def test_every_decision_draws_independently(tmp_path):
    s = make_searcher(ChainSpace(0), str(tmp_path), seed=2)
    for label, values in CHAIN_LOGITS.items():
        s.logits.params[label].d = np.array(values).reshape(3, 1, 1, 1, 1)
    probs = [softmax(np.array(v)) for v in CHAIN_LOGITS.values()]
    n = 1500
    # The weight step's paths.
    paths = np.array([list(s.sample_architecture().values()) for _ in range(n)])
    _independence_checks(paths, probs)
    for k, p in enumerate(probs):  # the marginals, within 5 standard errors
        freq = np.bincount(paths[:, k], minlength=3) / n
        assert np.all(np.abs(freq - p) < 5 * np.sqrt(p * (1 - p) / n))
    # The architecture step's pairs: the first paths drawn (from p) and the active gates.
    gates = [proxyless.draw_gates(s.logits, s.rng) for _ in range(n)]
    firsts = np.array([[g[label][0] for label in CHAIN_LOGITS] for g in gates])
    _independence_checks(firsts, probs)
    active = np.array([[g[label][2] for label in CHAIN_LOGITS] for g in gates])
    for a, b in ((0, 2), (1, 3), (2, 3)):
        corr = np.corrcoef(active[:, a] == 0, active[:, b] == 0)[0, 1]
        assert abs(corr) < 5 / np.sqrt(n)


def test_weight_steps_build_independent_paths_per_decision(tmp_path):
    # Through the searcher's weight step: the MixedOps' active paths after each step.
    space = ChainSpace(1)
    s = make_searcher(space, str(tmp_path), seed=3, batch=4, mini=4)
    x, y = toy_data(4, seed=5)
    built = []
    for _ in range(120):
        s.train_step([(x, y)], "train")
        built.append([getattr(space, f"c{k}").active_index for k in range(4)])
    built = np.array(built)
    uniform = [np.full(3, 1 / 3)] * 4
    _independence_checks(built, uniform)


def test_search_time_evaluation_uses_batch_statistics(tmp_path):
    # The argmax path is evaluated with the batch's statistics (the running ones are garbage
    # here), dropout-free, and every running statistic is left as it was.
    space = BnSpace()
    s = make_searcher(space, str(tmp_path))
    space.bn._mean.d = 100.0
    space.bn._var.d = 1e-4
    stats = {k: p.d.copy() for k, p in space.get_net_parameters().items() if not p.need_grad}
    x, y = toy_data(16, seed=2)
    metrics = s.ctx.steps.evaluate([(x, y)], "valid", 16, s.evaluating)
    arch = s.logits.argmax()["choice"]
    lin = space.choice.ops[arch]
    h = x.astype(np.float64) @ lin._W.d + lin._b.d
    h = (h - h.mean(axis=0)) / np.sqrt(h.var(axis=0) + 1e-5)
    z = h @ space.head._W.d + space.head._b.d
    z = z - z.max(axis=1, keepdims=True)
    ce = -(z[np.arange(16), y[:, 0]] - np.log(np.exp(z).sum(axis=1))).mean()
    assert metrics["loss"] == pytest.approx(ce, rel=1e-4)
    for k, p in space.get_net_parameters().items():
        if not p.need_grad:
            np.testing.assert_array_equal(p.d, stats[k])
    assert space.bn.training == space.training  # the mode before the evaluation


class BnSpace(Model):
    """A choice of two linear layers, a batch normalisation, a linear classifier."""

    space_name = "bn_toy"

    def __init__(self) -> None:
        from nnabla_nas.module import BatchNormalization

        rng = np.random.RandomState(0)
        self.choice = MixedOp([Linear(8, 8, rng=rng) for _ in range(2)], names=["a", "b"],
                              label="choice")  # fmt: skip
        self.bn = BatchNormalization(8, 2, fix_parameters=True)
        self.head = Linear(8, 3, rng=rng)

    def call(self, x):
        return self.head(self.bn(self.choice(x)))


# ------------------------------------------------------------------------------ weight step


def test_weight_step_trains_only_the_sampled_path(tmp_path):
    space = ToySpace(0)
    s = make_searcher(space, str(tmp_path), seed=1, train={"solver": {"name": "Sgd", "lr": 0.5}})
    alpha = s.logits.params["choice"]
    alpha.d = np.array([-3.0, -3.0, 3.0]).reshape(alpha.shape)  # the linear path, mostly
    assert all(id(p) != id(alpha) for p in s.ctx.optimizers["train"].params.values())
    lin, head = space.choice.ops[2], space.head
    x, y = toy_data(16, seed=0)
    samples = []
    sample_architecture = s.sample_architecture
    s.sample_architecture = lambda: samples.append(sample_architecture()) or samples[-1]
    for _ in range(6):
        before = {k: v.d.copy() for k, v in space.get_parameters().items()}
        before["choice/alpha"] = alpha.d.copy()
        s.train_step(_split(s, x, y, 8), "train")
        index = samples[-1]["choice"]
        # The same step by hand: plain nnabla graph of the sampled path, full batch.
        xv = nn.Variable.from_numpy_array(x)
        w_h, b_h, w_l, b_l = (
            nn.Variable.from_numpy_array(before[k], need_grad=True)
            for k in ("head/_W", "head/_b", "choice/ops/2/_W", "choice/ops/2/_b")
        )
        if index == 2:
            feat = F.affine(xv, w_l, b_l)
        elif index == 1:
            feat = F.broadcast(F.mean(xv, axis=1, keepdims=True), xv.shape)
        else:
            feat = F.constant(0.0, xv.shape)
        loss = F.mean(
            F.softmax_cross_entropy(F.affine(feat, w_h, b_h), nn.Variable.from_numpy_array(y))
        )
        for v in (w_h, b_h, w_l, b_l):
            v.grad.zero()
        loss.forward()
        loss.backward()
        np.testing.assert_allclose(head._W.d, before["head/_W"] - 0.5 * w_h.g, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(head._b.d, before["head/_b"] - 0.5 * b_h.g, rtol=1e-4, atol=1e-6)
        if index == 2:
            np.testing.assert_allclose(
                lin._W.d, before["choice/ops/2/_W"] - 0.5 * w_l.g, rtol=1e-4, atol=1e-6
            )
        else:  # the linear candidate did not run: no gradient, no change
            np.testing.assert_array_equal(lin._W.d, before["choice/ops/2/_W"])
            np.testing.assert_array_equal(lin._W.g, 0.0)
        np.testing.assert_array_equal(alpha.d, before["choice/alpha"])
        np.testing.assert_array_equal(alpha.g, 0.0)
    assert {smp["choice"] for smp in samples} >= {2}


def test_unsampled_weights_untouched_with_momentum_and_weight_decay(tmp_path):
    space = ToySpace(0)
    train = {"solver": {"name": "Momentum", "lr": 0.1, "momentum": 0.9}, "weight_decay": 0.01}
    s = make_searcher(space, str(tmp_path), seed=2, train=train)
    alpha = s.logits.params["choice"]
    alpha.d = np.array([0.0, 0.0, 0.7]).reshape(alpha.shape)  # p(linear) ~ 1/2
    x, y = toy_data(16, seed=0)
    samples = []
    sample_architecture = s.sample_architecture
    s.sample_architecture = lambda: samples.append(sample_architecture()) or samples[-1]
    lin = space.choice.ops[2]
    changed = 0
    for _ in range(12):
        w = lin._W.d.copy()
        s.train_step(_split(s, x, y, 16), "train")
        if samples[-1]["choice"] == 2:
            changed += int(not np.array_equal(w, lin._W.d))
        else:  # momentum from earlier steps and weight decay must not move it
            np.testing.assert_array_equal(lin._W.d, w)
        np.testing.assert_array_equal(alpha.g, 0.0)
    assert changed == sum(smp["choice"] == 2 for smp in samples) > 0
    assert any(smp["choice"] != 2 for smp in samples)


# ------------------------------------------------------------------------------ binary gates


def test_pair_gradient_formula():
    alpha = np.array([0.2, -0.4, 1.0, 0.0])
    q = softmax(alpha[[2, 0]])
    dg = np.array([0.7, -0.3])
    g = pair_gradient(alpha, (2, 0), dg)
    by_hand = [sum(dg[m] * q[m] * ((k == m) - q[k]) for m in range(2)) for k in range(2)]
    np.testing.assert_allclose(g[[2, 0]], by_hand, rtol=1e-12)
    np.testing.assert_array_equal(g[[1, 3]], 0.0)
    assert abs(g.sum()) < 1e-12  # softmax is shift-invariant


def test_binary_gate_is_exact_for_two_candidates(tmp_path):
    space = LinearLossSpace(2, seed=0)
    s = make_searcher(space, str(tmp_path))
    alpha = s.logits.params["choice"]
    alpha.d = np.array([0.8, -0.5]).reshape(alpha.shape)
    x, y = _batch()
    p, L = softmax(alpha.d), space.path_losses(x)
    exact = p * (L - p @ L)  # d/dalpha sum_k p_k L_k
    for draw in [(0, 1, 0), (0, 1, 1), (1, 0, 0), (1, 0, 1)]:
        gate_gradient(s, _split(s, x, y, 4), {"choice": draw})
        np.testing.assert_allclose(alpha.g.reshape(-1), exact, rtol=1e-4, atol=1e-7)


def test_binary_gate_expectation_at_uniform_probabilities(tmp_path):
    n = 4
    space = LinearLossSpace(n, seed=1)
    s = make_searcher(space, str(tmp_path))
    alpha = s.logits.params["choice"]  # zeros: uniform
    x, y = _batch()
    p, L = softmax(alpha.d), space.path_losses(x)
    exact = p * (L - p @ L)
    expected = _expected_gate_gradient(s, alpha, _split(s, x, y, 8))
    np.testing.assert_allclose(expected, n / (2 * (n - 1)) * exact, rtol=1e-4, atol=1e-7)


def test_binary_gate_expectation_in_general_is_biased(tmp_path):
    space = LinearLossSpace(4, seed=2)
    s = make_searcher(space, str(tmp_path))
    alpha = s.logits.params["choice"]
    alpha.d = np.array([1.5, 0.0, -1.0, 0.5]).reshape(alpha.shape)
    x, y = _batch()
    p, L = softmax(alpha.d), space.path_losses(x)
    exact = p * (L - p @ L)
    expected = _expected_gate_gradient(s, alpha, _split(s, x, y, 8))
    closed = np.zeros(4)
    for i in range(4):
        for j in range(4):
            if i != j:
                pair = p[i] * p[j] * (1 / (1 - p[i]) + 1 / (1 - p[j]))
                closed[i] += pair * p[i] * p[j] / (p[i] + p[j]) ** 2 * (L[i] - L[j])
    np.testing.assert_allclose(expected, closed, rtol=1e-4, atol=1e-7)
    cos = expected @ exact / np.linalg.norm(expected) / np.linalg.norm(exact)
    assert 0.5 < cos < 0.999  # same general direction here, but not proportional


def test_binary_gate_expectation_can_oppose_the_gradient():
    # Pure arithmetic on the closed form checked above: its expectation can point against the
    # exact gradient of the expected loss. Here path 0 dominates (p_0 ~ 0.999): nearly every
    # pair is {0, 1}, which compares only L_0 and L_1 (pushing alpha_0 down), while the exact
    # gradient pushes alpha_0 up because paths 2 and 3 are much worse.
    a = np.array([8.1, 0.9, -2.7, -4.1])
    L = np.array([-0.68, -0.69, 0.82, 2.21])
    p = softmax(a)
    exact = p * (L - p @ L)
    closed = np.zeros(4)
    for i in range(4):
        for j in range(4):
            if i != j:
                pair = p[i] * p[j] * (1 / (1 - p[i]) + 1 / (1 - p[j]))
                closed[i] += pair * p[i] * p[j] / (p[i] + p[j]) ** 2 * (L[i] - L[j])
    cos = closed @ exact / np.linalg.norm(closed) / np.linalg.norm(exact)
    assert cos < -0.3
    assert exact[0] < 0 < closed[0]


def test_binary_gate_with_cross_entropy_matches_hand_computation(tmp_path):
    # Nonlinear loss: dL/dg_l = grad_y L(y_active) . y_l (the first-order estimate).
    space = ToySpace(3)
    s = make_searcher(space, str(tmp_path))
    alpha = s.logits.params["choice"]
    alpha.d = np.array([0.3, -0.2, 0.1]).reshape(alpha.shape)
    x, y = toy_data(16, seed=4)
    W, b = space.head._W.d, space.head._b.d
    feats = [np.zeros_like(x), np.repeat(x.mean(axis=1, keepdims=True), x.shape[1], axis=1),
             x @ space.choice.ops[2]._W.d + space.choice.ops[2]._b.d]  # fmt: skip
    for i, j, active in [(2, 0, 2), (2, 1, 1), (0, 1, 0)]:
        gate_gradient(s, _split(s, x, y, 8), {"choice": (i, j, active)})
        logits = feats[active] @ W + b
        prob = np.exp(logits - logits.max(1, keepdims=True))
        prob /= prob.sum(1, keepdims=True)
        dlogits = (prob - np.eye(3)[y[:, 0]]) / len(x)
        dg = [float((dlogits * (feats[k] @ W)).sum()) for k in (i, j)]  # bias is gate-free
        want = pair_gradient(alpha.d, (i, j), np.array(dg))
        np.testing.assert_allclose(alpha.g, want, rtol=1e-4, atol=1e-6)


def test_gates_accumulate_over_mini_batches_and_shared_alphas(tmp_path):
    space = LinearLossSpace(3, seed=4, shared=True)
    s = make_searcher(space, str(tmp_path))
    alpha = s.logits.params["choice"]
    assert list(s.logits.parameters()) == ["choice/alpha"]  # one decision, one logit vector
    alpha.d = np.array([0.4, -0.1, 0.2]).reshape(alpha.shape)
    x, y = _batch(8)
    L = space.path_losses(x)  # includes both choices: gate gradients summed
    for mini in (8, 4, 2):
        gate_gradient(s, _split(s, x, y, mini), {"choice": (2, 0, 0)})
        want = pair_gradient(alpha.d, (2, 0), L[[2, 0]])
        np.testing.assert_allclose(alpha.g, want, rtol=1e-4, atol=1e-7)


def test_two_path_update_keeps_other_probabilities(tmp_path, monkeypatch):
    space = LinearLossSpace(5, seed=5)
    valid = {"solver": {"name": "Adam", "alpha": 0.3, "beta1": 0.9}, "weight_decay": 0.1}
    s = make_searcher(space, str(tmp_path), seed=3, valid=valid)
    alpha = s.logits.params["choice"]
    alpha.d = np.array([0.3, -0.7, 0.0, 1.1, -0.2]).reshape(alpha.shape)
    draws = _recording_gates(monkeypatch)
    x, y = _batch()
    for _ in range(8):
        old_logits, old_p = alpha.d.reshape(-1).copy(), softmax(alpha.d)
        s.arch_step(_split(s, x, y, 8), [])
        i, j, _ = draws[-1]
        new_p = softmax(alpha.d)
        others = [k for k in range(5) if k not in (i, j)]
        np.testing.assert_array_equal(alpha.d.reshape(-1)[others], old_logits[others])
        np.testing.assert_allclose(new_p[others], old_p[others], rtol=1e-5, atol=1e-7)
        assert abs(new_p.sum() - 1) < 1e-9
        np.testing.assert_allclose(new_p[[i, j]].sum(), old_p[[i, j]].sum(), rtol=1e-5)
        assert not np.allclose(new_p[[i, j]], old_p[[i, j]], rtol=0, atol=1e-5)


def test_gradient_step_moves_toward_the_lower_loss_path(tmp_path, monkeypatch):
    # Sgd on the logits: one pair's update is -lr * gradient (before the rescaling, which only
    # shifts the pair by a common offset): check the difference of the pair's logits.
    space = LinearLossSpace(3, seed=6)
    s = make_searcher(space, str(tmp_path), seed=4, valid={"solver": {"name": "Sgd", "lr": 0.5}})
    alpha = s.logits.params["choice"]
    draws = _recording_gates(monkeypatch)
    x, y = _batch()
    L = space.path_losses(x)
    before = alpha.d.reshape(-1).astype(np.float64)
    s.arch_step(_split(s, x, y, 8), [])
    i, j, _ = draws[-1]
    grad = pair_gradient(before, (i, j), L[[i, j]])
    after = alpha.d.reshape(-1)
    want = (before[i] - 0.5 * grad[i]) - (before[j] - 0.5 * grad[j])
    assert abs((after[i] - after[j]) - want) < 1e-5
    assert (after[i] - after[j] - before[i] + before[j]) * (L[j] - L[i]) > 0


# ------------------------------------------------------------------------------ REINFORCE


def test_reinforce_gradient_by_hand(tmp_path):
    space = ToySpace(0)
    s = make_searcher(space, str(tmp_path), estimator="reinforce")
    alpha = s.logits.params["choice"]
    alpha.d = np.log(np.array([1.0, 2.0, 1.0])).reshape(alpha.shape)  # p = [1/4, 1/2, 1/4]
    samples = [{"choice": 0}, {"choice": 2}, {"choice": 2}]
    grads = log_prob_gradient(s.logits.probabilities(), samples, [1.0, 0.5, 0.0], baseline=0.5)
    ((label, grad),) = grads.items()
    assert label == "choice"
    # -(1/3) [0.5 (e0 - p) + 0 (e2 - p) - 0.5 (e2 - p)] = -(1/6) (e0 - e2)
    np.testing.assert_allclose(grad, [-1 / 6, 0.0, 1 / 6], atol=1e-12)


def test_reinforce_gradient_matches_finite_differences():
    """Two independent decisions (a shared decision is one draw: one log-probability)."""
    probs = {"a": softmax(np.array([0.2, -0.5, 0.9])), "b": softmax(np.array([0.4, 0.0]))}
    a0 = {k: np.log(v) for k, v in probs.items()}
    samples = [{"a": 0, "b": 1}, {"a": 1, "b": 1}, {"a": 2, "b": 0}]
    rewards, b = [0.9, 0.2, 0.6], 0.45

    def objective(logits):
        logp = {k: v - np.log(np.exp(v).sum()) for k, v in logits.items()}
        return -np.mean([(r - b) * (logp["a"][sm["a"]] + logp["b"][sm["b"]])
                         for sm, r in zip(samples, rewards)])  # fmt: skip

    eps = 1e-6
    grads = log_prob_gradient(probs, samples, rewards, b)
    for label in ("a", "b"):
        fd = []
        for e in np.eye(len(a0[label])):
            plus = {**a0, label: a0[label] + eps * e}
            minus = {**a0, label: a0[label] - eps * e}
            fd.append((objective(plus) - objective(minus)) / (2 * eps))
        np.testing.assert_allclose(grads[label], fd, rtol=1e-6, atol=1e-9)


def test_reinforce_step_baseline_and_update(tmp_path):
    space = ToySpace(0)
    s = make_searcher(space, str(tmp_path), estimator="reinforce", num_samples=3,
                      baseline_decay=0.8, valid={"solver": {"name": "Sgd", "lr": 0.7}})  # fmt: skip
    factors = {0: 0.5, 1: 1.0, 2: 2.0}
    recorded = []

    def reward_factor(sample):
        recorded.append(dict(sample))
        return factors[sample["choice"]]

    s.reward_factor = reward_factor
    alpha = s.logits.params["choice"]
    xa, ya = toy_data(16, seed=1)
    batch = _split(s, xa, ya, 8)
    baseline = None
    for _ in range(3):
        recorded.clear()
        before = alpha.d.reshape(-1).astype(np.float64)
        metrics = s.arch_step(batch, [])
        # Rewards by hand: each recorded sample's accuracy on the batch (weights are unchanged by
        # the architecture step; the toy has no batch statistics) times its factor.
        rewards = []
        for sample in recorded:
            with use_architecture(s.model, sample):
                err = s.ctx.steps.accumulate(batch, cache=False, backward=False)["error"]
            rewards.append((1 - err) * factors[sample["choice"]])
        mean = float(np.mean(rewards))
        baseline = mean if baseline is None else 0.8 * baseline + 0.2 * mean
        assert metrics["reward"] == pytest.approx(mean)
        assert metrics["baseline"] == pytest.approx(baseline)
        p = softmax(before)
        grad = -np.mean([(r - baseline) * (np.eye(3)[sm["choice"]] - p)
                         for sm, r in zip(recorded, rewards)], axis=0)  # fmt: skip
        np.testing.assert_allclose(alpha.d.reshape(-1), before - 0.7 * grad, rtol=1e-5, atol=1e-6)
    assert len(recorded) == 3


# ------------------------------------------------------------------------------ search


@pytest.mark.parametrize("estimator", ["gradient", "reinforce"])
def test_search_finds_the_best_candidate(tmp_path, estimator):
    s = make_searcher(ToySpace(0), str(tmp_path), estimator=estimator, seed=0)
    for _ in range(100):
        for (x, y), (xa, ya) in zip(s.data.train, s.data.arch):
            batch = _split(s, x, y, 8)
            s.train_step(batch, "train")
            s.arch_step(_split(s, xa, ya, 8), batch)
        if s.logits.probabilities()["choice"][NAMES.index("linear")] > 0.8:
            break
    assert s.logits.probabilities()["choice"][NAMES.index("linear")] > 0.7
    assert s.model.genotype(s.export().architecture)["choice"] == "linear"


def test_zero_candidate_gate_gradient_by_hand(tmp_path):
    # A Zero candidate's output is a constant 0, so its gate gradient is exactly 0; with the
    # zero path active the logits are the head's bias.
    space = ToySpace(0)
    space.choice = MixedOp([Zero(), Linear(8, 8, rng=np.random.RandomState(0))],
                           names=["zero", "linear"])  # fmt: skip
    s = make_searcher(space, str(tmp_path))
    alpha = s.logits.params["choice"]
    x, y = toy_data(8, seed=0)
    gate_gradient(s, _split(s, x, y, 4), {"choice": (0, 1, 0)})
    lin, W, b = space.choice.ops[1], space.head._W.d, space.head._b.d
    prob = np.exp(b - b.max()) / np.exp(b - b.max()).sum()
    dlogits = (prob[None, :] - np.eye(3)[y[:, 0]]) / len(x)
    d = float((dlogits * ((x @ lin._W.d + lin._b.d) @ W)).sum())
    want = pair_gradient(alpha.d, (0, 1), np.array([0.0, d]))  # = (-d/4, d/4)
    np.testing.assert_allclose(alpha.g, want, rtol=1e-4, atol=1e-7)
    assert want.reshape(-1)[1] == pytest.approx(d / 4)


def test_pair_sampling_when_one_probability_is_one(tmp_path):
    s = make_searcher(ToySpace(0), str(tmp_path), seed=0)
    p = softmax(np.array([0.0, 800.0, 0.0]))  # exactly [0, 1, 0] in float64
    for _ in range(20):
        i, j, active = sample_pair(p, s.rng)
        assert i == 1 and j in (0, 2) and active == 1

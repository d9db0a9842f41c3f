"""The ENAS controller: REINFORCE on a toy reward, the loss terms against finite differences and
in their documented directions, independent and reproducible sampling, the tanh bound."""

from __future__ import annotations

from collections import OrderedDict

import nnabla as nn
import nnabla.solvers as S
import numpy as np
import pytest

from nnabla_nas.contrib.decisions import Decision, describe_decisions
from nnabla_nas.contrib.enas.macro import macro_decisions
from nnabla_nas.contrib.enas.micro_cell import micro_decisions
from nnabla_nas.contrib.mobilenet import MobileNetConfig, MobileNetSpace
from nnabla_nas.errors import ConfigError
from nnabla_nas.module import use_architecture
from nnabla_nas.runner.searcher.enas_controller import EnasController, EnasControllerConfig
from nnabla_nas.runner.searcher.reinforce import MovingAverageBaseline


def controller(decisions, seed=0, **kw):
    return EnasController(decisions, EnasControllerConfig(**kw), np.random.RandomState(seed))


def params_vector(ctrl):
    return {k: p.d.copy() for k, p in ctrl.get_parameters().items()}


def gradients(ctrl, sample, reward=0.0, baseline=0.0):
    for p in ctrl.get_parameters().values():
        p.grad.zero()
    ctrl.loss(sample, reward, baseline).backward()
    return {k: p.g.copy() for k, p in ctrl.get_parameters().items()}


# a toy space: three layers of six operations and their skip connections; the reward counts
# the decisions equal to TARGET: operation 3 everywhere, the skips from layer 1 only
TOY = macro_decisions(3)
TARGET = OrderedDict(
    [("layer1/op", 3), ("layer2/op", 3), ("layer2/skip0", 0), ("layer3/op", 3),
     ("layer3/skip0", 0), ("layer3/skip1", 1)]
)  # fmt: skip


def test_reinforce_moves_the_probabilities_to_the_rewarded_architecture():
    # the paper's temperature and tanh constant; no bonus nor penalty (pure REINFORCE); a
    # wider initialisation than the paper's, so that a few hundred steps suffice
    ctrl = controller(TOY, lstm_size=16, init_range=1.0, entropy_weight=0.0, skip_weight=0.0)
    solver = S.Adam(alpha=0.03)
    solver.set_parameters(ctrl.get_parameters())
    baseline = MovingAverageBaseline(0.9)
    rng = np.random.RandomState(100)
    before = ctrl.score(TARGET).probabilities
    rewards = []
    for _ in range(200):
        sample = ctrl.sample(rng)
        reward = np.mean([sample.architecture[k] == v for k, v in TARGET.items()])
        b = baseline.update(reward)
        solver.zero_grad()
        ctrl.loss(sample, reward, b).backward()
        solver.update()
        rewards.append(reward)
    after = ctrl.score(TARGET).probabilities
    assert np.mean([before[k][v] for k, v in TARGET.items()]) < 0.5
    for label, index in TARGET.items():  # the tanh constant caps a skip at sigmoid(2.5) = 0.92
        assert after[label][index] > 0.85, (label, after[label])
    assert np.mean(rewards[-50:]) > 0.8 > 0.6 > np.mean(rewards[:50])


def _loss_at(ctrl, arch, values, reward, baseline):
    for k, p in ctrl.get_parameters().items():
        p.d = values[k]
    return float(ctrl.loss(ctrl.score(arch), reward, baseline).d)


@pytest.mark.parametrize("seed", [0, 1])
def test_loss_gradient_matches_finite_differences(seed):
    # every kind of decision: inputs among earlier nodes, operations, skip connections
    decisions = micro_decisions("normal", 2) + macro_decisions(3)
    ctrl = controller(decisions, seed, lstm_size=6, init_range=0.5, entropy_weight=0.3)
    arch = ctrl.sample(np.random.RandomState(seed)).architecture
    reward, baseline = 0.7, 0.2
    theta = params_vector(ctrl)
    grads = gradients(ctrl, ctrl.score(arch), reward, baseline)
    rng = np.random.RandomState(seed + 10)
    eps = 1e-2
    for key in theta:
        direction = rng.normal(size=theta[key].shape).astype(np.float32)
        plus = {**theta, key: theta[key] + eps * direction}
        minus = {**theta, key: theta[key] - eps * direction}
        numeric = (
            _loss_at(ctrl, arch, plus, reward, baseline)
            - _loss_at(ctrl, arch, minus, reward, baseline)
        ) / (2 * eps)
        analytic = float((grads[key] * direction).sum())
        assert abs(numeric - analytic) <= 2e-3 + 2e-2 * abs(analytic), key
    assert any(np.abs(g).sum() > 0 for g in grads.values())


def test_entropy_bonus_pushes_towards_higher_entropy():
    decisions = macro_decisions(3)
    kw = dict(lstm_size=8, init_range=1.0, skip_weight=0.0, temperature=None, tanh_constant=None)
    base = controller(decisions, entropy_weight=0.0, **kw)
    bonus = controller(decisions, entropy_weight=0.5, **kw)
    arch = base.sample(np.random.RandomState(3)).architecture
    g0 = gradients(base, base.score(arch), 1.0, 0.4)
    g1 = gradients(bonus, bonus.score(arch), 1.0, 0.4)
    # the bonus adds exactly -0.5 * grad(entropy) to the gradient ...
    entropy_grad = {k: (g0[k] - g1[k]) / 0.5 for k in g0}
    before = float(bonus.score(arch).entropy.d)
    # ... so a descent step along it raises the entropy, by about lr * |grad H|^2
    lr = 1e-2
    for k, p in bonus.get_parameters().items():
        p.d = p.d + lr * entropy_grad[k]
    after = float(bonus.score(arch).entropy.d)
    squared = sum(float((g * g).sum()) for g in entropy_grad.values())
    assert squared > 0.01 and after > before
    assert after - before == pytest.approx(lr * squared, rel=0.1)


def test_skip_penalty_pulls_the_skip_probabilities_to_the_target():
    decisions = macro_decisions(4)
    skips = [d.label for d in decisions if d.kind == "skip"]
    for target in (0.1, 0.9):
        ctrl = controller(
            decisions, lstm_size=8, init_range=0.5, entropy_weight=0.0, skip_target=target,
            temperature=None, tanh_constant=None,
        )  # fmt: skip
        arch = ctrl.sample(np.random.RandomState(0)).architecture

        def mean_skip_prob(ctrl=ctrl, arch=arch):
            probs = ctrl.score(arch).probabilities
            return np.mean([probs[k][1] for k in skips])

        start = mean_skip_prob()
        assert 0.3 < start < 0.7
        solver = S.Adam(alpha=0.05)
        solver.set_parameters(ctrl.get_parameters())
        for _ in range(20):  # zero advantage: only the penalty moves the controller
            solver.zero_grad()
            ctrl.loss(ctrl.score(arch), 0.5, 0.5).backward()
            solver.update()
        end = mean_skip_prob()
        assert abs(end - target) < 0.5 * abs(start - target), (target, start, end)


def test_log_prob_entropy_and_penalty_by_hand():
    ctrl = controller(TOY, lstm_size=8, init_range=0.5, skip_target=0.3)
    sample = ctrl.sample(np.random.RandomState(5))
    probs, arch = sample.probabilities, sample.architecture
    assert float(sample.log_prob.d) == pytest.approx(
        sum(np.log(probs[k][i]) for k, i in arch.items()), rel=1e-5
    )
    assert float(sample.entropy.d) == pytest.approx(
        sum(-(p * np.log(p)).sum() for p in probs.values()), rel=1e-5
    )
    skips = [d.label for d in TOY if d.kind == "skip"]
    kl = [
        probs[k][1] * np.log(probs[k][1] / 0.3) + probs[k][0] * np.log(probs[k][0] / 0.7)
        for k in skips
    ]
    assert float(sample.skip_penalty.d) == pytest.approx(np.mean(kl), rel=1e-4)
    assert sample.skip_count == sum(arch[k] for k in skips)
    assert sample.skip_rate == sample.skip_count / 3
    again = ctrl.score(arch)  # the same architecture scored: the same numbers
    assert float(again.log_prob.d) == pytest.approx(float(sample.log_prob.d), rel=1e-6)


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _softmax(u):
    e = np.exp(u - u.max())
    return e / e.sum()


def numpy_controller(ctrl, decisions, arch):
    """The probabilities of every decision along ``arch``, computed as the module docstring
    describes, in numpy from the controller's parameters."""
    cfg, prm = ctrl.cfg, {k: p.d.astype(np.float64) for k, p in ctrl.get_parameters().items()}
    size = cfg.lstm_size
    state = [(np.zeros(size), np.zeros(size)) for _ in range(cfg.lstm_layers)]
    heads = list(dict.fromkeys(d.names for d in decisions if d.kind == "op"))
    sources = {s for d in decisions for s in d.sources}

    def lstm(x):
        for layer in range(cfg.lstm_layers):
            h, c = state[layer]
            i, f, o, g = (np.concatenate([x, h]) @ prm[f"lstm/{layer}/w"]).reshape(4, size)
            c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
            x = _sigmoid(o) * np.tanh(c)
            state[layer] = (x, c)
        return x

    def scale(u, op):
        u = np.tanh(u / cfg.temperature)
        return cfg.tanh_constant / (cfg.op_tanh_reduce if op else 1.0) * u

    anchors, probs, x, i = {}, {}, prm["g_emb"][0], 0
    while i < len(decisions):
        d = decisions[i]
        run = [d]  # consecutive skips of a node: one step
        while d.kind == "skip" and i + len(run) < len(decisions):
            nxt = decisions[i + len(run)]
            if nxt.kind != "skip" or nxt.node != d.node:
                break
            run.append(nxt)
        for src in dict.fromkeys(s for r in run for s in r.sources):
            if src not in anchors:
                h = lstm(prm["g_emb"][0])
                anchors[src] = (h, h @ prm["w_attn1"])
        h = lstm(x)
        if d.kind == "op":
            head = heads.index(d.names)
            probs[d.label] = _softmax(scale(h @ prm[f"heads/{head}/w_soft"], True))
            x = prm[f"heads/{head}/w_emb"][arch[d.label]]
        elif d.kind == "input":
            u = [
                np.tanh(anchors[s][1] + h @ prm["w_attn2"]) @ prm["v_attn"][:, 0] for s in d.sources
            ]
            probs[d.label] = _softmax(scale(np.array(u), False))
            x = anchors[d.sources[arch[d.label]]][0]
        else:
            chosen = []
            for r in run:
                key = anchors[r.sources[0]][1]
                u = np.tanh(key + h @ prm["w_attn2"]) @ prm["v_attn"][:, 0]
                probs[r.label] = _softmax(scale(np.array([0.0, u]), False))
                if arch[r.label]:
                    chosen.append(anchors[r.sources[0]][0])
            x = sum(chosen) / (1 + len(chosen)) if chosen else np.zeros(size)
        i += len(run)
        if (i == len(decisions) or decisions[i].node != d.node) and d.node in sources:
            h = lstm(x)
            anchors[d.node] = (h, h @ prm["w_attn1"])
            x = prm["g_emb"][0]
    return probs


def test_probabilities_follow_the_documented_algorithm():
    blocks = [Decision(f"block{i}", "op", ("MB3", "MB6")) for i in range(2)]
    decisions = blocks[:1] + macro_decisions(3) + micro_decisions("normal", 2) + blocks[1:]
    ctrl = controller(decisions, lstm_size=6, lstm_layers=2, init_range=1.0, op_tanh_reduce=2.0)
    for seed in range(3):
        sample = ctrl.sample(np.random.RandomState(seed))
        want = numpy_controller(ctrl, decisions, sample.architecture)
        assert list(want) == list(sample.probabilities)
        for label, p in sample.probabilities.items():
            assert np.allclose(p, want[label], atol=1e-5), label


def test_tanh_constant_bounds_the_probabilities():
    decisions = [Decision(f"op{i}", "op", ("a", "b", "c", "d")) for i in range(3)]
    ctrl = controller(decisions, lstm_size=8, init_range=30.0, temperature=None, tanh_constant=1.0)
    bound = np.e / (np.e + 3 * np.exp(-1.0))  # logits in [-1, 1]
    rng = np.random.RandomState(0)
    top = max(max(p.max() for p in ctrl.sample(rng).probabilities.values()) for _ in range(20))
    assert top <= bound + 1e-6 and top > 0.5  # large weights saturate the tanh
    free = controller(decisions, lstm_size=8, init_range=30.0, temperature=None, tanh_constant=None)
    assert max(p.max() for p in free.sample(rng).probabilities.values()) > bound


def _uniform(decisions):
    ctrl = controller(decisions, lstm_size=8)
    for k, p in ctrl.get_parameters().items():
        if k.endswith("w_soft") or k == "v_attn":
            p.d = 0.0  # every logit 0 whatever the LSTM state
    return ctrl


def test_sampling_is_independent_across_decisions():
    decisions = macro_decisions(3)
    ctrl = _uniform(decisions)
    rng = np.random.RandomState(0)
    n = 300
    archs = [ctrl.sample(rng).architecture for _ in range(n)]

    def bound(p):  # 4 standard deviations of a rate over n draws
        return 4 * np.sqrt(p * (1 - p) / n)

    same_op = np.mean([a["layer1/op"] == a["layer2/op"] for a in archs])
    assert abs(same_op - 1 / 6) < bound(1 / 6)
    same_op = np.mean([a["layer2/op"] == a["layer3/op"] for a in archs])
    assert abs(same_op - 1 / 6) < bound(1 / 6)
    same_skip = np.mean([a["layer3/skip0"] == a["layer3/skip1"] for a in archs])
    assert abs(same_skip - 1 / 2) < bound(1 / 2)
    for label in ("layer1/op", "layer3/op"):
        freq = np.bincount([a[label] for a in archs], minlength=6) / n
        assert np.all(np.abs(freq - 1 / 6) < bound(1 / 6))


def test_sampling_is_reproducible_and_resumable():
    decisions = micro_decisions("normal", 3) + micro_decisions("reduce", 3)
    ctrl = controller(decisions, lstm_size=8, init_range=1.0)
    first = [ctrl.sample(np.random.RandomState(7)) for _ in range(2)]
    assert first[0].architecture == first[1].architecture
    rng = np.random.RandomState(7)
    draws = [ctrl.sample(rng).architecture for _ in range(3)]
    assert draws[0] == first[0].architecture and len({tuple(a.values()) for a in draws}) == 3
    state = rng.get_state()  # what a checkpoint keeps
    later = [ctrl.sample(rng).architecture for _ in range(2)]
    resumed = np.random.RandomState(123)
    resumed.set_state(state)
    assert [ctrl.sample(resumed).architecture for _ in range(2)] == later
    other = controller(decisions, lstm_size=8, init_range=1.0)  # same init seed: same numbers
    assert other.sample(np.random.RandomState(7)).architecture == first[0].architecture


def test_any_space_with_choices_mobilenet_is_a_plain_sequence():
    cfg = MobileNetConfig(
        num_classes=10, settings=[[16, 1, 2], [24, 2, 2]], candidates=["MB3 3x3", "MB6 5x5"],
        width_mult=0.25, in_channels=1,
    )  # fmt: skip
    model = MobileNetSpace(cfg)
    ctrl = EnasController.for_model(model, EnasControllerConfig(lstm_size=8))
    assert all(d.kind == "op" for d in describe_decisions(model))
    assert "v_attn" not in ctrl.get_parameters()  # no attention without input/skip choices
    sample = ctrl.sample(np.random.RandomState(0))
    assert list(sample.architecture) == list(model.choices())
    assert sample.skip_count == 0 and float(sample.skip_penalty.d) == 0.0
    with use_architecture(model, sample.architecture):
        out = model(nn.Variable.from_numpy_array(np.zeros((1, 1, 16, 16), np.float32)))
    out.forward()
    assert out.shape == (1, 10)


def test_baseline_is_a_moving_average():
    b = MovingAverageBaseline(0.9)
    assert b.update(1.0) == 1.0  # starts at the first reward
    assert b.update(0.0) == pytest.approx(0.9)
    again = MovingAverageBaseline(0.9)
    again.load_state_dict(b.state_dict())
    assert again.update(0.5) == b.update(0.5) == pytest.approx(0.9 * 0.9 + 0.05)


@pytest.mark.parametrize(
    "keys, key",
    [
        (dict(lstm_size=0), "lstm_size"),
        (dict(temperature=0.0), "temperature"),
        (dict(skip_target=1.0), "skip_target"),
        (dict(entropy_weight=-1.0), "entropy_weight"),
        (dict(baseline_decay=1.0), "baseline_decay"),
    ],
)
def test_bad_constants_name_the_key(keys, key):
    with pytest.raises(ConfigError) as err:
        EnasController(TOY, EnasControllerConfig(**keys))
    assert err.value.key == key


def test_decisions_a_controller_cannot_follow_are_refused():
    with pytest.raises(ValueError, match="before that node's decisions are complete"):
        EnasController([
            Decision("a/in", "input", ("x", "b"), "a", ("x", "b")),
            Decision("b/op", "op", ("p", "q"), "b"),
        ])  # fmt: skip
    with pytest.raises(ValueError, match="not consecutive"):
        EnasController([
            Decision("a/op", "op", ("p",), "a"), Decision("b/op", "op", ("p",), "b"),
            Decision("a/op2", "op", ("p",), "a"),
        ])  # fmt: skip

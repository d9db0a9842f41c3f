"""MixedOp: the three default rules, shared alphas, custom rules, parameter partition."""

from __future__ import annotations

import nnabla as nn
import nnabla.functions as F
import numpy as np
import pytest

from nnabla_nas.errors import ConfigError
from nnabla_nas.module import (
    Conv,
    Identity,
    Lambda,
    MixedOp,
    Module,
    ModuleList,
    Parameter,
    Zero,
    arch_parameters,
    full_rule,
    net_parameters,
)


def _np_softmax(a):
    e = np.exp(a - a.max())
    return e / e.sum()


def _scale(k: float) -> Lambda:
    return Lambda(lambda x: F.mul_scalar(x, k))


def _square() -> Lambda:
    return Lambda(lambda x: F.mul2(x, x))


def _alpha(values) -> Parameter:
    values = np.asarray(values, dtype=np.float32)
    return Parameter((len(values), 1, 1, 1, 1), initializer=values.reshape(-1, 1, 1, 1, 1))


def _softmax_jacobian_grad(weights, sums):
    """d/d alpha_j of sum_i w_i s_i with w = softmax(alpha): w_j (s_j - sum_i w_i s_i)."""
    return weights * (sums - np.dot(weights, sums))


@pytest.mark.parametrize("shape", [(2, 3, 4, 4), (2, 5)])
def test_full_is_the_softmax_weighted_sum_with_exact_gradients(rng, shape):
    alpha_values = np.array([0.3, -1.2, 0.8, 0.1])
    op = MixedOp([Identity(), _square(), _scale(3.0), Zero()], alpha=_alpha(alpha_values))
    x_np = rng.randn(*shape).astype(np.float32)
    g_np = rng.randn(*shape).astype(np.float32)
    x = nn.Variable.from_numpy_array(x_np, need_grad=True)
    y = op(x)
    loss = F.sum(F.mul2(y, nn.Variable.from_numpy_array(g_np)))
    op.alpha.grad.zero()
    x.grad.zero()
    loss.forward()
    loss.backward()

    w = _np_softmax(alpha_values)
    outs = [x_np, x_np * x_np, 3 * x_np, np.zeros_like(x_np)]
    np.testing.assert_allclose(y.d, sum(wi * o for wi, o in zip(w, outs)), rtol=1e-5, atol=1e-6)
    sums = np.array([np.sum(g_np * o) for o in outs])
    np.testing.assert_allclose(
        op.alpha.g.ravel(), _softmax_jacobian_grad(w, sums), rtol=1e-4, atol=1e-5
    )
    np.testing.assert_allclose(x.g, g_np * (w[0] + 2 * x_np * w[1] + 3 * w[2]), rtol=1e-4)
    assert op.active_index is None


def test_a_choice_holds_no_logits_unless_a_ported_space_declares_them():
    op = MixedOp([Identity(), Identity(), Identity()])
    assert op.alpha is None and not op.get_parameters()  # the searcher owns the logits
    np.testing.assert_allclose(op.probabilities(), [1 / 3] * 3)  # default rules: uniform
    declared = MixedOp([Identity(), Identity(), Identity()], alpha=Parameter((3, 1, 1, 1, 1)))
    assert list(declared.get_parameters()) == ["alpha"]
    declared.alpha.d = np.array([1.0, 2.0, 3.0]).reshape(3, 1, 1, 1, 1)
    np.testing.assert_allclose(declared.probabilities(), _np_softmax(np.array([1.0, 2.0, 3.0])))
    assert op.names == ["Identity"] * 3


def test_sample_frequencies_follow_softmax_alpha():
    alpha_values = np.array([2.0, 0.0, -1.0, 1.0])
    op = MixedOp(
        [Identity() for _ in range(4)],
        mode="sample",
        alpha=_alpha(alpha_values),
        rng=np.random.RandomState(0),
    )
    x = nn.Variable((1, 1))
    draws = 3000
    counts = np.zeros(4)
    for _ in range(draws):
        assert op(x) is x
        counts[op.active_index] += 1
    expected = draws * _np_softmax(alpha_values)
    chi2 = np.sum((counts - expected) ** 2 / expected)
    assert chi2 < 16.27  # the 0.999 quantile of chi-square with 3 degrees of freedom


def test_sample_runs_only_the_drawn_path_and_is_reproducible(rng):
    def run(seed):
        op = MixedOp([_scale(k) for k in (1.0, 2.0, 3.0)], mode="sample")
        op.rng = np.random.RandomState(seed)
        x = nn.Variable.from_numpy_array(rng.randn(2, 3))
        picked = []
        for _ in range(10):
            y = op(x)
            y.forward()
            np.testing.assert_allclose(y.d, (op.active_index + 1) * x.d, rtol=1e-6)
            picked.append(op.active_index)
        return picked

    first = run(5)
    assert first == run(5) and len(set(first)) > 1


def test_max_runs_only_the_argmax():
    calls = []

    def tracked(k):
        return Lambda(lambda x: calls.append(k) or F.mul_scalar(x, float(k)))

    op = MixedOp([tracked(0), tracked(1), tracked(2)], mode="max", alpha=_alpha([0.1, 2.0, -1.0]))
    x = nn.Variable.from_numpy_array(np.ones((1, 2)))
    y = op(x)
    y.forward()
    assert calls == [1] and op.active_index == 1
    np.testing.assert_array_equal(y.d, [[1.0, 1.0]])
    op.apply(mode="full")
    op(x)
    assert calls == [1, 0, 1, 2]


def test_shared_alpha_is_one_parameter(rng):
    alpha = _alpha([0.5, -0.5])

    class Cell(Module):
        def __init__(self):
            self.edges = ModuleList(
                [MixedOp([Identity(), _square()], alpha=alpha) for _ in range(2)]
            )

        def call(self, x):
            return F.add2(self.edges[0](x), self.edges[1](F.mul_scalar(x, 2.0)))

    cell = Cell()
    assert cell.edges[0].alpha is cell.edges[1].alpha is alpha
    assert list(cell.get_parameters()) == ["edges/0/alpha"]
    assert list(arch_parameters(cell)) == ["edges/0/alpha"] and net_parameters(cell) == {}
    # its gradient is the sum of both uses
    x_np = rng.randn(2, 3).astype(np.float32)
    loss = F.sum(cell(nn.Variable.from_numpy_array(x_np)))
    alpha.grad.zero()
    loss.forward()
    loss.backward()
    w = _np_softmax(np.array([0.5, -0.5]))
    sums = np.array([np.sum(x_np) + np.sum(2 * x_np), np.sum(x_np**2) + np.sum(4 * x_np**2)])
    np.testing.assert_allclose(alpha.g.ravel(), _softmax_jacobian_grad(w, sums), rtol=1e-4)


def test_custom_rule_replaces_the_forward_and_is_not_registered():
    op = MixedOp([_scale(1.0), _scale(2.0)])
    seen = []

    def rule(mixed, x):
        seen.append(mixed)
        mixed.active_index = 1
        return F.mul_scalar(mixed.ops[1](x), 10.0)

    op.rule = rule
    x = nn.Variable.from_numpy_array(np.ones((1, 2)))
    y = op(x)
    y.forward()
    np.testing.assert_array_equal(y.d, [[20.0, 20.0]])
    assert seen == [op] and op.active_index == 1
    op.rule = Lambda(lambda mixed, v: v)  # even a Module as rule is not registered
    assert op(x) is x
    assert "rule" not in op.modules and [p for p, _ in op.get_modules()] == [
        "",
        "ops",
        "ops/0",
        "ops/1",
    ]
    op.rule = None
    y = op(x)
    y.forward()
    np.testing.assert_allclose(y.d, [[1.5, 1.5]], rtol=1e-6)  # default full rule again
    op.rule = lambda mixed, v: full_rule(mixed, v)  # the default rules are reusable
    y = op(x)
    y.forward()
    np.testing.assert_allclose(y.d, [[1.5, 1.5]], rtol=1e-6)


def test_arch_and_net_parameters_split_by_ownership():
    class Space(Module):
        def __init__(self):
            self.stem = Conv(2, 2, 1, rng=np.random.RandomState(0))
            self.choice = MixedOp([Conv(2, 2, 1), Identity()], alpha=Parameter((2, 1, 1, 1, 1)))
            self.alpha = Parameter((2,))  # named alpha, but a weight: not a MixedOp's alpha

    space = Space()
    arch = arch_parameters(space)
    net = net_parameters(space)
    assert list(arch) == ["choice/alpha"]
    assert list(net) == ["alpha", "stem/_W", "stem/_b", "choice/ops/0/_W", "choice/ops/0/_b"]
    assert set(arch) | set(net) == set(space.get_parameters())
    space.choice.alpha.need_grad = False
    space.stem._b.need_grad = False
    assert arch_parameters(space, grad_only=True) == {}
    assert "stem/_b" not in net_parameters(space, grad_only=True)


def test_mixedop_refuses_bad_arguments():
    with pytest.raises(ConfigError, match="mode: unknown MixedOp mode 'best'.*'full'"):
        MixedOp([Identity()], mode="best")
    with pytest.raises(ValueError, match=r"shape \(2, 1, 1, 1, 1\)"):
        MixedOp([Identity(), Identity()], alpha=Parameter((3, 1, 1, 1, 1)))
    with pytest.raises(ValueError, match="2 candidates but 1 names"):
        MixedOp([Identity(), Identity()], names=["a"])
    with pytest.raises(ValueError, match="different output shapes"):
        MixedOp([Identity(), Zero((2, 2))])(nn.Variable((1, 1, 4, 4)))
    op = MixedOp([Identity()], names=["skip"])
    with pytest.raises(ConfigError):
        op.mode = "nope"
    assert "mode='full', names=['skip']" in repr(op)


def test_choice_groups_join_shared_labels_and_use_architecture_runs_the_given_candidates():
    from nnabla_nas.module import Identity, Lambda, Module, choice_groups, use_architecture

    class Net(Module):
        def __init__(self):
            self.a = MixedOp([Identity(), Lambda(lambda v: v * 3)], label="shared")
            self.b = MixedOp([Identity(), Lambda(lambda v: v * 3)], label="shared")
            self.c = MixedOp([Identity(), Lambda(lambda v: v * 2)])

        def call(self, x):
            return self.c(self.a(x) + self.b(x))

    net = Net()
    groups = choice_groups(net)
    assert list(groups) == ["shared", "c"]
    assert groups["shared"] == [net.a, net.b] and groups["c"] == [net.c]
    x = nn.Variable.from_numpy_array(np.ones((1, 2), dtype=np.float32))
    for arch, expected in (({"shared": 0, "c": 0}, 2.0), ({"shared": 1, "c": 1}, 12.0),
                           ({"shared": 1, "c": 0}, 6.0)):  # fmt: skip
        with use_architecture(net, arch):
            y = net(x)
        y.forward()
        np.testing.assert_allclose(y.d, expected)
        assert net.a.rule is None and net.c.rule is None  # restored
    with pytest.raises(KeyError, match="'c'"):
        with use_architecture(net, {"shared": 0}):
            pass
    with pytest.raises(ValueError, match="label"):
        MixedOp([Identity()], label="")

"""The parts of the original NNabla NAS module API that ported spaces use (issue 11, item 7):
``+=`` on ``ModuleList``/``ParameterList``, ``LeakyReLU(alpha, inplace)`` and ``input_shapes``."""

from __future__ import annotations

import nnabla as nn
import nnabla.functions as F
import numpy as np
import pytest

from nnabla_nas.module import (
    Conv,
    GlobalAvgPool,
    LeakyReLU,
    Linear,
    Merging,
    Module,
    ModuleList,
    Parameter,
    ParameterList,
    ReLU,
    Sequential,
)


def _var(array: np.ndarray) -> nn.Variable:
    return nn.Variable.from_numpy_array(np.asarray(array, dtype=np.float32))


class _Stack(Module):
    """A space written as the original's users write them: ``self.layers += [...]``."""

    def __init__(self, rng: np.random.RandomState) -> None:
        self.layers = ModuleList([Linear(3, 4, rng=rng)])
        self.head = Linear(4, 2, rng=rng)
        self.layers += [LeakyReLU(0.2), Linear(4, 4, rng=rng)]
        self.scales = ParameterList([Parameter((1, 4), initializer=np.full((1, 4), 2.0))])
        self.scales += [Parameter((1, 4), initializer=np.full((1, 4), 0.5))]

    def call(self, x: nn.Variable) -> nn.Variable:
        for layer in self.layers:
            x = layer(x)
        for scale in self.scales:
            x = F.mul2(x, scale)
        return self.head(x)


def test_plus_equals_extends_in_place_and_keeps_the_registration_order():
    net = _Stack(np.random.RandomState(0))
    layers = net.layers
    net.layers += [ReLU()]
    assert net.layers is layers and len(layers) == 4
    # the re-assignment by ``+=`` keeps ``layers`` where it was registered, before ``head``
    assert list(net.modules) == ["layers", "head", "scales"]
    assert list(net.get_parameters()) == [
        "layers/0/_W", "layers/0/_b", "layers/2/_W", "layers/2/_b",
        "head/_W", "head/_b", "scales/0", "scales/1",
    ]  # fmt: skip
    assert isinstance(net.scales, ParameterList) and len(net.scales) == 2
    with pytest.raises(TypeError, match="Modules only"):
        net.layers += [3]
    with pytest.raises(TypeError, match="Parameters only"):
        net.scales += [nn.Variable((1, 4))]


def test_a_net_built_with_plus_equals_computes_the_functions_on_its_weights():
    net = _Stack(np.random.RandomState(0))
    x_np = np.random.RandomState(1).randn(5, 3).astype(np.float32)
    y = net(_var(x_np))
    y.forward()
    p = {k: v.d for k, v in net.get_parameters().items()}
    h = x_np @ p["layers/0/_W"] + p["layers/0/_b"]
    h = np.where(h > 0, h, 0.2 * h) @ p["layers/2/_W"] + p["layers/2/_b"]
    h = h * 2.0 * 0.5
    np.testing.assert_allclose(y.d, h @ p["head/_W"] + p["head/_b"], rtol=1e-5, atol=1e-6)


def test_module_list_extend_equals_plus_equals():
    a, b = ReLU(), LeakyReLU()
    assert list(ModuleList([a]).extend([b])) == list(_plus(ModuleList([a]), [b])) == [a, b]
    p0, p1 = Parameter((1,)), Parameter((2,))
    assert list(_plus(ParameterList([p0]), (p for p in [p1]))) == [p0, p1]


def _plus(container, items):
    container += items
    return container


@pytest.mark.parametrize("inplace", [False, True])
def test_leaky_relu_inplace_gives_the_function_values_and_gradient(inplace):
    x_np = np.random.RandomState(2).randn(3, 4).astype(np.float32) * 3
    x = _var(x_np)
    x.need_grad = True
    # an identity in front: the in-place layer overwrites that buffer, not the input's
    y = F.mul_scalar(LeakyReLU(0.3, inplace=inplace)(F.identity(x)), 2.0)
    x.grad.zero()
    y.forward()
    y.backward(np.ones(y.shape, dtype=np.float32))
    np.testing.assert_allclose(y.d, 2 * np.where(x_np > 0, x_np, 0.3 * x_np), rtol=1e-6)
    np.testing.assert_allclose(x.g, np.where(x_np > 0, 2.0, 0.6), rtol=1e-6)
    assert repr(LeakyReLU(0.3, inplace=True)) == "LeakyReLU(alpha=0.3, inplace=True)"
    assert repr(LeakyReLU(0.3)) == "LeakyReLU(alpha=0.3)"


def test_input_shapes_are_those_of_the_last_call():
    conv = Conv(2, 3, (3, 3), pad=(1, 1))
    seq = Sequential(conv, GlobalAvgPool())
    with pytest.raises(RuntimeError, match="call the module first"):
        _ = conv.input_shapes
    seq(nn.Variable((4, 2, 8, 8)))
    assert seq.input_shapes == [(4, 2, 8, 8)]
    assert seq[1].input_shapes == [(4, 3, 8, 8)]  # what the child saw, not the parent
    seq(nn.Variable((1, 2, 5, 6)))
    assert conv.input_shapes == [(1, 2, 5, 6)]
    merge = Merging("concat", axis=1)
    merge(nn.Variable((2, 3, 4, 4)), nn.Variable((2, 5, 4, 4)))
    assert merge.input_shapes == [(2, 3, 4, 4), (2, 5, 4, 4)]
    shapes = merge.input_shapes
    shapes.append(None)  # a copy: the module's record is not changed through it
    assert len(merge.input_shapes) == 2

"""FlopsEstimator, ParamsEstimator and MemoryEstimator against hand-computed values."""

from __future__ import annotations

import nnabla as nn
import nnabla.functions as F
import numpy as np
import pytest

from nnabla_nas.estimator import FlopsEstimator, MemoryEstimator, ParamsEstimator, trace
from nnabla_nas.estimator.flops import layer_macs, layer_params
from nnabla_nas.estimator.memory import peak_activation_bytes
from nnabla_nas.module import (
    AvgPool,
    BatchNormalization,
    Conv,
    DwConv,
    GlobalAvgPool,
    Identity,
    Linear,
    MaxPool,
    MixedOp,
    Module,
    Parameter,
    ReLU,
    Sequential,
    softmax,
)
from tests.arch import random_logits

from .toy import argmax, distribution


def _layers(module, shape, batch=2):
    return trace(module, shape, batch).layers


@pytest.mark.parametrize(
    "module, shape, macs, params",
    [
        # out 2*4*8*8 = 512 values, each 3*3*3 MACs; weights 4*3*3*3 + 4 bias
        (Conv(3, 4, 3, pad=1), (3, 8, 8), 512 * 27, 4 * 27 + 4),
        # stride 2, no bias: out 2*6*4*4 = 192, each 2*5*5 MACs
        (Conv(2, 6, 5, pad=2, stride=2, with_bias=False), (2, 8, 8), 192 * 50, 6 * 2 * 25),
        # groups: each output sees 4 / 2 input channels
        (Conv(4, 6, 3, pad=1, group=2), (4, 6, 6), 2 * 6 * 36 * 2 * 9, 6 * 2 * 9 + 6),
        # depthwise, multiplier 2: out 2*8*8*8 = 1024, each 3*3 MACs; weights 8*3*3 + 8
        (DwConv(4, 3, pad=1, multiplier=2), (4, 8, 8), 1024 * 9, 8 * 9 + 8),
        # affine: 2 examples * 5 outputs * 16 inputs; weights 16*5 + 5
        (Linear(16, 5), (16,), 2 * 5 * 16, 16 * 5 + 5),
        # batch norm (inference, folded): one MAC per value; beta and gamma learnable
        (BatchNormalization(4, 4), (4, 8, 8), 512, 8),
        # pooling: one op per window cell
        (MaxPool(2), (4, 8, 8), 2 * 4 * 16 * 4, 0),
        (AvgPool(3, stride=1, pad=1), (4, 8, 8), 512 * 9, 0),
        (GlobalAvgPool(), (4, 8, 8), 512, 0),
        (ReLU(), (4, 8, 8), 0, 0),
    ],
)
def test_macs_and_parameters_of_one_layer(module, shape, macs, params):
    (layer,) = _layers(module, shape)
    assert layer_macs(layer) == macs
    assert layer_params(layer) == params
    learnable = sum(p.size for p in module.get_parameters().values() if p.need_grad)
    assert params == learnable


class Net(Module):
    def __init__(self) -> None:
        self.conv = Conv(3, 8, 3, pad=1, stride=2, with_bias=False)
        self.bn = BatchNormalization(8, 4)
        self.choice = MixedOp(
            [Sequential(DwConv(8, 3, pad=1), ReLU()), Conv(8, 8, 1), Identity()],
            names=["dw", "pw", "skip"],
            alpha=Parameter((3, 1, 1, 1, 1)),  # declared logits (as a ported space)
        )
        self.pool = GlobalAvgPool()
        self.fc = Linear(8, 10)

    def call(self, x):
        return self.fc(self.pool(self.choice(self.bn(self.conv(x)))))


def test_flops_and_params_of_architectures():
    net = Net()
    est = FlopsEstimator((3, 8, 8))
    # batch 1: conv out 8*4*4 = 128 values x 27; bn 128; pool 128; fc 8*10
    fixed = 128 * 27 + 128 + 128 + 80
    dw, pw = 128 * 9, 128 * 8
    assert est.predict(net, {"choice": 0}) == fixed + dw
    assert est.predict(net, {"choice": 1}) == fixed + pw
    assert est.predict(net, {"choice": 2}) == fixed
    # conv 8*27, bn beta + gamma 16, fc 90; dw 72 + 8 bias; pw 64 + 8 bias
    params = {0: 216 + 16 + 80 + 90, 1: 216 + 16 + 72 + 90, 2: 216 + 16 + 90}
    for i, n in params.items():
        assert est.details(net, {"choice": i}) == {"macs": est.predict(net, {"choice": i}),
                                                   "params": n}  # fmt: skip
        assert ParamsEstimator((3, 8, 8)).predict(net, {"choice": i}) == n
    assert FlopsEstimator((3, 8, 8), batch_size=4).predict(net, {"choice": 1}) == 4 * (fixed + pw)
    net.choice.alpha.d = np.array([0.2, -0.4, 0.1]).reshape(net.choice.alpha.shape)
    e = est.expected(net, distribution(net))
    e.forward()
    p = softmax([0.2, -0.4, 0.1])
    assert float(e.d) == pytest.approx(fixed + p @ [dw, pw, 0], rel=1e-6)


def test_params_match_the_space_count_of_the_argmax_network():
    from nnabla_nas.config import parse_dataclass
    from nnabla_nas.contrib.mobilenet import MobileNetConfig, MobileNetSpace

    cfg = parse_dataclass(MobileNetConfig, {"num_classes": 10, "settings": [[8, 2, 2]],
                                            "width_mult": 0.25, "in_channels": 1})  # fmt: skip
    model = MobileNetSpace(cfg, rng=np.random.RandomState(0))
    arch = random_logits(model, seed=1).argmax()
    assert ParamsEstimator((1, 16, 16)).predict(model, arch) == model.num_params(arch)


def test_peak_activation_of_a_chain_and_a_residual():
    x = nn.Variable((1, 3, 8, 8))
    c1 = F.convolution(x, nn.Variable((4, 3, 3, 3)), pad=(1, 1))  # 256 values
    r = F.relu(c1)  # 256
    out = F.convolution(r, nn.Variable((2, 4, 3, 3)), pad=(1, 1), stride=(2, 2))  # 32
    # live: {x, c1} = 448, {c1, r} = 512, {r, out} = 288
    assert peak_activation_bytes([out], [x]) == 512 * 4
    assert peak_activation_bytes([out], [x], per_value=2) == 512 * 2
    x = nn.Variable((1, 4, 4, 4))  # 64
    c = F.convolution(x, nn.Variable((4, 4, 1, 1)))
    a = x + F.relu(c)
    # {x, c} = 128, {x, c, relu} = 192, {x, relu, a} = 192: x stays alive for the add
    assert peak_activation_bytes([a], [x]) == 192 * 4


def test_memory_of_architectures():
    net = Net()
    est = MemoryEstimator((3, 8, 8))
    # parameters (float32): conv 216, bn 4 x 8, fc 80 + 10; dw 72 + 8; pw 64 + 8
    fixed = 216 + 32 + 90
    for i, extra in {0: 80, 1: 72, 2: 0}.items():
        params, _ = est.memory(net, {"choice": i})
        assert params == 4 * (fixed + extra)
    # skip: x 192 -> conv 128 -> bn 128 -> pool 8 -> fc 10: peak {x, conv} = 320 values
    assert est.memory(net, {"choice": 2})[1] == 320 * 4
    assert est.details(net, {"choice": 2}) == {"param_bytes": 4 * fixed,
                                               "activation_bytes": 1280.0,
                                               "total_bytes": 4 * fixed + 1280.0}  # fmt: skip
    assert est.predict(net, {"choice": 0}) == sum(est.memory(net, {"choice": 0}))


def test_expected_memory_is_differentiable_and_bounded_by_the_argmax_memory():
    net = Net()
    est = MemoryEstimator((3, 8, 8))
    net.choice.alpha.d = np.array([30.0, 0.0, 0.0]).reshape(net.choice.alpha.shape)
    e = est.expected(net, distribution(net))
    e.forward()
    params, peak = est.memory(net, argmax(net))
    # At a one-hot distribution: exact parameters plus the largest working set of one function
    # (conv: x 192 + out 128 values), a lower bound of the real peak.
    assert float(e.d) == pytest.approx(params + 320 * 4, rel=1e-5)
    assert float(e.d) <= params + peak
    net.choice.alpha.d = np.zeros(net.choice.alpha.shape)
    net.choice.alpha.grad.zero()
    e = est.expected(net, distribution(net))
    e.forward()
    e.backward()
    assert np.abs(net.choice.alpha.g).sum() > 0

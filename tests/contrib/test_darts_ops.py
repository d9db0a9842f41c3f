"""The DARTS candidates against plain nnabla.functions / numpy on the same weights."""

from __future__ import annotations

import nnabla as nn
import nnabla.functions as F
import numpy as np
import pytest

from nnabla_nas.contrib.darts.network import DropPath
from nnabla_nas.contrib.darts.ops import (
    PRIMITIVES,
    DilConv,
    FactorizedReduce,
    Pool,
    SepConv,
    make_op,
)
from nnabla_nas.module import Identity, Zero


def randomize(module, rng):
    """Random weights and BN statistics (so that the comparisons are not trivial)."""
    for path, p in module.get_parameters().items():
        p.d = (
            rng.uniform(0.5, 2.0, p.shape) if path.endswith("_var") else rng.normal(0, 0.5, p.shape)
        )
    module.training = False


def var(a):
    return nn.Variable.from_numpy_array(np.asarray(a, dtype=np.float32))


def bn(h, m):
    """Inference BN with the module's statistics (scale 1 / shift 0 when not affine)."""
    return F.batch_normalization(h, m._beta, m._gamma, m._mean, m._var, batch_stat=False)


def run(*outs):
    F.sink(*outs).forward()
    return [o.d.copy() for o in outs]


@pytest.mark.parametrize("stride", [1, 2])
def test_sep_conv_3x3_matches_plain_functions(stride):
    rng = np.random.RandomState(0)
    op = make_op("sep_conv_3x3", 6, stride, affine=True, rng=rng)
    assert isinstance(op, SepConv)
    randomize(op, rng)
    x = var(rng.normal(size=(2, 6, 9, 9)))
    a, b = op.op1, op.op2
    # ReLU - dw 3x3 (stride) - pw 1x1 - BN - ReLU - dw 3x3 - pw 1x1 - BN
    h = F.depthwise_convolution(F.relu(x), a.dw._W, pad=(1, 1), stride=(stride, stride))
    h = bn(F.convolution(h, a.pw._W), a.bn)
    h = F.depthwise_convolution(F.relu(h), b.dw._W, pad=(1, 1))
    ref = bn(F.convolution(h, b.pw._W), b.bn)
    y, r = run(op(x), ref)
    assert y.shape == (2, 6, 9 if stride == 1 else 5, 9 if stride == 1 else 5)
    np.testing.assert_allclose(y, r, rtol=1e-4, atol=1e-5)
    # The weights: two depthwise 3x3 and two pointwise 6x6, no bias; BN scale and shift.
    shapes = {k: v.shape for k, v in op.get_parameters(grad_only=True).items()}
    assert shapes["op1/dw/_W"] == (6, 3, 3) and shapes["op2/pw/_W"] == (6, 6, 1, 1)
    assert sum(np.prod(s) for s in shapes.values()) == 2 * (6 * 9 + 36 + 2 * 6)


def test_dil_conv_5x5_matches_plain_functions():
    rng = np.random.RandomState(1)
    op = make_op("dil_conv_5x5", 4, 2, affine=True, rng=rng)
    assert isinstance(op, DilConv)
    randomize(op, rng)
    x = var(rng.normal(size=(2, 4, 10, 10)))
    h = F.depthwise_convolution(F.relu(x), op.dw._W, pad=(4, 4), stride=(2, 2), dilation=(2, 2))
    ref = bn(F.convolution(h, op.pw._W), op.bn)
    y, r = run(op(x), ref)
    assert y.shape == (2, 4, 5, 5)
    np.testing.assert_allclose(y, r, rtol=1e-4, atol=1e-5)


def test_factorized_reduce_matches_plain_functions():
    rng = np.random.RandomState(2)
    op = FactorizedReduce(5, 8, affine=True, rng=rng)
    randomize(op, rng)
    xn = rng.normal(size=(2, 5, 8, 8)).astype(np.float32)
    x = var(xn)
    # DARTS: cat(conv_1(relu(x)), conv_2(relu(x)[:, :, 1:, 1:])), then BN.
    left = F.convolution(F.relu(x), op.conv1._W, stride=(2, 2))
    right = F.convolution(F.relu(var(xn[:, :, 1:, 1:])), op.conv2._W, stride=(2, 2))
    ref = bn(F.concatenate(left, right, axis=1), op.bn)
    y, r = run(op(x), ref)
    assert y.shape == (2, 8, 4, 4)
    np.testing.assert_allclose(y, r, rtol=1e-4, atol=1e-5)
    # The second half reads the odd pixels: its value at (0, 0) is conv2 of relu(x)[1, 1].
    w2 = op.conv2._W.d.reshape(4, 5)
    pre = (w2 @ np.maximum(xn[0, :, 1, 1], 0))[0]
    assert left.shape[1] == 4 and np.isclose(right.d[0, 0, 0, 0], pre, rtol=1e-5)
    # Odd sizes: both halves have ceil(size / 2) pixels (zero padding at the end).
    odd = op(var(rng.normal(size=(2, 5, 7, 7))))
    odd.forward()
    assert odd.shape == (2, 8, 4, 4)
    with pytest.raises(ValueError, match="even"):
        FactorizedReduce(4, 5)


def _pool_numpy(x, stride, kind):
    n, c, h, w = x.shape
    oh, ow = -(-h // stride), -(-w // stride)
    out = np.zeros((n, c, oh, ow), dtype=np.float64)
    for i in range(oh):
        for j in range(ow):
            r0, c0 = i * stride - 1, j * stride - 1
            win = x[:, :, max(r0, 0) : r0 + 3, max(c0, 0) : c0 + 3]
            out[:, :, i, j] = win.max((2, 3)) if kind == "max" else win.mean((2, 3))
    return out


@pytest.mark.parametrize("name", ["max_pool_3x3", "avg_pool_3x3"])
@pytest.mark.parametrize("stride", [1, 2])
def test_pools_match_numpy(name, stride):
    rng = np.random.RandomState(3)
    xn = rng.normal(size=(2, 3, 7, 7)).astype(np.float32)
    op = make_op(name, 3, stride)
    y = op(var(xn))
    y.forward()
    # average: padding is not counted (count_include_pad=False)
    np.testing.assert_allclose(y.d, _pool_numpy(xn, stride, name[:3]), rtol=1e-5, atol=1e-6)
    assert not op.get_parameters()


def test_pool_in_search_is_followed_by_non_affine_bn():
    rng = np.random.RandomState(4)
    op = make_op("avg_pool_3x3", 3, 1, affine=False, pool_bn=True)
    assert isinstance(op, Pool)
    assert not op.get_parameters(grad_only=True)  # only running statistics
    assert set(op.get_parameters()) == {"bn/_mean", "bn/_var"}
    xn = rng.normal(size=(4, 3, 5, 5)).astype(np.float32)
    y = op(var(xn))  # training mode: batch statistics
    y.forward()
    p = _pool_numpy(xn, 1, "avg")
    ref = (p - p.mean((0, 2, 3), keepdims=True)) / np.sqrt(p.var((0, 2, 3), keepdims=True) + 1e-5)
    np.testing.assert_allclose(y.d, ref, rtol=1e-3, atol=1e-4)


def test_skip_and_none():
    x = var(np.random.RandomState(5).normal(size=(2, 4, 7, 7)))
    skip = make_op("skip_connect", 4, 1)
    assert isinstance(skip, Identity) and skip(x) is x
    assert isinstance(make_op("skip_connect", 4, 2), FactorizedReduce)
    none = make_op("none", 4, 2)
    assert isinstance(none, Zero)
    z = none(x)
    z.forward()
    assert z.shape == (2, 4, 4, 4) and not z.d.any()
    with pytest.raises(ValueError, match="unknown DARTS candidate 'conv_7x7'"):
        make_op("conv_7x7", 4, 1)


def test_every_candidate_keeps_the_shape_contract():
    """Stride 1 keeps the shape, stride 2 gives ceil(size / 2), at odd and even sizes."""
    rng = np.random.RandomState(6)
    for size in (7, 8):
        x = var(rng.normal(size=(2, 4, size, size)))
        for stride in (1, 2):
            for name in PRIMITIVES:
                y = make_op(name, 4, stride, affine=False, pool_bn=True, rng=rng)(x)
                side = size if stride == 1 else -(-size // 2)
                assert y.shape == (2, 4, side, side), (name, stride, size)


def test_drop_path_zeroes_whole_samples_and_rescales():
    rng = np.random.RandomState(7)
    prob = nn.Variable((1, 1, 1, 1))
    prob.d = 0.5
    nn.seed(0)
    drop = DropPath(prob)
    xn = rng.uniform(1.0, 2.0, size=(64, 3, 2, 2)).astype(np.float32)
    y = drop(var(xn))
    kept_fractions = []
    masks = []
    for _ in range(3):  # the graph is built once; every forward draws a new mask
        y.forward()
        ratio = y.d / xn
        per_sample = ratio.reshape(64, -1)
        assert np.all((np.abs(per_sample - 2.0) < 1e-5) | (per_sample == 0.0))
        assert np.all(per_sample.min(1) == per_sample.max(1))  # one decision per sample
        masks.append(per_sample[:, 0] > 0)
        kept_fractions.append(masks[-1].mean())
    assert not np.array_equal(masks[0], masks[1])
    assert 0.3 < np.mean(kept_fractions) < 0.7
    prob.d = 0.0  # a new probability, same graph
    y.forward()
    np.testing.assert_allclose(y.d, xn)
    drop.training = False
    x = var(xn)
    assert drop(x) is x

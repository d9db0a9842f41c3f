"""Each layer against plain nnabla.functions on the same weights and input (values and grads)."""

from __future__ import annotations

import nnabla as nn
import nnabla.functions as F
import nnabla.parametric_functions as PF
import numpy as np
import pytest

from nnabla_nas.errors import ConfigError
from nnabla_nas.module import (
    AvgPool,
    BatchNormalization,
    Conv,
    Dropout,
    DwConv,
    GlobalAvgPool,
    Identity,
    Lambda,
    LeakyReLU,
    Linear,
    MaxPool,
    Merging,
    Parameter,
    ReLU,
    ReLU6,
    Zero,
)


def _var(array: np.ndarray, need_grad: bool = True) -> nn.Variable:
    return nn.Variable.from_numpy_array(np.array(array, dtype=np.float32), need_grad=need_grad)


def _forward_backward(fn, x_np, params):
    """Runs ``loss = sum(fn(x) * G)`` for a fixed random G; returns y, dx and the params' grads."""
    x = _var(x_np)
    y = fn(x)
    upstream = _var(np.random.RandomState(7).randn(*y.shape), need_grad=False)
    loss = F.sum(F.mul2(y, upstream))
    for p in params:
        p.grad.zero()
    x.grad.zero()
    loss.forward()
    loss.backward()
    return y.d.copy(), x.g.copy(), [p.g.copy() for p in params]


def _copy(param: nn.Variable) -> nn.Variable:
    return _var(param.d.copy(), need_grad=param.need_grad)


def _assert_same(ours, ref):
    y, dx, grads = ours
    y_ref, dx_ref, grads_ref = ref
    np.testing.assert_allclose(y, y_ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-5, atol=1e-6)
    assert len(grads) == len(grads_ref)
    for g, g_ref in zip(grads, grads_ref):
        assert np.abs(g_ref).max() > 0  # the comparison is not vacuous
        np.testing.assert_allclose(g, g_ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(kernel=(3, 3), pad=(1, 1)),
        dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1), group=2),
        dict(kernel=(3, 3), dilation=(2, 2), pad=(2, 2), with_bias=False),
        dict(kernel=1),
    ],
)
def test_conv_matches_convolution(rng, kwargs):
    conv = Conv(4, 6, rng=rng, **kwargs)
    if conv._b is not None:
        conv._b.d = rng.randn(6)
    x = rng.randn(2, 4, 8, 8)
    params = [conv._W] + ([conv._b] if conv._b is not None else [])
    refs = [_copy(p) for p in params]
    ref_b = refs[1] if len(refs) > 1 else None

    def ref_fn(v):
        return F.convolution(
            v,
            refs[0],
            ref_b,
            pad=conv._pad,
            stride=conv._stride,
            dilation=conv._dilation,
            group=kwargs.get("group", 1),
        )

    _assert_same(_forward_backward(conv, x, params), _forward_backward(ref_fn, x, refs))


def test_conv_weights_shapes_and_default_init_like_parametric_functions():
    conv = Conv(4, 6, (3, 3), group=2, rng=np.random.RandomState(3))
    assert conv._W.shape == (6, 2, 3, 3) and conv._b.shape == (6,)
    PF.convolution(nn.Variable((1, 4, 5, 5)), 6, (3, 3), group=2, rng=np.random.RandomState(3))
    pf = nn.get_parameters(grad_only=False)
    np.testing.assert_array_equal(conv._W.d, pf["conv/W"].d)
    np.testing.assert_array_equal(conv._b.d, pf["conv/b"].d)


def test_dwconv_matches_depthwise_convolution(rng):
    conv = DwConv(4, (3, 3), pad=(1, 1), stride=(2, 2), multiplier=2, rng=rng)
    conv._b.d = rng.randn(8)
    assert conv._W.shape == (8, 3, 3)
    x = rng.randn(2, 4, 8, 8)
    refs = [_copy(conv._W), _copy(conv._b)]

    def ref_fn(v):
        return F.depthwise_convolution(v, refs[0], refs[1], pad=(1, 1), stride=(2, 2), multiplier=2)

    _assert_same(_forward_backward(conv, x, [conv._W, conv._b]), _forward_backward(ref_fn, x, refs))


def test_dwconv_default_init_like_parametric_functions():
    conv = DwConv(4, (5, 5), rng=np.random.RandomState(5))
    PF.depthwise_convolution(nn.Variable((1, 4, 8, 8)), (5, 5), rng=np.random.RandomState(5))
    np.testing.assert_array_equal(conv._W.d, nn.get_parameters()["depthwise_conv/W"].d)


def test_linear_matches_affine_and_numpy(rng):
    fc = Linear(12, 5, rng=rng)
    fc._b.d = rng.randn(5)
    x = rng.randn(3, 3, 2, 2)
    refs = [_copy(fc._W), _copy(fc._b)]
    ours = _forward_backward(fc, x, [fc._W, fc._b])
    _assert_same(ours, _forward_backward(lambda v: F.affine(v, refs[0], refs[1]), x, refs))
    np.testing.assert_allclose(ours[0], x.reshape(3, 12) @ fc._W.d + fc._b.d, rtol=1e-5)


def test_linear_without_bias_and_default_init_like_affine():
    fc = Linear(6, 4, rng=np.random.RandomState(2), bias=False)
    assert fc._b is None and list(fc.get_parameters()) == ["_W"]
    PF.affine(nn.Variable((1, 6)), 4, rng=np.random.RandomState(2))
    np.testing.assert_array_equal(fc._W.d, nn.get_parameters()["affine/W"].d)


def _random_bn(rng, decay_rate=0.9):
    bn = BatchNormalization(4, 4, decay_rate=decay_rate)
    bn._beta.d = rng.randn(1, 4, 1, 1)
    bn._gamma.d = rng.rand(1, 4, 1, 1) + 0.5
    bn._mean.d = rng.randn(1, 4, 1, 1)
    bn._var.d = rng.rand(1, 4, 1, 1) + 0.5
    return bn


@pytest.mark.parametrize("training", [True, False])
def test_batch_normalization_matches_function(rng, training):
    bn = _random_bn(rng)
    bn.training = training
    x = rng.randn(4, 4, 5, 5) * 2 + 1
    beta, gamma, mean, var = (_copy(p) for p in (bn._beta, bn._gamma, bn._mean, bn._var))
    mean_before = bn._mean.d.copy()

    def ref_fn(v):
        return F.batch_normalization(v, beta, gamma, mean, var, batch_stat=training)

    ours = _forward_backward(bn, x, [bn._beta, bn._gamma])
    _assert_same(ours, _forward_backward(ref_fn, x, [beta, gamma]))
    # running statistics: updated (like nnabla's) in training only
    np.testing.assert_allclose(bn._mean.d, mean.d, rtol=1e-6)
    np.testing.assert_allclose(bn._var.d, var.d, rtol=1e-6)
    batch_mean = x.mean(axis=(0, 2, 3)).reshape(1, 4, 1, 1)
    expected_mean = 0.9 * mean_before + 0.1 * batch_mean if training else mean_before
    np.testing.assert_allclose(bn._mean.d, expected_mean, rtol=1e-5, atol=1e-6)
    if not training:  # running statistics by hand
        expected = (x - bn._mean.d) / np.sqrt(bn._var.d + 1e-5) * bn._gamma.d + bn._beta.d
        np.testing.assert_allclose(ours[0], expected, rtol=1e-5, atol=1e-5)


def test_batch_normalization_batch_stat_argument_overrides_training(rng):
    bn = BatchNormalization(4, 4, batch_stat=False)
    bn._mean.d = rng.randn(1, 4, 1, 1)
    x = _var(rng.randn(2, 4, 3, 3))
    y = bn(x)  # training is True, but batch_stat=False uses the running statistics
    y.forward()
    np.testing.assert_allclose(y.d, (x.d - bn._mean.d) / np.sqrt(1 + 1e-5), rtol=1e-5, atol=1e-6)


def test_batch_normalization_parameters_and_init():
    bn = BatchNormalization(3, 4, param_init={"gamma": np.full((1, 3, 1, 1), 2.0)})
    params = bn.get_parameters()
    assert list(params) == ["_beta", "_gamma", "_mean", "_var"]
    assert [p.need_grad for p in params.values()] == [True, True, False, False]
    np.testing.assert_array_equal(bn._gamma.d, 2.0)
    np.testing.assert_array_equal(bn._var.d, 1.0)
    np.testing.assert_array_equal(bn._beta.d, 0.0)
    with pytest.raises(ValueError, match="param_init"):
        BatchNormalization(3, 4, param_init={"gama": None})


@pytest.mark.parametrize(
    "args, ref",
    [
        (((2, 2),), dict(kernel=(2, 2), stride=(2, 2))),
        (((3, 3), (2, 2), (1, 1)), dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1))),
    ],
)
def test_max_pool_matches_function(rng, args, ref):
    x = rng.randn(2, 3, 8, 8)
    ours = _forward_backward(MaxPool(*args), x, [])
    _assert_same(ours, _forward_backward(lambda v: F.max_pooling(v, **ref), x, []))


def test_avg_pool_matches_function_and_excludes_padding(rng):
    x = rng.randn(2, 3, 8, 8)
    pool = AvgPool(3, stride=1, pad=1)

    def ref_fn(v):
        return F.average_pooling(v, (3, 3), (1, 1), pad=(1, 1), including_pad=False)

    ours = _forward_backward(pool, x, [])
    _assert_same(ours, _forward_backward(ref_fn, x, []))
    # the corner averages the 4 real cells under its window, not 9
    np.testing.assert_allclose(ours[0][:, :, 0, 0], x[:, :, :2, :2].mean(axis=(2, 3)), rtol=1e-5)
    default_stride = _forward_backward(AvgPool((2, 2)), x, [])[0]
    np.testing.assert_allclose(
        default_stride, x.reshape(2, 3, 4, 2, 4, 2).mean(axis=(3, 5)), rtol=1e-5
    )


def test_global_avg_pool(rng):
    x = rng.randn(2, 3, 5, 5)
    ours = _forward_backward(GlobalAvgPool(), x, [])
    _assert_same(ours, _forward_backward(F.global_average_pooling, x, []))
    np.testing.assert_allclose(ours[0], x.mean(axis=(2, 3), keepdims=True), rtol=1e-5)


@pytest.mark.parametrize(
    "layer, ref, numpy_fn",
    [
        (ReLU(), F.relu, lambda a: np.maximum(a, 0)),
        (ReLU6(), F.relu6, lambda a: np.clip(a, 0, 6)),
        (LeakyReLU(0.2), lambda v: F.leaky_relu(v, 0.2), lambda a: np.where(a > 0, a, 0.2 * a)),
    ],
)
def test_activations(rng, layer, ref, numpy_fn):
    x = rng.randn(2, 3, 4, 4) * 5
    ours = _forward_backward(layer, x, [])
    _assert_same(ours, _forward_backward(ref, x, []))
    np.testing.assert_allclose(ours[0], numpy_fn(x.astype(np.float32)), rtol=1e-6)


def test_relu_inplace_gives_relu():
    x = _var(np.array([[-1.0, 2.0]]))
    y = F.mul_scalar(ReLU(inplace=True)(F.identity(x)), 1.0)
    y.forward()
    np.testing.assert_array_equal(y.d, [[0.0, 2.0]])


def test_dropout_in_training_matches_function_and_is_identity_in_inference(rng):
    x_np = rng.randn(4, 16).astype(np.float32) + 3.0
    layer = Dropout(0.25)
    nn.seed(11)
    y = layer(_var(x_np))
    y.forward()
    nn.seed(11)
    y_ref = F.dropout(_var(x_np), 0.25)
    y_ref.forward()
    np.testing.assert_array_equal(y.d, y_ref.d)
    kept = y.d != 0
    assert 0 < kept.sum() < kept.size
    np.testing.assert_allclose(y.d[kept], x_np[kept] / 0.75, rtol=1e-6)
    layer.training = False
    x = _var(x_np)
    assert layer(x) is x


def test_identity_returns_its_input():
    x = _var(np.ones((2, 2)))
    assert Identity()(x) is x


@pytest.mark.parametrize("size, stride, out", [(8, 1, 8), (8, 2, 4), (7, 2, 4)])
def test_zero_has_the_strided_shape_and_no_gradient(rng, size, stride, out):
    x_np = rng.randn(2, 3, size, size)
    y = Zero((stride, stride))(_var(x_np))
    y.forward()
    expected = x_np[:, :, ::stride, ::stride] * 0
    assert y.shape == expected.shape == (2, 3, out, out)
    np.testing.assert_array_equal(y.d, expected)
    assert not y.need_grad
    conv = F.convolution(_var(x_np), _var(np.ones((3, 3, 3, 3))), pad=(1, 1), stride=(stride,) * 2)
    assert conv.shape == y.shape  # matches a padded 3x3 conv of the same stride


def test_merging_concat_and_add(rng):
    a, b, c = (rng.randn(2, 3, 4, 4) for _ in range(3))
    ours = _forward_backward(lambda v: Merging("concat")(v, _var(b)), a, [])
    _assert_same(ours, _forward_backward(lambda v: F.concatenate(v, _var(b), axis=1), a, []))
    np.testing.assert_allclose(ours[0], np.concatenate([a, b], axis=1), rtol=1e-6)
    ours = _forward_backward(lambda v: Merging("add")([v, _var(b), _var(c)]), a, [])
    _assert_same(ours, _forward_backward(lambda v: F.add2(F.add2(v, _var(b)), _var(c)), a, []))
    np.testing.assert_allclose(ours[0], a + b + c, rtol=1e-5)
    ours = _forward_backward(lambda v: Merging("concat", axis=2)(v, _var(b)), a, [])
    np.testing.assert_allclose(ours[0], np.concatenate([a, b], axis=2), rtol=1e-6)
    with pytest.raises(ConfigError, match="mode.*'sum'.*concat"):
        Merging("sum")


def test_lambda_applies_its_function(rng):
    a, b = rng.randn(2, 3), rng.randn(2, 3)
    y = Lambda(F.mul2)(_var(a), _var(b))
    y.forward()
    np.testing.assert_allclose(y.d, a * b, rtol=1e-6)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Conv(4, 6, 3, fix_parameters=True),
        lambda: DwConv(4, 3, fix_parameters=True),
        lambda: Linear(4, 6, fix_parameters=True),
    ],
)
def test_fix_parameters_gives_plain_variables(make):
    layer = make()
    assert layer.get_parameters() == {}
    for w in (layer._W, layer._b):
        assert isinstance(w, nn.Variable) and not isinstance(w, Parameter)
        assert not w.need_grad
    assert np.abs(layer._W.d).max() > 0  # still initialised


def test_fix_parameters_batch_normalization_keeps_running_statistics():
    bn = BatchNormalization(4, 4, fix_parameters=True)
    assert list(bn.get_parameters()) == ["_mean", "_var"]
    assert not isinstance(bn._gamma, Parameter) and not bn._gamma.need_grad
    np.testing.assert_array_equal(bn._gamma.d, 1.0)

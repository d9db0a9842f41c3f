"""NNP and ONNX export of every registered space's fixed network, read back by the real readers:
nnabla's ``NnpLoader`` gives nnabla's outputs exactly, ``onnx.checker`` accepts the ONNX file and
onnxruntime reproduces nnabla's outputs to 1e-5 on the same input.

A new space gets its tiny configuration from ``tests/contrib/test_spaces_registry.py::TINY``.
"""

from __future__ import annotations

import sys
from collections import OrderedDict

import nnabla as nn
import nnabla.functions as F
import numpy as np
import pytest

from nnabla_nas.contrib import SPACES
from nnabla_nas.export import ExportError, export_nnp, export_onnx, inference_graph
from nnabla_nas.genotype import load_genotype, save_genotype
from nnabla_nas.module import AvgPool, Conv, Lambda, MixedOp, Module, ReLU, Sequential
from tests.arch import genotype_of, random_logits
from tests.contrib.test_spaces_registry import TINY

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

ATOL = 1e-5


def fixed_network(name: str, tmp_path, arch_seed: int = 1):
    """The fixed network of a random architecture of space ``name``, with BN statistics and
    affine parameters away from their initial values (so that inference mode matters)."""
    keys, shape = TINY[name]
    space = SPACES.get(name)
    cfg = space.Config(**keys)
    supernet = space(cfg, rng=np.random.RandomState(0))
    rng = np.random.RandomState(arch_seed)
    logits = random_logits(supernet, seed=arch_seed)
    save_genotype(tmp_path / "arch.h5", genotype_of(supernet, logits))
    fixed = space(cfg, genotype=load_genotype(tmp_path / "arch.h5", name), rng=rng)
    for path, p in fixed.get_parameters().items():
        if path.endswith("_mean") or path.endswith("_beta"):
            p.d = rng.normal(0, 0.2, p.shape)
        elif path.endswith("_var") or path.endswith("_gamma"):
            p.d = rng.uniform(0.5, 1.5, p.shape)
    return fixed, shape


def nnabla_outputs(model, shape, x_np):
    """The model's logits in inference mode, by nnabla (the reference)."""
    model.apply(training=False)
    x = nn.Variable.from_numpy_array(x_np)
    y = model(x)
    y = y[0] if isinstance(y, tuple) else y
    y.forward(clear_buffer=True)
    model.apply(training=True)
    return y.d.copy()


def nnp_outputs(path, x_np, batch_size):
    from nnabla.utils.nnp_graph import NnpLoader

    nn.clear_parameters()
    net = NnpLoader(str(path)).get_network("network", batch_size=batch_size)
    assert list(net.inputs) == ["x"] and list(net.outputs) == ["y"]
    net.inputs["x"].d = x_np
    net.outputs["y"].forward(clear_buffer=True)
    out = net.outputs["y"].d.copy()
    nn.clear_parameters()
    return out


def onnx_outputs(path, x_np):
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert inp.name == "x" and list(inp.shape) == list(x_np.shape)
    return session.run(["y"], {"x": x_np})[0]


@pytest.mark.parametrize("name", SPACES.names())
def test_every_space_exports_nnp_and_onnx_that_reproduce_nnabla(name, tmp_path):
    model, shape = fixed_network(name, tmp_path)
    x_np = np.random.RandomState(3).normal(size=(1, *shape)).astype(np.float32)
    ref = nnabla_outputs(model, shape, x_np)
    assert np.abs(ref).max() > 0.1  # a network that computes something

    nnp = export_nnp(model, shape, tmp_path / "model.nnp")
    np.testing.assert_allclose(nnp_outputs(nnp, x_np, 1), ref, rtol=0, atol=1e-6)
    onnx_file = export_onnx(model, shape, tmp_path / "model.onnx")
    out = onnx_outputs(onnx_file, x_np)
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, rtol=0, atol=ATOL)
    assert model.training  # the export left the model's flags as they were
    assert not [m for m in sys.modules if m.split(".")[0] == "tensorflow"]  # never imported


def test_batch_size_is_configurable_and_the_nnp_batch_is_variable(tmp_path):
    model, shape = fixed_network("mobilenet", tmp_path)
    x_np = np.random.RandomState(4).normal(size=(3, *shape)).astype(np.float32)
    ref = nnabla_outputs(model, shape, x_np)
    onnx_file = export_onnx(model, shape, tmp_path / "model.onnx", batch_size=3)
    np.testing.assert_allclose(onnx_outputs(onnx_file, x_np), ref, rtol=0, atol=ATOL)
    nnp = export_nnp(model, shape, tmp_path / "model.nnp")  # saved at batch 1, run at 3
    np.testing.assert_allclose(nnp_outputs(nnp, x_np, 3), ref, rtol=0, atol=1e-6)


def test_average_pooling_excluding_the_padding_is_exact_in_onnx(tmp_path):
    # nnabla-converter alone writes it as an edge pad + average: wrong at the borders
    net = Sequential(AvgPool(3, stride=1, pad=1), AvgPool(3, stride=2, pad=1))
    x_np = np.random.RandomState(5).normal(size=(1, 2, 7, 7)).astype(np.float32) * 3
    x = nn.Variable.from_numpy_array(x_np)
    ref = net(x)
    ref.forward()
    out = onnx_outputs(export_onnx(net, (2, 7, 7), tmp_path / "pool.onnx"), x_np)
    np.testing.assert_allclose(out, ref.d, rtol=0, atol=ATOL)


class _Scaled(Module):
    """Parameters, a fixed weight and a constant made in the call: every leaf is exported."""

    def __init__(self) -> None:
        rng = np.random.RandomState(6)
        self.conv = Conv(2, 3, 3, pad=1, rng=rng)
        self.fixed = Conv(3, 3, 1, fix_parameters=True, rng=rng)
        self.relu = ReLU()

    def call(self, x: nn.Variable) -> nn.Variable:
        offset = nn.Variable.from_numpy_array(np.full((1, 3, 1, 1), 0.5, dtype=np.float32))
        return self.fixed(self.relu(self.conv(x))) + offset


def test_every_leaf_is_a_named_parameter_and_reloads(tmp_path):
    net = _Scaled()
    graph = inference_graph(net, (2, 5, 5), batch_size=2)
    assert list(graph.parameters) == ["conv/_W", "conv/_b", "fixed/_W", "fixed/_b", "constant_0"]
    assert graph.x.shape == (2, 2, 5, 5) and graph.y.shape == (2, 3, 5, 5)
    x_np = np.random.RandomState(7).normal(size=(2, 2, 5, 5)).astype(np.float32)
    graph.x.d = x_np
    graph.y.forward()
    ref = graph.y.d.copy()
    nnp = export_nnp(net, (2, 5, 5), tmp_path / "net.nnp")
    assert not nn.get_parameters(grad_only=False)  # nnabla's global parameter scope is untouched
    np.testing.assert_allclose(nnp_outputs(nnp, x_np, 2), ref, rtol=0, atol=1e-6)
    np.testing.assert_allclose(
        onnx_outputs(export_onnx(net, (2, 5, 5), tmp_path / "net.onnx", batch_size=2), x_np),
        ref,
        rtol=0,
        atol=ATOL,
    )


def test_a_function_onnx_cannot_express_is_named_and_nothing_is_written(tmp_path):
    net = Sequential(Conv(1, 2, 3, pad=1), Lambda(lambda v: F.cumsum(v, axis=1)))
    target = tmp_path / "net.onnx"
    with pytest.raises(ExportError, match=r"nnabla function\(s\) CumSum \(x1\).*--format nnp"):
        export_onnx(net, (1, 4, 4), target)
    assert not target.exists() and not list(tmp_path.iterdir())
    export_nnp(net, (1, 4, 4), tmp_path / "net.nnp")  # NNP expresses any nnabla function


def test_open_choices_and_bad_shapes_are_refused(tmp_path):
    supernet = Sequential(MixedOp([ReLU(), Conv(1, 1, 1)], names=["relu", "conv"]))
    with pytest.raises(ExportError, match=r"1 open choice\(s\) \(0\).*genotype"):
        export_nnp(supernet, (1, 4, 4), tmp_path / "a.nnp")
    with pytest.raises(ExportError, match="batch_size: must be a positive integer, got 0"):
        export_onnx(ReLU(), (1, 4, 4), tmp_path / "a.onnx", batch_size=0)
    with pytest.raises(ExportError, match="input_shape: expected one example's shape"):
        export_nnp(ReLU(), (1, 0, 4), tmp_path / "a.nnp")
    with pytest.raises(ExportError, match="opset: expected one of"):
        export_onnx(ReLU(), (1, 4, 4), tmp_path / "a.onnx", opset=12)
    with pytest.raises(ExportError, match="must end in .nnp"):
        export_nnp(ReLU(), (1, 4, 4), tmp_path / "a.h5")
    assert not list(tmp_path.iterdir())


def test_exported_weights_are_the_models_own(tmp_path):
    model, shape = fixed_network("mobilenet", tmp_path)
    nnp = export_nnp(model, shape, tmp_path / "model.nnp")
    from nnabla.utils.nnp_graph import NnpLoader

    nn.clear_parameters()
    NnpLoader(str(nnp)).get_network("network", batch_size=1)
    loaded = OrderedDict((k, v.d.copy()) for k, v in nn.get_parameters(grad_only=False).items())
    nn.clear_parameters()
    own = model.get_parameters()
    assert set(loaded) == set(own)
    for key, value in loaded.items():
        np.testing.assert_array_equal(value, own[key].d, err_msg=key)

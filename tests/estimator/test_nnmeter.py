"""NnMeterEstimator: the nnabla graph in nn-Meter's IR, nn-Meter's kernels, custom predictors
built with nn-Meter's builder, built-in predictors from the data folder, offline only."""

from __future__ import annotations

import json
import logging
import shutil
import socket
from pathlib import Path

import nnabla as nn
import numpy as np
import pytest

from nnabla_nas.cli import main as cli_main
from nnabla_nas.contrib.mobilenet import MobileNetConfig, MobileNetSpace
from nnabla_nas.errors import ConfigError, NnasError
from nnabla_nas.estimator import ESTIMATORS
from nnabla_nas.estimator.latency import LatencyEstimator
from nnabla_nas.estimator.nnmeter import (
    PREDICTOR_META,
    FastForest,
    NnMeterEstimator,
    NnMeterOptions,
    import_nn_meter,
    kernel_features,
    kernel_name,
    load_kernel_predictor,
    to_nnmeter_ir,
)
from nnabla_nas.estimator.nnmeter_build import (
    KernelSample,
    build_predictor,
    detect_kernels,
    measured_samples,
)
from tests.arch import random_logits
from tests.conftest import run_cli, tiny_mnist_config, write_json

DATA = Path(__file__).parent / "data"
SHAPE = (1, 28, 28)
# Architectures of the tiny space: blocks/0 and blocks/1 are stride-2 blocks (MB3 3x3 or
# MB3 5x5), blocks/2 keeps its shape (MB3 3x3, MB3 5x5 or skip_connect).
ARCH_A = {"blocks/0": 0, "blocks/1": 1, "blocks/2": 0}
ARCH_SKIP = {"blocks/0": 1, "blocks/1": 0, "blocks/2": 2}
# Fixed kernel latencies: a forest fitted on constant labels predicts exactly that constant.
CONSTANT_MS = {
    "conv-bn-relu": 0.3,
    "dwconv-bn-relu": 0.2,
    "add": 0.05,
    "global-avgpool": 0.04,
    "fc": 0.07,
}


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any socket is an error: nothing here may touch the network."""

    class NoSocket:
        def __init__(self, *args, **kwargs):
            raise AssertionError("network access attempted")

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket, "socket", NoSocket)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def tiny_space() -> MobileNetSpace:
    nn.clear_parameters()
    cfg = MobileNetConfig(
        num_classes=10,
        settings=[[8, 1, 2], [16, 2, 2]],
        width_mult=0.25,
        candidates=["MB3 3x3", "MB3 5x5"],
        in_channels=1,
    )
    return MobileNetSpace(cfg, rng=np.random.RandomState(0))


def expected_kernels(arch: dict[str, int]) -> list[tuple]:
    """The kernels of an architecture of the tiny space, by hand from its structure.

    ``(op, input size, cin, cout, kernel, stride)``: 8 channels everywhere except the MB3
    expansions (24) and the head (1280); inputs 28 -> stem /2 -> 14 -> blocks/0 /2 -> 7 ->
    blocks/1 /2 -> 4 (padded odd kernels: (7 - 1) // 2 + 1 = 4).
    """
    out = [("conv-bn-relu", 28, 1, 8, 3, 2)]
    # first block MB1 3x3: depthwise, projection, residual add
    out += [("dwconv-bn-relu", 14, 8, 8, 3, 1), ("conv-bn", 14, 8, 8, 1, 1), ("add", 14, 8, 8)]
    for label, size, stride in (("blocks/0", 14, 2), ("blocks/1", 7, 2), ("blocks/2", 4, 1)):
        if arch[label] == 2:
            continue  # skip_connect: no kernel
        k = (3, 5)[arch[label]]
        after = (size - 1) // stride + 1
        out += [
            ("conv-bn-relu", size, 8, 24, 1, 1),
            ("dwconv-bn-relu", size, 24, 24, k, stride),
            ("conv-bn", after, 24, 8, 1, 1),
        ]
        if stride == 1:
            out.append(("add", after, 8, 8))
    out += [("conv-bn-relu", 4, 8, 1280, 1, 1), ("gap", 4, 1280, 1280), ("fc", None, 1280, 10)]
    return out


def constant_samples(space: MobileNetSpace) -> list[KernelSample]:
    samples = []
    for arch in (ARCH_A, ARCH_SKIP, {"blocks/0": 1, "blocks/1": 1, "blocks/2": 1}):
        for kernel, _ in detect_kernels(space, SHAPE, arch):
            ms = CONSTANT_MS[kernel_name(kernel["op"])]
            samples.append(KernelSample(kernel["op"], tuple(kernel_features(kernel)), ms))
    return samples


def constant_total(arch: dict[str, int]) -> float:
    return sum(CONSTANT_MS[kernel_name(k[0])] for k in expected_kernels(arch))


@pytest.fixture(scope="module")
def constant_predictor(tmp_path_factory):
    """A predictor folder fitted by nn-Meter's builder on fixed kernel latencies."""
    folder = tmp_path_factory.mktemp("nnmeter") / "constant"
    meta = build_predictor(constant_samples(tiny_space()), folder)
    return folder, meta


# ---------------------------------------------------------------------------------------------
# The IR and nn-Meter's kernels
# ---------------------------------------------------------------------------------------------


def test_ir_is_built_from_the_nnabla_graph():
    space = tiny_space()
    from nnabla_nas.estimator.base import inference_graph

    x, out = inference_graph(space, SHAPE, 1, ARCH_A)
    ir = to_nnmeter_ir(out, x).ir
    funcs = []
    out.visit(funcs.append)
    assert len(ir) == len(funcs) + 1  # one node per nnabla function, plus the input
    stem = ir["Convolution_0"]["attr"]
    assert stem["type"] == "conv"
    assert stem["input_shape"] == [[1, 28, 28, 1]]  # NHWC
    assert stem["output_shape"] == [[1, 14, 14, 8]]
    assert stem["attr"]["ks"] == [3, 3] and stem["attr"]["strides"] == [1, 2, 2, 1]
    assert ir["Convolution_0"]["inbounds"] == ["input"]
    assert ir["BatchNormalization_1"]["inbounds"] == ["Convolution_0"]
    assert ir["ReLU6_2"]["attr"]["type"] == "relu"
    dw = ir["DepthwiseConvolution_3"]["attr"]
    assert dw["type"] == "dwconv" and dw["input_shape"] == [[1, 14, 14, 8]]
    adds = [n for n, v in ir.items() if v["attr"]["type"] == "add"]
    assert len(adds) == 2
    # the first block's residual add joins the stem's ReLU6 and the projection's BN
    assert sorted(ir[adds[0]]["inbounds"]) == ["BatchNormalization_7", "ReLU6_2"]
    fc = next(v for v in ir.values() if v["attr"]["type"] == "fc")
    assert fc["attr"]["input_shape"] == [[1, 1280]] and fc["attr"]["output_shape"] == [[1, 10]]
    assert [v["attr"]["type"] for v in ir.values()].count("gap") == 1
    # every edge is recorded on both ends
    for name, node in ir.items():
        for parent in node["inbounds"]:
            assert name in ir[parent]["outbounds"]


@pytest.mark.parametrize("arch", [ARCH_A, ARCH_SKIP])
def test_kernels_are_the_fused_mobilenet_kernels(arch):
    found = detect_kernels(tiny_space(), SHAPE, arch)
    got = []
    for kernel, layers in found:
        op = kernel["op"]
        if op == "fc":
            got.append((op, None, kernel["cin"], kernel["cout"]))
        elif op in ("add", "gap"):
            got.append((op, kernel["inputh"], kernel["cin"], kernel["cout"]))
        else:
            got.append(
                (
                    op,
                    kernel["inputh"],
                    kernel["cin"],
                    kernel["cout"],
                    kernel["ks"][1],
                    kernel["strides"][1],
                )
            )
        types = [layer.type for layer in layers]
        want = {
            "conv-bn-relu": ["Convolution", "BatchNormalization", "ReLU6"],
            "conv-bn": ["Convolution", "BatchNormalization"],
            "dwconv-bn-relu": ["DepthwiseConvolution", "BatchNormalization", "ReLU6"],
            "add": ["Add2"],
            "gap": ["GlobalAveragePooling"],
            "fc": ["Affine"],
        }[op]
        assert types == want, kernel["name"]
    assert got == expected_kernels(arch)


def test_kernel_features_are_nn_meters():
    kernels = {k["name"]: k for k, _ in detect_kernels(tiny_space(), SHAPE, ARCH_A)}
    stem = kernel_features(kernels["conv-bn-relu#1"])
    params = 8 * (3 * 3 * 1 + 1)  # cout * (k * k * cin + 1)
    flops = 2 * (28 / 2) * (28 / 2) * params
    assert stem == pytest.approx([28, 1, 8, 3, 2, flops / 2e6, params / 1e6])
    fc = kernel_features(next(k for k in kernels.values() if k["op"] == "fc"))
    flop = (2 * 1280 + 1) * 10
    assert fc == pytest.approx([1280, 10, flop / 2e6, flop / 1e6])
    # nn-Meter's predictor queries global-avgpool at input size 1 (its hasattr on a dict)
    gap = kernel_features(next(k for k in kernels.values() if k["op"] == "gap"))
    assert gap == [1.0, 1280.0]
    assert kernel_name("conv-bn") == "conv-bn-relu" and kernel_name("gap") == "global-avgpool"


# ---------------------------------------------------------------------------------------------
# Custom predictors (nn-Meter's builder) and the estimator
# ---------------------------------------------------------------------------------------------


def test_custom_predictor_predicts_the_kernel_sum(constant_predictor):
    folder, meta = constant_predictor
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [f"{k}.pkl" for k in CONSTANT_MS] + ["fusion_rules.json", PREDICTOR_META]
    )
    assert meta["batch_size"] == 1 and meta["backend"] == "tflite_cpu"
    est = NnMeterEstimator(SHAPE, predictor=str(folder))
    space = tiny_space()
    # 9 conv kernels, 4 depthwise, 2 adds, gap, fc: 2.7 + 0.8 + 0.1 + 0.04 + 0.07
    assert constant_total(ARCH_A) == pytest.approx(3.71)
    assert est.predict(space, ARCH_A) == pytest.approx(3.71, rel=1e-9)
    assert est.predict(space, ARCH_SKIP) == pytest.approx(constant_total(ARCH_SKIP), rel=1e-9)
    assert constant_total(ARCH_SKIP) == pytest.approx(3.71 - 0.6 - 0.2 - 0.05)
    # every label must be given: an estimator has no argmax of its own
    last = {"blocks/0": 1, "blocks/1": 1, "blocks/2": 2}
    assert est.predict(space, last) == pytest.approx(constant_total(last), rel=1e-9)
    assert est.details(space, last) == {"ms": pytest.approx(est.predict(space, last))}
    with pytest.raises(ValueError, match="no candidate given for choices"):
        est.predict(space, {"blocks/0": 1})


def test_expected_is_the_first_order_expansion(constant_predictor):
    folder, _ = constant_predictor
    est = NnMeterEstimator(SHAPE, predictor=str(folder))
    space = tiny_space()
    logits = random_logits(space, seed=3)
    params = logits.params
    best = {label: int(np.argmax(p.d)) for label, p in params.items()}
    base = constant_total(best)
    want, grads = base, {}
    for label, param in params.items():
        a = param.d.reshape(-1)
        p = np.exp(a - a.max()) / np.exp(a - a.max()).sum()
        deltas = np.array([constant_total({**best, label: i}) - base for i in range(len(a))])
        want += float(p @ deltas)
        grads[label] = p * (deltas - p @ deltas)  # d/da of sum_i softmax(a)_i delta_i
    value = est.expected(space, logits.distribution())
    value.forward()
    assert float(value.d) == pytest.approx(want, rel=1e-5)
    for p in params.values():
        p.grad.zero()
    value.backward()
    for label, p in params.items():
        np.testing.assert_allclose(p.g.reshape(-1), grads[label], rtol=1e-4, atol=1e-6)


def test_predictor_from_latency_table_measurements(tmp_path):
    space = tiny_space()
    table = tmp_path / "table.json"
    latency = LatencyEstimator(SHAPE, 1, table, warmup=1, repeat=3, shipped_tables=False)
    samples = measured_samples(space, SHAPE, [ARCH_A, ARCH_SKIP], latency)
    entries = json.loads(table.read_text())["runtimes"]
    (layers_ms,) = [section["layers"] for section in entries.values()]
    # every sample is one distinct kernel, its latency the sum of its functions' table entries
    by_key = {}
    for arch in (ARCH_A, ARCH_SKIP):
        for kernel, layers in detect_kernels(space, SHAPE, arch):
            ms = sum(layers_ms[layer.key]["ms"] for layer in layers)
            by_key[(kernel["op"], tuple(kernel_features(kernel)))] = ms
    assert {(s.op, s.features): s.latency_ms for s in samples} == pytest.approx(by_key)
    folder = tmp_path / "measured"
    build_predictor(samples, folder)
    est = NnMeterEstimator(SHAPE, predictor=str(folder))
    # nn-Meter's total is the sum of the kernel predictors, each within its training labels
    total = 0.0
    for kernel, _ in detect_kernels(space, SHAPE, ARCH_A):
        name = kernel_name(kernel["op"])
        model = est.loaded.kernel_predictors[name]
        pred = float(model.predict([kernel_features(kernel)])[0])
        # FastForest: scikit-learn's numbers, bit for bit
        assert isinstance(model, FastForest)
        assert pred == float(model.model.predict(np.array([kernel_features(kernel)]))[0])
        labels = [s.latency_ms for s in samples if kernel_name(s.op) == name]
        assert min(labels) - 1e-12 <= pred <= max(labels) + 1e-12
        total += pred
    assert est.predict(space, ARCH_A) == pytest.approx(total, rel=1e-9)


def test_unpredicted_kernels_are_warned_about(constant_predictor, tmp_path, caplog):
    folder, _ = constant_predictor
    partial = tmp_path / "no_add"
    shutil.copytree(folder, partial)
    (partial / "add.pkl").unlink()
    est = NnMeterEstimator(SHAPE, predictor=str(partial))
    space = tiny_space()
    with caplog.at_level(logging.WARNING, logger="nnabla_nas.estimator.nnmeter"):
        value = est.predict(space, ARCH_A)
        est.predict(space, ARCH_SKIP)
    # nn-Meter counts the two add kernels as 0 ms ...
    assert value == pytest.approx(constant_total(ARCH_A) - 2 * CONSTANT_MS["add"], rel=1e-9)
    # ... and we say so, once per kernel type, naming the kernels
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "add" in warnings[0] and "0 ms" in warnings[0] and "add#4" in warnings[0]
    assert est.unpredicted == {"add": 3}


# ---------------------------------------------------------------------------------------------
# Built-in predictors: from the data folder, never downloaded
# ---------------------------------------------------------------------------------------------


def test_missing_builtin_predictor_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError) as err:
        NnMeterEstimator(SHAPE, predictor="cortexA76cpu_tflite21", data_folder=str(tmp_path))
    msg = str(err.value)
    folder = tmp_path / "predictor" / "cortexA76cpu_tflite21"
    assert str(folder) in msg
    assert "conv-bn-relu.pkl" in msg and "fusion_rules.json" in msg and "global-avgpool.pkl" in msg
    assert "never downloads" in msg
    assert err.value.exit_code == 2
    assert not folder.exists()  # nothing created, nothing fetched
    with pytest.raises(ConfigError, match="unknown nn-Meter predictor 'pixel4'"):
        NnMeterEstimator(SHAPE, predictor="pixel4")


def test_nn_meter_download_is_disabled(tmp_path):
    nn_meter = import_nn_meter()
    import nn_meter.predictor.utils as pred_utils

    with pytest.raises(NnasError, match="never downloads"):
        pred_utils.download_from_url("https://example.invalid/x.zip", str(tmp_path))
    with pytest.raises(NnasError, match="never downloads"):
        nn_meter.download_from_url("https://example.invalid/x.zip", str(tmp_path))


def test_builtin_predictor_is_used_when_its_files_are_present(constant_predictor, tmp_path, caplog):
    """A built-in predictor's folder as nn-Meter lays it out (here filled with our pickles)."""
    folder, _ = constant_predictor
    name = "myriadvpu_openvino2019r2"  # no add and no global-avgpool predictor in nn-Meter
    target = tmp_path / "data" / "predictor" / name
    target.mkdir(parents=True)
    kernels = [
        "conv-bn-relu",
        "dwconv-bn-relu",
        "fc",
        "hswish",
        "relu",
        "se",
        "addrelu",
        "maxpool",
        "avgpool",
        "bn",
        "bnrelu",
        "channelshuffle",
    ]
    for k in kernels:
        source = folder / f"{k}.pkl" if (folder / f"{k}.pkl").exists() else folder / "add.pkl"
        shutil.copy(source, target / f"{k}.pkl")
    shutil.copy(folder / "fusion_rules.json", target / "fusion_rules.json")
    with caplog.at_level(logging.WARNING, logger="nnabla_nas.estimator.nnmeter"):
        est = NnMeterEstimator(SHAPE, predictor=name, data_folder=str(tmp_path / "data"))
        value = est.predict(tiny_space(), ARCH_A)
    assert est.loaded.folder == target and sorted(est.loaded.kernel_predictors) == sorted(kernels)
    uncovered = 2 * CONSTANT_MS["add"] + CONSTANT_MS["global-avgpool"]
    assert value == pytest.approx(constant_total(ARCH_A) - uncovered, rel=1e-9)
    assert set(est.unpredicted) == {"add", "gap"}
    assert any("gap" in r.getMessage() for r in caplog.records)
    with pytest.raises(ConfigError, match="batch size 1"):
        NnMeterEstimator(SHAPE, 4, predictor=name, data_folder=str(tmp_path / "data"))


def test_scikit_learn_0_23_pickles_load():
    """nn-Meter's published predictors are scikit-learn 0.2x forests; this one was written by
    scikit-learn 0.23.1 (data/make_sklearn0231_fixture.py) and predicts as it did there."""
    fixture = json.loads((DATA / "sklearn0231_fc_forest.json").read_text())
    assert fixture["scikit_learn"] == "0.23.1"
    model = load_kernel_predictor(DATA / "sklearn0231_fc_forest.pkl")
    np.testing.assert_allclose(model.predict(fixture["X"]), fixture["predict"], rtol=1e-12)
    with pytest.raises(ConfigError, match="cannot read nn-Meter kernel predictor"):
        load_kernel_predictor(DATA / "missing.pkl")


# ---------------------------------------------------------------------------------------------
# Registration, configuration, commands
# ---------------------------------------------------------------------------------------------


def test_registered_with_typed_options(constant_predictor):
    from nnabla_nas.config import RegularizerConfig, parse_dataclass
    from nnabla_nas.estimator.regularizer import build_regularizer

    folder, _ = constant_predictor
    assert ESTIMATORS.get("nnmeter") is NnMeterEstimator
    section = {
        "name": "NnMeterEstimator",
        "bound": 3.0,
        "weight": 0.5,
        "options": {"predictor": str(folder)},
    }
    cfg = parse_dataclass(RegularizerConfig, section, "regularizer.latency")
    assert isinstance(cfg.options, NnMeterOptions) and cfg.options.predictor == str(folder)
    reg = build_regularizer("latency", cfg, SHAPE)
    assert isinstance(reg.estimator, NnMeterEstimator)
    assert reg.value(tiny_space(), ARCH_A) == pytest.approx(constant_total(ARCH_A), rel=1e-9)
    with pytest.raises(ConfigError, match="regularizer.latency.options.predictr"):
        parse_dataclass(
            RegularizerConfig, {**section, "options": {"predictr": "x"}}, "regularizer.latency"
        )


def test_cli_exits_2_on_a_missing_builtin_predictor(tmp_path):
    cfg = tiny_mnist_config(epoch=1)
    cfg["regularizer"] = {
        "latency": {
            "name": "NnMeterEstimator",
            "bound": 1.0,
            "options": {"predictor": "adreno640gpu_tflite21", "data_folder": str(tmp_path)},
        }
    }
    exp = write_json(tmp_path / "exp.json", cfg)
    proc = run_cli(["--search", "-f", exp, "-a", "ProxylessNasSearcher", "-o", tmp_path / "out"])
    assert proc.returncode == 2, proc.stderr
    assert "adreno640gpu_tflite21" in proc.stderr and "fusion_rules.json" in proc.stderr
    assert str(tmp_path / "predictor" / "adreno640gpu_tflite21") in proc.stderr


def test_build_command(tmp_path, capsys):
    exp = write_json(tmp_path / "exp.json", tiny_mnist_config())
    out, table = tmp_path / "predictor", tmp_path / "table.json"
    args = ["nnmeter-build", "-f", str(exp), "-o", str(out), "--lookup-table", str(table)]
    assert cli_main([*args, "--architectures", "0"]) == 2
    assert "--architectures" in capsys.readouterr().err
    assert cli_main([*args, "--architectures", "2", "--warmup", "1", "--repeat", "2"]) == 0
    report = capsys.readouterr().out
    assert "nn-Meter prediction vs table sum" in report
    meta = json.loads((out / PREDICTOR_META).read_text())
    assert meta["batch_size"] == 1 and meta["lookup_table"] == str(table)
    assert {"conv-bn-relu", "dwconv-bn-relu", "fc"} <= set(meta["kernels"])
    assert table.is_file()  # the measurements are kept in the latency table
    est = NnMeterEstimator(SHAPE, predictor=str(out))
    assert est.predict(tiny_space(), ARCH_A) > 0

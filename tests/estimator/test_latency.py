"""LatencyEstimator: the traced layers, the lookup table, the expected latency and its gradient."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nnabla as nn
import nnabla.function as FN
import nnabla.functions as F
import numpy as np
import pytest

from nnabla_nas.errors import ConfigError
from nnabla_nas.estimator import LatencyEstimator, trace
from nnabla_nas.estimator.base import Layer
from nnabla_nas.estimator.latency import LatencyTable, measure_layer, robust_median
from nnabla_nas.module import softmax

from .toy import (
    SHAPE,
    Nested,
    StubClock,
    Toy,
    argmax,
    distribution,
    layer_ms,
    no_clock,
    write_table,
)

ROOT = Path(__file__).resolve().parents[2]


def test_trace_splits_fixed_part_and_candidates():
    seg = trace(Toy(), SHAPE)
    assert [layer.type for layer in seg.layers] == ["Convolution", "GlobalAveragePooling", "Affine"]
    a, b = seg.choices
    assert (a.label, b.label) == ("a", "b")
    assert [[layer.type for layer in c.layers] for c in a.candidates] == [
        ["Convolution"], ["Convolution", "ReLU"], []
    ]  # fmt: skip
    assert [[layer.type for layer in c.layers] for c in b.candidates] == [["Convolution"], []]
    conv = a.candidates[0].layers[0]
    assert conv.inputs == ((1, 4, 8, 8), (4, 4, 3, 3), (4,))
    assert conv.weights == (False, True, True)
    assert conv.key == b.candidates[0].layers[0].key  # the same layer in both choices
    assert dict(conv.args)["pad"] == (1, 1)


def test_trace_leaves_the_model_as_it_was():
    model = Toy()
    model.apply(training=True)
    model.a.rule = None
    trace(model, SHAPE)
    assert model.training and model.a.training and model.a.rule is None
    x = nn.Variable((1, *SHAPE))
    assert model(x).shape == (1, 3)  # the default (full) rule still runs


def test_each_distinct_layer_is_measured_once(tmp_path):
    clock = StubClock()
    est = LatencyEstimator(SHAPE, lookup_table=tmp_path / "t.json", warmup=1, repeat=3,
                           shipped_tables=False, timer=clock)  # fmt: skip
    model = Toy()
    keys = {layer.key for layer in trace(model, SHAPE).all_layers()}
    assert len(list(trace(model, SHAPE).all_layers())) == 7 and len(keys) == 6
    est.predict(model, argmax(model))
    assert est.measured == len(keys)
    assert clock.calls == 2 * 3 * len(keys)  # two readings per timed run
    est.predict(model, {"a": 1, "b": 0})
    est.expected(model, distribution(model))
    assert est.measured == len(keys)  # nothing measured again
    # Another estimator (another run) on the same table measures nothing.
    again = LatencyEstimator(SHAPE, lookup_table=tmp_path / "t.json", shipped_tables=False,
                             timer=no_clock)  # fmt: skip
    assert again.predict(Toy(seed=1), argmax(Toy(seed=1))) == pytest.approx(
        est.predict(model, argmax(model))
    )
    assert again.measured == 0


def test_architecture_latency_is_the_sum_over_its_layers(tmp_path):
    est = LatencyEstimator(SHAPE, shipped_tables=False, timer=StubClock(0.002), repeat=3)
    model = Toy()
    # Every layer measures 2 ms; fixed part: 3 layers.
    assert est.predict(model, {"a": 0, "b": 0}) == pytest.approx(2.0 * 5)
    assert est.predict(model, {"a": 1, "b": 1}) == pytest.approx(2.0 * 5)
    assert est.predict(model, {"a": 2, "b": 1}) == pytest.approx(2.0 * 3)
    model.a.alpha.d = np.array([0.0, 0.0, 3.0]).reshape(model.a.alpha.shape)  # argmax: skip
    assert est.predict(model, argmax(model)) == pytest.approx(2.0 * 4)
    assert est.value_range(model) == pytest.approx((6.0, 12.0))  # skip,skip .. 1x1+ReLU,conv


def test_keys_are_stable_across_processes():
    keys = sorted(layer.key for layer in trace(Toy(), SHAPE).all_layers())
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run([sys.executable, "-m", "tests.estimator.toy"], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True)  # fmt: skip
    assert json.loads(out.stdout.strip().splitlines()[-1]) == keys


def test_table_file_round_trip(tmp_path):
    path = tmp_path / "sub" / "table.json"
    est = LatencyEstimator(SHAPE, lookup_table=path, shipped_tables=False,
                           timer=StubClock(0.001), repeat=2)  # fmt: skip
    model = Toy()
    value = est.predict(model, argmax(model))
    data = json.loads(path.read_text())
    assert data["format"] == "nnabla_nas.latency_table/1"
    (section,) = data["runtimes"].values()
    assert section["context"] == "cpu:float"
    assert set(section["layers"]) == {layer.key for layer in trace(model, SHAPE).all_layers()}
    assert all(e["ms"] == pytest.approx(1.0) for e in section["layers"].values())
    table = LatencyTable(path)
    assert table.data == data
    # Saving merges with what another process wrote meanwhile.
    other = json.loads(path.read_text())
    next(iter(other["runtimes"].values()))["layers"]["Other[1]()"] = {"ms": 9.0, "runs": 1}
    path.write_text(json.dumps(other))
    est.table.save()
    merged = next(iter(json.loads(path.read_text())["runtimes"].values()))["layers"]
    assert merged["Other[1]()"]["ms"] == 9.0 and len(merged) == 7
    again = LatencyEstimator(SHAPE, lookup_table=path, timer=no_clock, shipped_tables=False)
    assert again.predict(model, argmax(model)) == value


@pytest.mark.parametrize(
    "text",
    ["{not json", "[1, 2]", '{"format": "other"}',
     '{"format": "nnabla_nas.latency_table/1", "runtimes": {"c": {"layers": {"k": {"ms": "x"}}}}}',
     '{"format": "nnabla_nas.latency_table/1", "runtimes": {"c": {"layers": {},'
     ' "calibration": {"scale": -1}}}}'],
)  # fmt: skip
def test_a_corrupt_table_is_a_config_error_naming_the_file(tmp_path, text):
    path = tmp_path / "table.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        LatencyEstimator(SHAPE, lookup_table=path)
    assert str(path) in str(err.value) and "delete it" in str(err.value)


def test_robust_median_drops_outliers():
    assert robust_median([1.0, 1.1, 0.9, 1.0, 50.0]) == (pytest.approx(1.0), 4)
    assert robust_median([2.0]) == (2.0, 1)


def test_a_rebuilt_layer_computes_what_the_original_does():
    rng = np.random.RandomState(0)
    x = nn.Variable.from_numpy_array(rng.randn(1, 4, 6, 6).astype(np.float32))
    w = nn.Variable.from_numpy_array(rng.randn(8, 4, 3, 3).astype(np.float32))
    y = F.convolution(x, w, None, pad=(1, 0), stride=(2, 1), dilation=(1, 2))
    found = []
    y.visit(found.append)
    layer = Layer.from_function(found[0], {x})
    rebuilt = getattr(FN, layer.type)(nn.get_current_context(), **layer.arguments)(x, w)
    y.forward()
    rebuilt.forward()
    np.testing.assert_allclose(rebuilt.d, y.d, rtol=1e-6)
    ms, runs = measure_layer(layer, warmup=1, repeat=5)
    assert ms > 0 and 1 <= runs <= 5


def _expected_by_hand(model, table_layers) -> float:
    seg = trace(model, SHAPE)
    total = sum(layer_ms(layer) for layer in seg.layers)
    for choice in seg.choices:
        costs = [sum(layer_ms(layer) for layer in c.layers) for c in choice.candidates]
        total += float(np.dot(softmax(choice.op.alpha.d), costs))
    return total


def test_expected_latency_and_its_gradient(tmp_path):
    model = Toy()
    path = tmp_path / "table.json"
    write_table(path, trace(model, SHAPE).all_layers())
    est = LatencyEstimator(SHAPE, lookup_table=path, timer=no_clock, shipped_tables=False)
    model.a.alpha.d = np.array([0.5, -1.0, 2.0]).reshape(model.a.alpha.shape)
    model.b.alpha.d = np.array([1.0, 0.0]).reshape(model.b.alpha.shape)
    # By hand: fixed 1.5 + 0.05 + 0.2; a: (1.5, 0.25 + 0.1, 0); b: (1.5, 0).
    pa, pb = softmax([0.5, -1.0, 2.0]), softmax([1.0, 0.0])
    hand = 1.75 + pa @ [1.5, 0.35, 0.0] + pb @ [1.5, 0.0]
    assert hand == pytest.approx(_expected_by_hand(model, None))
    e = est.expected(model, distribution(model))
    assert e.shape == ()
    e.forward()
    assert float(e.d) == pytest.approx(hand, rel=1e-6)
    for op in (model.a, model.b):
        op.alpha.grad.zero()
    e.backward()
    # Central finite differences of the forward value, logit by logit.
    for op in (model.a, model.b):
        base = np.array(op.alpha.d, copy=True)
        numeric = []
        for k in range(base.size):
            values = []
            for h in (1e-3, -1e-3):
                d = base.copy().reshape(-1)
                d[k] += h
                op.alpha.d = d.reshape(base.shape)
                values.append(_expected_by_hand(model, None))
            numeric.append((values[0] - values[1]) / 2e-3)
            op.alpha.d = base
        np.testing.assert_allclose(op.alpha.g.reshape(-1), numeric, rtol=1e-3, atol=1e-5)
    # The analytic gradient: p_i (c_i - E_choice).
    ca = np.array([1.5, 0.35, 0.0])
    np.testing.assert_allclose(model.a.alpha.g.reshape(-1), pa * (ca - pa @ ca), rtol=1e-4)


def test_expected_latency_of_nested_choices():
    model = Nested()
    est = LatencyEstimator(SHAPE, shipped_tables=False, timer=StubClock(0.001), repeat=2)
    model.outer.alpha.d = np.array([0.3, -0.2]).reshape(model.outer.alpha.shape)
    inner = model.outer.ops[0][1]
    inner.alpha.d = np.array([-0.5, 1.0]).reshape(inner.alpha.shape)
    seg = trace(model, SHAPE)
    assert [c.label for c in seg.all_choices()] == ["outer", "outer/ops/0/1"]
    # Every layer 1 ms: stem 1; outer: inner path = 1x1 conv + inner choice (1 or 0); skip 0.
    p, q = softmax([0.3, -0.2]), softmax([-0.5, 1.0])
    hand = 1.0 + p[0] * (1.0 + q[0] * 1.0)
    e = est.expected(model, distribution(model))
    e.forward()
    assert float(e.d) == pytest.approx(hand, rel=1e-6)
    assert est.predict(model, argmax(model)) == pytest.approx(
        2.0
    )  # outer argmax 'inner', inner argmax 'skip'
    assert est.predict(model, {"outer": 0, "outer/ops/0/1": 0}) == pytest.approx(3.0)


def test_calibration_scales_every_layer_and_is_kept_in_the_table(tmp_path):
    path = tmp_path / "table.json"
    model = Toy()
    write_table(path, trace(model, SHAPE).all_layers())
    est = LatencyEstimator(SHAPE, lookup_table=path, shipped_tables=False, timer=StubClock(0.004))
    archs = [{"a": 0, "b": 0}, {"a": 2, "b": 1}]
    raw = np.array([1.75 + 1.5 + 1.5, 1.75])  # the table's sums; every whole run "takes" 4 ms
    scale = float(4.0 * raw.sum() / (raw**2).sum())
    fit = est.calibrate(model, archs, rounds=1, runs=3, source="toy")
    assert fit["scale"] == pytest.approx(scale, rel=1e-5) and fit["networks"] == 2
    assert fit["mean_relative_error_raw"] == pytest.approx(np.mean(np.abs(raw - 4) / 4), abs=1e-4)
    assert est.predict(model, archs[1]) == pytest.approx(1.75 * scale)
    e = est.expected(model, distribution(model))
    e.forward()
    assert float(e.d) == pytest.approx(scale * _expected_by_hand(model, None), rel=1e-5)
    section = next(iter(json.loads(path.read_text())["runtimes"].values()))
    assert section["calibration"]["scale"] == pytest.approx(scale, rel=1e-5)
    again = LatencyEstimator(SHAPE, lookup_table=path, timer=no_clock, shipped_tables=False)
    assert again.predict(model, archs[0]) == pytest.approx(4.75 * scale, rel=1e-5)
    # A second fit (another space) makes the runtime's factor the mean of the two.
    est.timer = StubClock(0.002)
    other = est.calibrate(model, archs, rounds=1, runs=3, source="other")
    assert est.scale == pytest.approx((scale + other["scale"]) / 2, rel=1e-5)


def test_build_command_measures_the_space_once(tmp_path):
    from ..conftest import tiny_mnist_config, write_json

    exp = write_json(tmp_path / "exp.json", tiny_mnist_config())
    table = tmp_path / "table.json"
    cmd = [
        sys.executable,
        "main.py",
        "latency",
        "build",
        "-f",
        str(exp),
        "-o",
        str(table),
        "--repeat",
        "3",
        "--warmup",
        "1",
        "--calibrate",
        "2",
        "--no-shipped",
    ]
    first = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert "RuntimeWarning" not in first.stderr
    section = next(iter(json.loads(table.read_text())["runtimes"].values()))
    n = len(section["layers"])
    assert f"{n} distinct layers at batch 1" in first.stdout
    assert f"measured {n} new layers" in first.stdout and "calibrated on 2" in first.stdout
    assert all(entry["runs"] <= 3 for entry in section["layers"].values())  # --repeat 3
    assert section["calibration"]["fits"][str(exp)]["networks"] == 2
    second = subprocess.run(cmd[:-2] + ["0", "--no-shipped"], cwd=ROOT, capture_output=True,
                            text=True)  # fmt: skip
    assert second.returncode == 0 and "measured 0 new layers" in second.stdout
    bad = subprocess.run(cmd[:6] + ["-o", str(tmp_path / "exp.json")], cwd=ROOT,
                         capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 2 and "exp.json is not a latency table" in bad.stderr


def test_tables_serve_only_their_own_runtime(tmp_path):
    from nnabla_nas.estimator.latency import SHIPPED_TABLES, runtime_key, section_name

    model = Toy()
    path = tmp_path / "table.json"
    write_table(path, trace(model, SHAPE).all_layers())
    data = json.loads(path.read_text())
    (name,) = data["runtimes"]
    section = data["runtimes"].pop(name)
    section["device"] = "another cpu"
    data["runtimes"][section_name("cpu:float", "another cpu")] = section
    path.write_text(json.dumps(data))
    clock = StubClock()
    est = LatencyEstimator(SHAPE, lookup_table=path, timer=clock, repeat=2, shipped_tables=False)
    est.predict(model, argmax(model))
    assert est.measured == 6  # the other device's entries are not used
    # The shipped table covers the example spaces on the machine it was built on.
    shipped = json.loads((SHIPPED_TABLES / "example_spaces.json").read_text())
    if section_name(*runtime_key()) not in shipped["runtimes"]:
        pytest.skip("the shipped table was measured on another device")
    from nnabla_nas.config import ExperimentConfig
    from nnabla_nas.contrib import SPACES

    cfg = ExperimentConfig.from_dict(json.loads((ROOT / "examples/mnist_search.json").read_text()))
    space = SPACES.get("mobilenet")(cfg.network.space)
    est = LatencyEstimator(cfg.input_shape, timer=no_clock)
    low, high = est.value_range(space)
    assert 0 < low < high and est.measured == 0 and est.scale > 1

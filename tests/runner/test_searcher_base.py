"""The shared searcher exports (arch.h5, arch.png, TensorBoard, log table), argmax evaluation and
results, through a real ``run()`` of ProxylessNasSearcher on the toy space."""

from __future__ import annotations

import json
import logging
import shutil
import struct
from pathlib import Path

import nnabla as nn
import numpy as np
import pytest
from searcher_toy import NAMES, ToySpace, make_searcher, toy_data

from nnabla_nas.genotype import load_genotype
from nnabla_nas.runner.searcher import export
from nnabla_nas.runner.searcher.export import entropy

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def clean_parameter_scope():
    nn.clear_parameters()
    yield
    nn.clear_parameters()


def read_events(folder: Path) -> list:
    """Every event of the TensorBoard files in ``folder`` (TFRecord: length u64, its crc u32,
    the data, the data's crc u32)."""
    from tensorboardX.proto.event_pb2 import Event

    events = []
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data, pos = path.read_bytes(), 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos : pos + 8])
            event = Event()
            event.ParseFromString(data[pos + 12 : pos + 12 + length])
            events.append(event)
            pos += 12 + length + 4
    return events


def scalars(events: list) -> dict[str, dict[int, float]]:
    out: dict[str, dict[int, float]] = {}
    for ev in events:
        for v in ev.summary.value:
            if v.HasField("simple_value"):
                out.setdefault(v.tag, {})[ev.step] = v.simple_value
    return out


def cross_entropy(logits: np.ndarray, y: np.ndarray) -> float:
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(y)), y[:, 0]].mean())


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz's dot binary is not installed")
def test_run_writes_the_searcher_outputs(tmp_path, caplog):
    space = ToySpace(0)
    s = make_searcher(space, str(tmp_path), epoch=2, seed=0)
    with caplog.at_level(logging.INFO, logger="nnabla_nas"):
        summary = s.run()
    alpha = s.logits.params["choice"]
    probs = s.logits.probabilities()["choice"]
    best = NAMES[int(np.argmax(probs))]

    genotype = load_genotype(tmp_path / "arch.h5", expected_space="toy")
    assert genotype.choices == {"choice": best}
    assert genotype.extra["epoch"] == 2
    np.testing.assert_array_equal(genotype.logits["choice/alpha"], alpha.d)
    nn.load_parameters(str(tmp_path / "arch.h5"))  # nnabla's own reader
    np.testing.assert_array_equal(nn.get_parameters()["choice/alpha"].d, alpha.d)
    nn.clear_parameters()

    png = (tmp_path / "arch.png").read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) > 100

    events = read_events(tmp_path / "tensorboard")
    sc = scalars(events)
    for name, p in zip(NAMES, probs):
        assert sc[f"arch/choice/{name}"][2] == pytest.approx(p, abs=1e-6)
    assert sc["arch_entropy/choice"][2] == pytest.approx(-(probs * np.log(probs)).sum(), abs=1e-6)
    assert sc["arch_entropy/mean"][2] == pytest.approx(sc["arch_entropy/choice"][2])
    assert set(sc["arch/choice/linear"]) == {1, 2}
    assert len(sc["train/arch_loss"]) == 8  # one per step: 2 epochs of 4 batches
    images: dict[str, list[int]] = {}
    for ev in events:
        for v in ev.summary.value:
            if v.HasField("image"):
                assert v.image.encoded_image_string.startswith(PNG_MAGIC)
                images.setdefault(v.tag, []).append(ev.step)
    assert images == {"architecture/arch.png": [1, 2], "architecture/probabilities": [1, 2]}
    # one event file for the whole run, holding the custom-scalars layout once: a chart of the
    # choice's candidates (tags named by its label) and the run's error chart
    assert len(list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))) == 1
    layouts = [v for ev in events for v in ev.summary.value if v.tag == "custom_scalars__config__"]
    assert len(layouts) == 1
    from tensorboardX.proto.layout_pb2 import Layout

    layout = Layout()
    layout.ParseFromString(layouts[0].tensor.string_val[0])
    charts = {c.title: {ch.title: list(ch.multiline.tag) for ch in c.chart}
              for c in layout.category}  # fmt: skip
    assert charts["architecture probabilities"] == {
        "choice": [f"^arch/choice/{name}$" for name in NAMES]
    }
    assert charts["run"]["error (train, valid, test)"] == [
        f"^epoch/{split}_error$" for split in ("train", "valid", "test")
    ]

    results = json.loads((tmp_path / "results.json").read_text())
    assert results["architecture"] == {"choice": best} == summary["architecture"]
    for name, p in zip(NAMES, probs):
        assert results["arch_probabilities"]["choice"][name] == pytest.approx(p)
    assert any("architecture after epoch 2" in r.getMessage() for r in caplog.records)


def _exporter(s):
    return s.loop().exporter


def _export(s, values):
    s.logits.params["choice"].d = np.array(values).reshape(3, 1, 1, 1, 1)
    return s.export()


def test_epoch_table_marks_changed_choices(tmp_path, caplog):
    s = make_searcher(ToySpace(0), str(tmp_path))
    exporter = _exporter(s)
    with caplog.at_level(logging.INFO, logger="nnabla_nas"):
        exporter.epoch_end(_export(s, [1.0, 0.0, 0.0]), 1, {"valid_error": 0.5}, {})
        first = caplog.records[-1].getMessage()
        exporter.epoch_end(_export(s, [0.0, 0.0, 2.0]), 2, {"valid_error": 0.4}, {})
        second = caplog.records[-1].getMessage()
        exporter.epoch_end(s.export(), 3, {"valid_error": 0.4}, {})
        third = caplog.records[-1].getMessage()
    p0 = np.exp(1) / (np.exp(1) + 2)
    row = first.splitlines()[-1]
    assert row.split()[:3] == ["choice", "zero", f"{p0:.3f}"] and not row.endswith("*")
    row = second.splitlines()[-1]
    p2 = np.exp(2) / (np.exp(2) + 2)
    assert row.split()[:3] == ["choice", "linear", f"{p2:.3f}"] and row.endswith("*")
    row = third.splitlines()[-1]
    assert not row.endswith("*")
    assert load_genotype(tmp_path / "arch.h5").choices == {"choice": "linear"}


def test_missing_dot_skips_the_drawing_with_a_warning(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(export.shutil, "which", lambda name: None)
    s = make_searcher(ToySpace(0), str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="nnabla_nas"):
        _exporter(s).epoch_end(s.export(), 1, {}, {})
        _exporter(s).epoch_end(s.export(), 2, {}, {})
    assert not (tmp_path / "arch.png").exists()
    assert (tmp_path / "arch.h5").exists()
    warnings = [r for r in caplog.records if "dot" in r.getMessage()]
    assert len(warnings) == 1 and "apt-get install graphviz" in warnings[0].getMessage()


def test_evaluation_runs_the_argmax_and_restores_rules(tmp_path):
    space = ToySpace(0)
    s = make_searcher(space, str(tmp_path))
    op = space.choice
    s.logits.params["choice"].d = np.array([0.1, -1.0, 0.4]).reshape(3, 1, 1, 1, 1)  # linear

    def custom(mixed, *inputs):
        return mixed.ops[0](*inputs)

    op.rule = custom
    with s.evaluating():
        assert op.rule is not custom
    assert op.rule is custom
    op.rule = None

    x, y = toy_data(32, seed=1)
    metrics = s.ctx.steps.evaluate(s.data.valid, "valid", 8, s.evaluating)
    lin, head = op.ops[2], space.head
    logits = (x @ lin._W.d + lin._b.d) @ head._W.d + head._b.d
    assert metrics["loss"] == pytest.approx(cross_entropy(logits, y), rel=1e-5)
    assert metrics["error"] == pytest.approx(float((logits.argmax(1) != y[:, 0]).mean()))
    assert op.rule is None and op.active_index == 2


def test_results_and_entropy(tmp_path):
    s = make_searcher(ToySpace(0), str(tmp_path))
    s.logits.params["choice"].d = np.log(np.array([0.2, 0.3, 0.5])).reshape(3, 1, 1, 1, 1)
    res = _exporter(s).results(s.export())
    assert res["architecture"] == {"choice": "linear"}
    assert res["arch_probabilities"]["choice"] == pytest.approx(
        {"zero": 0.2, "mean": 0.3, "linear": 0.5}
    )
    assert entropy(np.array([0.5, 0.5, 0.0])) == pytest.approx(np.log(2))


def test_tensorboard_tags_replace_illegal_characters(tmp_path, caplog):
    space = ToySpace(0)
    space.choice.names = ["zero", "MB1 1x1", "linear"]
    s = make_searcher(space, str(tmp_path))
    with caplog.at_level(logging.INFO):
        _exporter(s).epoch_end(s.export(), 1, {}, {})
        s.loop().monitor.flush()
    assert not [r for r in caplog.records if "illegal" in r.getMessage()]
    sc = scalars(read_events(tmp_path / "tensorboard"))
    assert sc["arch/choice/MB1_1x1"][1] == pytest.approx(1 / 3)
    assert export.tag("arch/blocks/3/MB6 3x3(a)") == "arch/blocks/3/MB6_3x3_a_"

"""The console side of a run: readable figures, log lines through tqdm, the evaluation bar, the
step line's learning rate and the CLI's end-of-run summary."""

from __future__ import annotations

import io
import logging

import pytest

from nnabla_nas.cli.summary import run_summary
from nnabla_nas.runner.monitor import Progress, TqdmHandler, readable


@pytest.mark.parametrize(
    "value, text",
    [
        (2236682, "2,236,682"),
        (2236682.0, "2,236,682"),
        (497376.25, "497,376.2"),
        (1234.56, "1,234.6"),
        (12.3456, "12.35"),
        (0.15234, "0.1523"),
        (0.0001234567, "0.0001235"),
        (1.2e-5, "0.000012"),
        (-3.5e-6, "-0.0000035"),
        (0.0, "0"),
        (float("nan"), "nan"),
    ],
)
def test_readable_numbers_have_no_scientific_notation(value, text):
    assert readable(value) == text


def test_log_lines_go_through_tqdm_write_above_the_bar(monkeypatch):
    from tqdm import tqdm

    written = []
    monkeypatch.setattr(tqdm, "write", classmethod(lambda cls, s, file=None: written.append(s)))
    stream = io.StringIO()
    handler = TqdmHandler(stream)
    handler.setFormatter(logging.Formatter("[%(levelname)s] %(message)s"))
    log = logging.getLogger("test_monitor.tqdm")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("epoch %d", 3)
    finally:
        log.removeHandler(handler)
    assert written == ["[WARNING] epoch 3"]
    assert stream.getvalue() == ""  # nothing written past tqdm


def test_log_line_during_a_bar_is_on_its_own_line():
    stream = io.StringIO()
    handler = TqdmHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    from tqdm import tqdm

    with tqdm(total=3, file=stream, ascii=True) as bar:
        bar.update(1)
        handler.emit(record)
        bar.update(1)
    lines = stream.getvalue().replace("\r", "\n").splitlines()
    assert "hello" in lines  # a whole line, not glued to the bar's text


def test_progress_yields_the_loader_and_keeps_its_attributes():
    class Loader(list):
        batch_size = 7

    loader = Loader([1, 2, 3])
    progress = Progress(loader, "valid", enabled=False)
    assert list(progress) == [1, 2, 3] and len(progress) == 3
    assert progress.batch_size == 7


def test_step_line_shows_the_current_learning_rate_and_the_means_of_the_rest():
    from types import SimpleNamespace

    from nnabla_nas.runner.loop import Loop

    loop = SimpleNamespace(state=SimpleNamespace(step=4))
    sums = {"loss": 2.0, "error": 1.0, "lr": 0.1 + 0.09 + 0.08 + 0.07}
    text = Loop._step_text(loop, sums, {"loss": 0.4, "error": 0.25, "lr": 0.07})
    assert text == "loss 0.5000 error 0.2500 lr 0.07"


RESULTS = {
    "algorithm": "DartsSearcher",
    "search_space": "darts",
    "epochs": 1,
    "steps": 62,
    "wall_time_s": 180.0,
    "architecture": {"normal/edge_2_0": "max_pool_3x3", "normal/edge_2_1": "sep_conv_3x3"},
    "arch_probabilities": {"normal/edge_2_0": {"max_pool_3x3": 0.4, "skip_connect": 0.6}},
    "final": {"test_error": 0.156, "valid_error": 0.16},
    "best": {"epoch": 1, "valid_error": 0.152, "test_error": 0.156},
    "num_parameters": 47146,
    "hardware": {"flops_macs": 497376.0, "latency_ms": 0.0000125},
}


def test_summary_names_architecture_metrics_estimates_and_outputs(tmp_path):
    for name in ("arch.h5", "arch.json", "results.json", "log.txt"):
        (tmp_path / name).write_text("x")
    (tmp_path / "tensorboard").mkdir()
    lines = run_summary(RESULTS, tmp_path).splitlines()
    assert lines == [
        "finished: DartsSearcher on darts, 1 epoch (62 steps) in 3.0 min",
        "  architecture: normal/edge_2_0 max_pool_3x3 (0.40), normal/edge_2_1 sep_conv_3x3",
        "  test error 15.60% (final epoch); best valid error 15.20% at epoch 1 (test 15.60%)",
        "  estimates: 47,146 parameters, flops_macs 497,376, latency_ms 0.0000125",
        f"  outputs in {tmp_path}: arch.h5 arch.json results.json log.txt "
        f"tensorboard/ (tensorboard --logdir {tmp_path})",
        f"  next: retrain it with -a Trainer --set network.genotype={tmp_path / 'arch.h5'}",
    ]


def test_summary_of_a_training_points_to_the_export(tmp_path):
    (tmp_path / "weights.h5").write_text("x")
    results = {"algorithm": "Trainer", "search_space": "mobilenet", "epochs": 2, "steps": 10,
               "wall_time_s": 12.4, "final": {"test_error": 0.5}}  # fmt: skip
    lines = run_summary(results, tmp_path).splitlines()
    assert lines[0] == "finished: Trainer on mobilenet, 2 epochs (10 steps) in 12 s"
    assert lines[1] == "  test error 50.00% (final epoch)"
    assert lines[-1] == f"  next: nnabla-nas export -o {tmp_path} --format onnx"

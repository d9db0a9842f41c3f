"""Every documented refusal: exit code 2, one line naming the key or file, nothing written."""

from __future__ import annotations

import copy

import pytest

from nnabla_nas.cli import main
from tests.conftest import tiny_mnist_config, write_json


def _set(cfg: dict, path: str, value) -> dict:
    cfg = copy.deepcopy(cfg)
    node = cfg
    keys = path.split(".")
    for k in keys[:-1]:
        node = node[k]
    if value is _DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return cfg


_DELETE = object()
BASE = tiny_mnist_config()
FIXED = tiny_mnist_config(fixed=True)
SUPERNET = BASE

# (id, config transformation, extra CLI args, algorithm, substrings the message must contain)
CASES = [
    (
        "unknown key",
        lambda c: {**c, "epochs": 3},
        [],
        "Trainer",
        ["epochs", "did you mean 'epoch'"],
    ),
    (
        "typo nested",
        lambda c: _set(c, "network.setings", [[8, 1, 1]]),
        [],
        "Trainer",
        ["network.setings", "settings"],
    ),
    ("wrong type", lambda c: {**c, "epoch": "ten"}, [], "Trainer", ["epoch", "integer"]),
    (
        "wrong nested type",
        lambda c: _set(c, "network.width_mult", "half"),
        [],
        "Trainer",
        ["network.width_mult", "number"],
    ),
    (
        "mini does not divide",
        lambda c: {**c, "mini_batch_train": 5},
        [],
        "Trainer",
        ["mini_batch_train", "32"],
    ),
    (
        "train_portion 0",
        lambda c: {**c, "train_portion": 0},
        [],
        "ProxylessNasSearcher",
        ["train_portion", "between 0 and 1"],
    ),
    (
        "train_portion 1.5",
        lambda c: {**c, "train_portion": 1.5},
        [],
        "ProxylessNasSearcher",
        ["train_portion"],
    ),
    (
        "unknown space",
        lambda c: _set(c, "network.search_space", "mobilenett"),
        [],
        "Trainer",
        ["network.search_space", "mobilenet"],
    ),
    ("unknown algorithm", lambda c: c, [], "Foo", ["-a", "Trainer", "ProxylessNasSearcher"]),
    (
        "unknown solver",
        lambda c: _set(c, "optimizer.train.solver.name", "Sdg"),
        [],
        "Trainer",
        ["optimizer.train.solver", "Sgd", "Momentum"],
    ),
    (
        "unknown solver arg",
        lambda c: _set(c, "optimizer.train.solver.lrr", 0.1),
        [],
        "Trainer",
        ["optimizer.train.solver.lrr", "lr"],
    ),
    (
        "unknown optimizer section",
        lambda c: _set(c, "optimizer.trian", c["optimizer"]["train"]),
        [],
        "Trainer",
        ["optimizer.trian", "train", "valid", "warmup"],
    ),
    (
        "missing dataset folder",
        lambda c: {**c, "dataset": "csv", "data_dir": "/nonexistent/x"},
        [],
        "Trainer",
        ["/nonexistent/x"],
    ),
    (
        "unknown dataset",
        lambda c: {**c, "dataset": "mnits"},
        [],
        "Trainer",
        ["dataset", "mnist", "cifar10"],
    ),
    (
        "genotype missing",
        lambda c: _set(c, "network.genotype", "/nonexistent/arch.h5"),
        [],
        "Trainer",
        ["/nonexistent/arch.h5"],
    ),
    (
        "bad candidate",
        lambda c: _set(c, "network.candidates", ["MB6 3x4"]),
        [],
        "Trainer",
        ["network.candidates", "MB6 3x4"],
    ),
    ("bad input_shape", lambda c: {**c, "input_shape": [1, 28]}, [], "Trainer", ["input_shape"]),
    ("negative epoch", lambda c: {**c, "epoch": -1}, [], "Trainer", ["epoch", ">= 0"]),
    (
        "unknown searcher option",
        lambda c: {**c, "searcher": {"estimatr": "gradient"}},
        [],
        "ProxylessNasSearcher",
        ["searcher.estimatr", "estimator"],
    ),
    (
        "bad estimator",
        lambda c: {**c, "searcher": {"estimator": "magic"}},
        [],
        "ProxylessNasSearcher",
        ["searcher.estimator", "gradient", "reinforce"],
    ),
    (
        "--set wrong type",
        lambda c: c,
        ["--set", "batch_size_train=abc"],
        "Trainer",
        ["batch_size_train", "integer"],
    ),
    ("--search with Trainer", lambda c: c, ["--search"], "Trainer", ["--search", "Trainer"]),
    ("unknown flag", lambda c: c, ["--epochs", "3"], "Trainer", ["--epochs"]),
    ("bad context", lambda c: c, ["-c", "tpu"], "Trainer", ["tpu", "cpu", "cudnn"]),
    (
        "Trainer on a supernet",
        lambda c: SUPERNET,
        [],
        "Trainer",
        ["network.genotype", "open choices"],
    ),
    (
        "searcher on a fixed network",
        lambda c: FIXED,
        [],
        "ProxylessNasSearcher",
        ["network.candidates", "no choice"],
    ),
    (
        "network not an object",
        lambda c: {**c, "network": "mobilenet"},
        [],
        "Trainer",
        ["network", "object"],
    ),
]


@pytest.mark.parametrize("name,transform,extra,algorithm,needles", CASES, ids=[c[0] for c in CASES])
def test_bad_input_exits_2_naming_the_key(
    tmp_path, capsys, name, transform, extra, algorithm, needles
):
    base = FIXED if algorithm == "Trainer" else BASE
    cfg_path = write_json(tmp_path / "exp.json", transform(copy.deepcopy(base)))
    out = tmp_path / "out"
    code = main(["-f", str(cfg_path), "-a", algorithm, "-o", str(out), *extra])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    for needle in needles:
        assert needle in err, (needle, err)
    assert "Traceback" not in err
    assert not out.exists(), "nothing may be written on bad input"


def test_unreadable_json_names_the_file(tmp_path, capsys):
    path = tmp_path / "broken.json"
    path.write_text('{"epoch": 1,,}')
    code = main(["-f", str(path), "-a", "Trainer", "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "broken.json" in err and "not valid JSON" in err and "line 1" in err


def test_missing_experiment_file(tmp_path, capsys):
    code = main(["-f", str(tmp_path / "nope.json"), "-a", "Trainer", "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "nope.json" in err


def test_previous_run_is_not_overwritten(tmp_path, capsys):
    cfg_path = write_json(tmp_path / "exp.json", FIXED)
    out = tmp_path / "out"
    out.mkdir()
    (out / "config.json").write_text("{}")
    code = main(["-f", str(cfg_path), "-a", "Trainer", "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "--overwrite" in err and str(out) in err
    assert (out / "config.json").read_text() == "{}"


def test_help_lists_algorithms_and_spaces(capsys):
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for name in ("Trainer", "ProxylessNasSearcher", "mobilenet", "--search", "--set"):
        assert name in text

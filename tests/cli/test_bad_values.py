"""Values that pass the types but not the ranges (issue 17, items 1 to 4 and 6): each is refused
at the config boundary with exit code 2, one line naming the key, and nothing written."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import pytest

from nnabla_nas.cli import main
from nnabla_nas.parsing import MAX_JSON_DEPTH
from tests.conftest import ROOT, tiny_mnist_config, write_json

SEARCH = tiny_mnist_config()
FIXED = tiny_mnist_config(fixed=True)
LATENCY = {"name": "LatencyEstimator", "weight": 0.1, "bound": 1.0}


def _with(cfg: dict, path: str, value) -> dict:
    cfg = copy.deepcopy(cfg)
    *parents, last = path.split(".")
    node = cfg
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return cfg


# (id, experiment, extra CLI args, substrings of the one line on stderr)
CASES = [
    ("seed -1", FIXED, ["--seed", "-1"], ["seed", "[0, 4294967295]", "-1"]),
    ("seed 2**32", FIXED, ["--set", "seed=4294967296"], ["seed", "4294967296"]),
    ("width_mult Infinity", FIXED, ["--set", "network.width_mult=Infinity"],
     ["--set", "Infinity", "finite"]),
    ("width_mult 1e400", FIXED, ["--set", "network.width_mult=1e400"], ["--set", "1e400"]),
    ("num_classes 1e12", _with(FIXED, "network.num_classes", 10**12), [],
     ["network.num_classes", "memory"]),
    ("batch beyond memory", {**FIXED, "batch_size_train": 10**12, "mini_batch_train": 10**12}, [],
     ["batch_size_train", "memory"]),
    ("beta2 1.5", _with(SEARCH, "optimizer.valid.solver.beta2", 1.5), [],
     ["optimizer.valid.solver.beta2", "in [0, 1)", "1.5"]),
    ("Adam eps 0", _with(SEARCH, "optimizer.valid.solver.eps", 0.0), [],
     ["optimizer.valid.solver.eps", "> 0"]),
    ("momentum -0.5", _with(FIXED, "optimizer.train.solver.momentum", -0.5), [],
     ["optimizer.train.solver.momentum", "in [0, 1)"]),
    ("latency weight NaN", _with(SEARCH, "regularizer.latency", LATENCY),
     ["--set", "regularizer.latency.weight=NaN"], ["--set", "NaN"]),
    ("latency weight -1", _with(SEARCH, "regularizer.latency", {**LATENCY, "weight": -1}), [],
     ["regularizer.latency.weight", ">= 0"]),
    ("lookup table not writable",
     _with(SEARCH, "regularizer.latency", {**LATENCY, "lookup_table": "/proc/nnas/t.json"}), [],
     ["regularizer.latency.lookup_table", "/proc/nnas/t.json", "cannot be written"]),
    ("weight_decay NaN", FIXED, ["--set", "optimizer.train.weight_decay=NaN"], ["--set", "NaN"]),
    ("weight_decay Infinity", _with(FIXED, "optimizer.train.weight_decay", 1e400), [],
     ["-f", "holds Infinity"]),
    ("weight_decay -1", _with(FIXED, "optimizer.train.weight_decay", -1e-4), [],
     ["optimizer.train.weight_decay", ">= 0"]),
    ("grad_clip NaN", _with(FIXED, "optimizer.train.grad_clip", float("nan")), [], ["-f", "NaN"]),
    ("grad_clip 0", _with(FIXED, "optimizer.train.grad_clip", 0.0), [],
     ["optimizer.train.grad_clip", "> 0"]),
    ("aux_weight NaN", {**FIXED, "aux_weight": float("nan")}, [], ["-f", "NaN"]),
    ("aux_weight -1", {**FIXED, "aux_weight": -1.0}, [], ["aux_weight", ">= 0"]),
    ("cosine eta_min -1", _with(FIXED, "optimizer.train.lr_scheduler", {"name": "cosine",
                                                                       "eta_min": -1.0}), [],
     ["optimizer.train.lr_scheduler.eta_min", ">= 0"]),
    ("device_id -1", {**FIXED, "device_id": -1}, [], ["device_id", ">= 0"]),
    ("mini-batch check in O(1)", {**FIXED, "batch_size_train": 100000000001,
                                  "mini_batch_train": 2}, [],
     ["mini_batch_train", "must divide", "100000000000 or 100000000002"]),
    ("--set empty key", FIXED, ["--set", ".epoch..=2"], ["--set", "empty key"]),
    ("--set stray character", FIXED, ["--set", "epo ch=2"], ["--set", "'epo ch'"]),
]  # fmt: skip


@pytest.mark.parametrize("name, cfg, extra, needles", CASES, ids=[c[0] for c in CASES])
def test_bad_value_exits_2_naming_the_key(tmp_path, capsys, name, cfg, extra, needles):
    algorithm = "Trainer" if cfg is FIXED or "candidates" in cfg["network"] and len(
        cfg["network"]["candidates"]) == 1 else "ProxylessNasSearcher"  # fmt: skip
    exp = write_json(tmp_path / "exp.json", cfg)
    out = tmp_path / "out"
    code = main(["-f", str(exp), "-a", algorithm, "-o", str(out), *extra])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    for needle in needles:
        assert needle in err, (needle, err)
    assert not out.exists(), "nothing may be written on bad input"


def _refused_text(tmp_path, capsys, text: str) -> str:
    exp = tmp_path / "exp.json"
    exp.write_text(text)
    out = tmp_path / "out"
    code = main(["-f", str(exp), "-a", "Trainer", "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and not out.exists(), err
    return err


def test_duplicate_keys_are_refused(tmp_path, capsys):
    text = json.dumps(FIXED, indent=1).replace('"epoch": 1,', '"epoch": 1, "epoch": 3,')
    err = _refused_text(tmp_path, capsys, text)
    assert "-f" in err and "gives the key 'epoch' twice" in err


def test_deep_nesting_is_refused_without_recursion(tmp_path, capsys):
    err = _refused_text(tmp_path, capsys, "[" * 100_000 + "]" * 100_000)
    assert f"100000 levels deep; at most {MAX_JSON_DEPTH}" in err


def test_empty_output_folder_is_refused(tmp_path, capsys, monkeypatch):
    here = tmp_path / "cwd"
    here.mkdir()
    monkeypatch.chdir(here)
    exp = write_json(tmp_path / "exp.json", FIXED)
    assert main(["-f", str(exp), "-a", "Trainer", "-o", ""]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: -o: empty output folder") and len(err.splitlines()) == 1
    assert list(here.iterdir()) == []


def test_a_refusal_prints_one_line_without_nnabla_start_up_line(tmp_path):
    """Without tests/nnabla.conf (which hides nnabla's logger), the command line itself keeps
    nnabla's "Initializing CPU extension..." off stderr."""
    exp = write_json(tmp_path / "exp.json", FIXED)
    env = {k: v for k, v in os.environ.items() if k != "NNABLA_CONFIG_FILE_PATH"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "-f", str(exp), "-a", "Trainer", "-o",
         str(tmp_path / "out"), "--seed", "-1"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        "error: seed: must be in [0, 4294967295] (numpy's generators take 32-bit seeds), got -1"
    ]
    assert proc.stdout == ""

"""Kill-and-resume of the one-shot searchers (ENAS, random search): a run killed by SIGKILL and
resumed with ``--resume`` ends bit-identical to the uninterrupted run with the same seed (the
tiny digits runs of ``resume_runs.py``: one warm-up epoch and two epochs of 5 steps)."""

from __future__ import annotations

import json
import signal

import pytest
from resume_runs import (
    assert_same_arrays,
    experiment,
    final_params,
    h5_arrays,
    h5_attrs,
    run,
    write_mnist_idx,
)

from tests.events import read_scalars

#: kind -> (algorithm, searcher section)
SEARCHERS = {
    "enas": ("EnasSearcher", {"lstm_size": 8, "controller_steps": 2, "num_samples": 2,
             "num_final_samples": 3, "marginal_samples": 5, "bn_recalibration_batches": 1}),
    "random": ("RandomSearcher", {"sampling": "fair", "num_candidates": 3,
               "bn_recalibration_batches": 1, "evaluate_every": 1}),
}  # fmt: skip


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_mnist_idx(tmp_path_factory.mktemp("digits"))


def _start(tmp, kind, data_dir, out, kill="none"):
    algorithm, section = SEARCHERS[kind]
    _, cfg = experiment("gradient", data_dir)  # the tiny mobilenet search, dropout included
    cfg["searcher"] = section
    path = tmp / f"{out.name}.json"
    path.write_text(json.dumps(cfg))
    return run(["-f", path, "-a", algorithm, "-o", out], kill=kill)


@pytest.mark.parametrize(
    "kind, kill",
    [
        # epoch 2, step 1: the weight step done, its architecture step not; resumed after a
        # controller phase (controller, Adam, baseline, reading position restored)
        ("enas", "update:11"),
        ("random", "update:13"),  # resumed after the first candidate evaluation
    ],
)
def test_killed_one_shot_run_resumes_exactly(tmp_path, data_dir, kind, kill):
    ref = tmp_path / "ref"
    proc = _start(tmp_path, kind, data_dir, ref)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = tmp_path / "run"
    proc = _start(tmp_path, kind, data_dir, out, kill=kill)
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    assert not (out / "results.json").exists()
    proc = run(["--resume", "-o", out])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "resumed from" in (out / "log.txt").read_text()
    _assert_same_run(out, ref)
    res, ref_res = (json.loads((d / "results.json").read_text()) for d in (out, ref))
    keys = ("controller_phases", "final_candidates") if kind == "enas" else ("candidates",)
    for key in keys:
        assert res[key] == ref_res[key] and res[key], key
    assert res["architecture"] == ref_res["architecture"]


def _assert_same_run(out, ref):
    """``resume_runs.assert_same_run`` for an ``arch.h5`` without arrays (these spaces export
    the genotype alone: its attributes are compared)."""
    assert h5_attrs(out / "arch.h5") == h5_attrs(ref / "arch.h5")
    assert_same_arrays(h5_arrays(out / "weights.h5"), h5_arrays(ref / "weights.h5"), "weights")
    assert_same_arrays(final_params(out), final_params(ref), "checkpoint params.h5")
    res, ref_res = (json.loads((d / "results.json").read_text()) for d in (out, ref))
    assert res["steps"] == ref_res["steps"] and res["history"] == ref_res["history"]
    scalars, ref_scalars = read_scalars(out / "tensorboard"), read_scalars(ref / "tensorboard")
    for tag in ("train/loss", "warmup/loss", "epoch/valid_error"):
        assert scalars.get(tag) == ref_scalars.get(tag) and scalars.get(tag), tag
    assert not [p.name for p in out.rglob(".*.tmp*")]

"""The experiment's outputs read back with their real readers, resume, and refused input.

These runs execute trials in the test process (``workers=0``); the same experiment on Dask
workers is in ``test_dask.py``.
"""

from __future__ import annotations

import json
import shutil
import socket

import pytest
from PIL import Image

from nnabla_nas.errors import ConfigError
from nnabla_nas.genotype import load_genotype
from nnabla_nas.trials import (
    Constraint,
    EvolutionSearcher,
    Objective,
    RandomTrials,
    SearchSpace,
    TableEvaluator,
    run_experiment,
)
from nnabla_nas.trials.journal import Journal

from ..events import read_image_tags, read_scalars
from .toy import toy_table

TABLE = toy_table(4, 3)
SPACE = TABLE.space()


def evolution(seed: int = 0) -> EvolutionSearcher:
    return EvolutionSearcher(SPACE, seed, EvolutionSearcher.Config(6, 3))


def run(output, budget=20, seed=0, **kw):
    return run_experiment(SPACE, evolution(seed), TableEvaluator(TABLE), output, budget,
                          workers=0, **kw)  # fmt: skip


def dominated(r, others):
    return any(o.value("flops") <= r.value("flops") and o.value("acc") >= r.value("acc")
               and (o.value("flops"), o.value("acc")) != (r.value("flops"), r.value("acc"))
               for o in others)  # fmt: skip


def test_outputs_read_back(tmp_path):
    res = run(tmp_path, budget=20, window=2)
    records = res.records
    assert [r.trial for r in records] == list(range(20))
    assert Journal(tmp_path / "trials.jsonl").read() == sorted(records, key=lambda r: r.trial)
    best = max(records, key=lambda r: (r.score, -r.trial))
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["best"]["trial"] == best.trial == res.best.trial
    assert results["best"]["genotype"] == best.genotype and results["evaluated"] == 20
    assert results["strategy"]["name"] == "EvolutionSearcher" and results["window"] == 2
    # the Pareto front: exactly the non-dominated trials
    front = [r.trial for r in records if not dominated(r, records)]
    assert results["pareto"]["cost"] == "flops"
    assert sorted(results["pareto"]["trials"]) == sorted(front)
    genotype = load_genotype(tmp_path / "arch.h5", expected_space="toy")
    assert dict(genotype.choices) == best.genotype and genotype.extra["trial"] == best.trial
    assert genotype.extra["acc"] == pytest.approx(best.scores["acc"])
    with Image.open(tmp_path / "pareto.png") as png:
        assert png.format == "PNG" and png.size[0] >= 400
    scalars = read_scalars(tmp_path / "tensorboard")
    steps, values = zip(*sorted(scalars["trial/score"]))
    assert steps == tuple(range(20)) and values == pytest.approx([r.score for r in records])
    assert [v for _, v in sorted(scalars["best/score"])][-1] == pytest.approx(best.score)
    assert "pareto" in read_image_tags(tmp_path / "tensorboard")
    header = json.loads((tmp_path / "experiment.json").read_text())
    assert header["space"] == SPACE.to_dict() and header["strategy"]["seed"] == 0


def test_resume_after_a_kill_replays_and_completes(tmp_path):
    ref = run(tmp_path / "ref", budget=24, window=3)
    out = tmp_path / "killed"
    out.mkdir()
    shutil.copy(tmp_path / "ref" / "experiment.json", out)
    lines = (tmp_path / "ref" / "trials.jsonl").read_text().splitlines()
    # a driver killed with trials 0..13 and 15 recorded and a record half-written
    kept = [ln for ln in lines if json.loads(ln)["trial"] <= 13 or json.loads(ln)["trial"] == 15]
    (out / "trials.jsonl").write_text("\n".join(kept) + "\n" + lines[14][:30])
    res = run(out, budget=24, resume=True)
    assert [r.architecture for r in res.records] == [r.architecture for r in ref.records]
    recorded = [r.trial for r in Journal(out / "trials.jsonl").read()]
    assert sorted(recorded) == list(range(24))  # each trial once, the torn line gone
    assert len((out / "trials.jsonl").read_text().splitlines()) == 24
    steps = [s for s, _ in read_scalars(out / "tensorboard")["trial/score"]]
    assert sorted(steps) == list(range(24))  # TensorBoard rebuilt from the log, no repeats


def test_resume_with_a_larger_budget(tmp_path):
    run(tmp_path / "a", budget=10)
    more = run(tmp_path / "a", budget=16, resume=True)
    straight = run(tmp_path / "b", budget=16)
    assert [r.architecture for r in more.records] == [r.architecture for r in straight.records]


def test_hard_constraint_keeps_the_best_feasible(tmp_path):
    obj = Objective("acc", [Constraint("flops", bound=25.0, hard=True)])
    res = run(tmp_path, budget=40, objective=obj)
    feasible = [r for r in res.records if r.value("flops") <= 25.0]
    assert res.best == max(feasible, key=lambda r: (r.score, -r.trial))
    assert res.results["infeasible"] == 40 - len(feasible) > 0


def test_every_refusal_names_its_key_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    small = SearchSpace({**SPACE.choices, "c9": ("k0", "k1")}, "toy")
    with pytest.raises(ConfigError, match="no tokens for the space's choice 'c9'"):
        run_experiment(small, RandomTrials(small), TableEvaluator(TABLE), out, 5, workers=0)
    with pytest.raises(ConfigError) as e:
        run(out, objective=Objective("acc", [Constraint("latency", 2.0)]))
    assert e.value.key == "regularizer.latency"
    with pytest.raises(ConfigError) as e:
        run(out, resume=True)
    assert e.value.key == "--resume"
    with pytest.raises(ConfigError) as e:
        run(out, budget=0)
    assert e.value.key == "budget"
    with socket.socket() as s:  # a port on 127.0.0.1 that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConfigError, match="cannot reach the Dask scheduler") as e:
        run(out, scheduler=f"tcp://127.0.0.1:{port}", scheduler_timeout=2.0)
    assert e.value.key == "--scheduler"
    assert not out.exists()
    run(out, budget=4)
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    with pytest.raises(ConfigError) as e:
        run(out, budget=4)
    assert e.value.key == "-o"
    with pytest.raises(ConfigError, match="was started with strategy") as e:
        run(out, budget=4, seed=1, resume=True)
    assert e.value.key == "strategy"
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_model_space_estimates_and_a_retrainable_genotype(tmp_path):
    """A registered space: the best trial's arch.h5 rebuilds the fixed network, whose real
    parameter count is the trial's estimate."""
    from nnabla_nas.contrib.mobilenet import MobileNetConfig, MobileNetSpace
    from nnabla_nas.trials import HardwareEstimates

    from .toy import IndexSum

    cfg = MobileNetConfig(num_classes=10, settings=[[8, 1, 2], [16, 2, 2]], width_mult=0.25,
                          candidates=["MB3 3x3", "MB6 5x5"], in_channels=1)  # fmt: skip
    model = MobileNetSpace(cfg)
    space = SearchSpace.from_model(model)
    assert space.name == "mobilenet" and space.labels == ["blocks/0", "blocks/1", "blocks/2"]
    estimates = HardwareEstimates.default(model, (1, 16, 16))
    res = run_experiment(space, RandomTrials(space, 0), IndexSum(), tmp_path, 6, workers=0,
                         estimates=estimates)  # fmt: skip
    best = res.best
    assert best.score == max(sum(r.architecture.values()) for r in res.records)
    genotype = load_genotype(tmp_path / "arch.h5", expected_space="mobilenet")
    fixed = MobileNetSpace(cfg, genotype=genotype)
    assert fixed.num_params() == best.estimates["params"]
    assert len({r.estimates["macs"] for r in res.records}) > 1  # per-trial, not the argmax
    assert json.loads((tmp_path / "results.json").read_text())["pareto"]["cost"] == "macs"

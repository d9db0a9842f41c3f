"""Benchmark tables: NAS-Bench-Macro through the general format, coverage errors, lookups."""

from __future__ import annotations

import json
import pickle
from collections import OrderedDict

import pytest

from nnabla_nas.errors import ConfigError
from nnabla_nas.trials import EVALUATORS, BenchmarkTable, SearchSpace, TableEvaluator
from nnabla_nas.trials.record import TrialRequest
from nnabla_nas.trials.table import TABLES
from nnabla_nas.trials.worker import run_trial

from .toy import toy_table

RAW = TABLES["nas-bench-macro"].parent / "nas-bench-macro_cifar10.json"


@pytest.fixture(scope="module")
def macro() -> BenchmarkTable:
    return BenchmarkTable.load("nas-bench-macro")


def test_nas_bench_macro_loads_through_the_general_format(macro):
    raw = json.loads(RAW.read_text())
    space = macro.space()
    assert space.name == "nas-bench-macro" and space.size == 6561 == len(raw)
    assert space.labels == [f"blocks/{i}" for i in range(8)]
    assert space.choices["blocks/0"] == ("skip_connect", "MB3 3x3", "MB6 5x5")
    macro.check(space)  # the table covers its own space
    assert macro.metrics() == ["mean_acc", "std", "params", "flops"]  # test_acc is a list
    # the README's facts, read through the encoding: identity everywhere, the best network
    ident = macro.lookup({label: "skip_connect" for label in space.labels})
    assert ident["params"] == 387882 and ident == raw["00000000"]
    best = max(macro.lookup(space.genotype(a))["mean_acc"] for a in space)
    assert round(best, 2) == 93.13 == round(raw["22212220"]["mean_acc"], 2)
    # every architecture maps to its own entry
    assert len({macro.key(space.genotype(a)) for a in space}) == 6561


def test_evaluator_scores_by_lookup_and_ships_no_table(macro):
    ev = EVALUATORS.get("table")("nas-bench-macro")
    assert ev.metric == "mean_acc" and ev.describe()["table"] == "nas-bench-macro"
    blob = pickle.dumps(ev)
    assert len(blob) < 2000  # workers read the file once, trials carry only the path
    space = macro.space()
    arch = space.from_genotype({f"blocks/{i}": n for i, n in enumerate(
        ["MB6 5x5", "skip_connect", "MB3 3x3", "MB6 5x5", "MB3 3x3", "MB3 3x3", "skip_connect",
         "skip_connect"])})  # fmt: skip
    request = TrialRequest(0, arch, dict(space.genotype(arch)), seed=1)
    out = run_trial(pickle.loads(blob), request)
    assert out.status == "ok" and out.scores == json.loads(RAW.read_text())["20121100"]


def test_space_with_an_unknown_candidate_is_refused_naming_the_key(macro):
    choices = OrderedDict(macro.space().choices)
    choices["blocks/3"] = ("skip_connect", "MB3 3x3", "MB6 7x7")
    with pytest.raises(ConfigError, match=r"candidates \['MB6 7x7'\] of choice 'blocks/3'") as e:
        macro.check(SearchSpace(choices, "mobilenet"))
    assert e.value.key == "table.choices.blocks/3"


def test_table_missing_an_entry_is_refused_naming_the_entry():
    table = toy_table(3, 3)
    del table.entries["201"]
    with pytest.raises(ConfigError, match="no entry '201'") as e:
        table.check(table.space())
    assert e.value.key == "table"


@pytest.mark.parametrize("drop", ["space", "table"])
def test_decisions_must_agree(drop):
    table = toy_table(3, 3)
    choices = OrderedDict(table.space().choices)
    if drop == "space":
        del choices["c2"]
        match = r"encodes the choices \['c2'\]"
    else:
        choices["extra"] = ("k0", "k1")
        match = "no tokens for the space's choice 'extra'"
    with pytest.raises(ConfigError, match=match):
        table.check(SearchSpace(choices))


def test_bad_metric_and_spec_files(tmp_path):
    with pytest.raises(ConfigError, match="'runs' is not a numeric figure") as e:
        TableEvaluator(toy_table(), metric="runs")
    assert e.value.key == "table.metric"
    with pytest.raises(ConfigError, match="no table spec file"):
        TableEvaluator(tmp_path / "missing.json")
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"entries": "e.json", "choices": {}, "colour": 1}))
    with pytest.raises(ConfigError, match="must be an object with the keys"):
        BenchmarkTable.load(spec)
    spec.write_text(json.dumps({"entries": "e.json", "choices": {"a": {"x": "0"}}}))
    with pytest.raises(ConfigError, match="cannot read the entries"):
        BenchmarkTable.load(spec)


def test_a_table_file_of_ones_own(tmp_path):
    """Any table fits: entries keyed by tokens joined with a separator."""
    (tmp_path / "e.json").write_text(
        json.dumps(
            {"a-x": {"acc": 1.0}, "a-y": {"acc": 2.0}, "b-x": {"acc": 3.0}, "b-y": {"acc": 4.0}}
        )
    )
    (tmp_path / "t.json").write_text(json.dumps({
        "name": "mine", "entries": "e.json", "metric": "acc", "separator": "-",
        "choices": {"first": {"A": "a", "B": "b"}, "second": {"X": "x", "Y": "y"}}}))  # fmt: skip
    ev = TableEvaluator(tmp_path / "t.json")
    space = ev.table.space()
    ev.check(space)
    assert ev.table.lookup({"first": "B", "second": "X"}) == {"acc": 3.0}
    assert space.choices == OrderedDict([("first", ("A", "B")), ("second", ("X", "Y"))])

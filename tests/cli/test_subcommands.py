"""``nnabla-nas NAME ...``: the subcommand table, lazily imported modules, their exit codes."""

from __future__ import annotations

import sys
import types

import pytest

from nnabla_nas import cli
from nnabla_nas.cli import main
from tests.conftest import tiny_mnist_config, write_json


def test_the_table_names_the_tools():
    assert cli.SUBCOMMANDS["latency"] == "nnabla_nas.cli.latency"
    assert cli.SUBCOMMANDS["nnmeter-build"] == "nnabla_nas.cli.nnmeter_build"
    assert "export" in cli.SUBCOMMANDS


def test_a_subcommand_gets_the_rest_of_the_arguments(monkeypatch):
    seen = []
    module = types.ModuleType("fake_command")
    module.main = lambda argv: seen.append(list(argv)) or 7
    monkeypatch.setitem(sys.modules, "fake_command", module)
    monkeypatch.setitem(cli.SUBCOMMANDS, "fake", "fake_command")
    assert main(["fake", "-f", "x.json", "--flag"]) == 7
    assert seen == [["-f", "x.json", "--flag"]]
    # only the first argument names a command
    monkeypatch.setattr(sys, "argv", ["nnabla-nas", "fake", "y"])
    assert main() == 7 and seen[-1] == ["y"]


def test_a_command_not_in_this_tree_is_not_one(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(cli.SUBCOMMANDS, "ghost", "nnabla_nas.cli.no_such_command")
    assert main(["ghost", "-o", str(tmp_path / "o")]) == 2  # parsed as a run's arguments
    assert "error:" in capsys.readouterr().err


def test_a_command_missing_a_dependency_is_not_hidden(monkeypatch, tmp_path):
    (tmp_path / "broken_command.py").write_text("import no_such_package_for_nnabla_nas\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(cli.SUBCOMMANDS, "broken", "broken_command")
    with pytest.raises(ModuleNotFoundError, match="no_such_package_for_nnabla_nas"):
        main(["broken"])


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["latency"], "the following arguments are required: command"),
        (["latency", "build"], "-f/--file"),
        (["latency", "build", "-f", "/nonexistent/exp.json", "-o", "t.json"], "/nonexistent"),
        (["nnmeter-build", "-f", "exp.json"], "-o/--output"),
        (["nnmeter-build", "-f", "/nonexistent/e.json", "-o", "p"], "/nonexistent/e.json"),
    ],
)
def test_tools_refuse_bad_input_with_one_line(capsys, argv, needle):
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in err, err


def test_latency_build_needs_a_table_file(tmp_path, capsys):
    exp = write_json(tmp_path / "exp.json", tiny_mnist_config())
    assert main(["latency", "build", "-f", str(exp)]) == 2
    err = capsys.readouterr().err
    assert "-o: no table file" in err and "lookup_table" in err


def test_tools_help(capsys):
    assert main(["latency", "build", "--help"]) == 0
    assert "--calibrate" in capsys.readouterr().out
    assert main(["nnmeter-build", "--help"]) == 0
    assert "--architectures" in capsys.readouterr().out


def test_latency_settings_come_from_the_flags_then_the_experiment(tmp_path):
    from nnabla_nas.cli.latency import _parse
    from nnabla_nas.cli.measure import LatencySettings, load_experiment

    section = {"name": "LatencyEstimator", "bound": 1.0, "batch_size": 4,
               "lookup_table": "t.json", "options": {"warmup": 2, "repeat": 7}}  # fmt: skip
    exp = write_json(tmp_path / "exp.json", tiny_mnist_config(regularizer={"lat": section}))
    args = _parse(["build", "-f", str(exp)])
    assert LatencySettings.resolve(args, load_experiment(args)) == LatencySettings(
        4, 2, 7, "t.json"
    )
    args = _parse(["build", "-f", str(exp), "--batch-size", "2", "--warmup", "0", "--repeat", "3"])
    assert LatencySettings.resolve(args, load_experiment(args)) == LatencySettings(
        2, 0, 3, "t.json"
    )
    plain = write_json(tmp_path / "plain.json", tiny_mnist_config())
    args = _parse(["build", "-f", str(plain)])
    assert LatencySettings.resolve(args, load_experiment(args)) == LatencySettings(1, 5, 30, None)

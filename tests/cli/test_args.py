"""The run command's arguments: ``--help`` without nnabla, the names it lists, the devices."""

from __future__ import annotations

import subprocess
import sys

import pytest

from nnabla_nas.cli import args as cli_args
from nnabla_nas.cli import names
from nnabla_nas.cli.device import Device, choose_device
from nnabla_nas.errors import ConfigError
from tests.conftest import ROOT

#: Runs main.py with the heavy packages unimportable, as in a Python without the set-up.
_BLOCKED = """
import importlib.abc, runpy, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("nnabla", "nnabla_ext", "numpy", "h5py", "tensorboardX"):
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
sys.argv = ["main.py", *sys.argv[1:]]
runpy.run_path("main.py", run_name="__main__")
"""


def _blocked(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _BLOCKED, *argv], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)  # fmt: skip


def test_help_needs_no_nnabla_and_lists_algorithms_spaces_and_commands():
    proc = _blocked("--help")
    assert proc.returncode == 0, proc.stderr
    assert "blocked" not in proc.stderr and "Traceback" not in proc.stderr
    out = proc.stdout
    assert f"algorithms (-a): {', '.join(names.ALGORITHM_NAMES)}" in out
    assert f"search spaces (network.search_space): {', '.join(names.SPACE_NAMES)}" in out
    assert "other commands: latency, nnmeter-build, export" in out
    assert "--data-dir DIR" in out and "-d ID, --device-id ID" in out


def test_a_bad_flag_is_one_line_with_exit_code_2(capsys):
    from nnabla_nas.cli import main

    assert main(["-o", "x", "--no-such-flag"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: unrecognized arguments: --no-such-flag (see --help)"


def test_listed_names_are_the_registries():
    from nnabla_nas.contrib import SPACES
    from nnabla_nas.runner import ALGORITHMS
    from nnabla_nas.trials import STRATEGIES

    assert list(names.ALGORITHM_NAMES) == ALGORITHMS.names(), (
        "nnabla_nas/cli/names.py::ALGORITHM_NAMES must list ALGORITHMS.names()"
    )
    assert list(names.SPACE_NAMES) == SPACES.names(), (
        "nnabla_nas/cli/names.py::SPACE_NAMES must list SPACES.names()"
    )
    assert list(names.STRATEGY_NAMES) == STRATEGIES.names(), (
        "nnabla_nas/cli/names.py::STRATEGY_NAMES must list STRATEGIES.names()"
    )


def test_flags_are_the_parsers_options():
    parser = cli_args.build_parser()
    options = {s for action in parser._actions for s in action.option_strings}
    assert options == set(cli_args.FLAGS)


# ---------------------------------------------------------------------- devices
def test_cpu_only_install_runs_on_the_cpu_and_warns_about_d(monkeypatch):
    monkeypatch.setattr("nnabla_nas.cli.device.cuda_installed", lambda: False)
    assert choose_device(None, None) == Device("cpu", 0, "float")
    assert choose_device(None, None).warning is None
    dev = choose_device(None, 1, "half")
    assert dev == Device("cpu", 0, "half")
    assert dev.warning.startswith("-d 1 is ignored: the CUDA extension is not installed")
    assert "nnabla_nas[cuda]" in dev.warning
    with pytest.raises(ConfigError) as err:
        choose_device("cudnn", 0)
    assert err.value.key == "context" and "-c cpu" in err.value.message


def test_cuda_extension_is_the_default_when_installed(monkeypatch):
    monkeypatch.setattr("nnabla_nas.cli.device.cuda_installed", lambda: True)
    assert choose_device(None, None) == Device("cudnn", 0, "float")
    dev = choose_device(None, 2)
    assert dev == Device("cudnn", 2, "float") and dev.warning is None
    assert dev.describe() == "cudnn, GPU 2, float"
    cpu = choose_device("cpu", 2)
    assert cpu == Device("cpu", 0, "float") and "-c cpu was given" in cpu.warning
    assert cpu.describe() == "cpu, float"


def test_the_extension_is_found_without_importing_it(monkeypatch):
    from nnabla_nas.cli import device

    asked = []

    def find_spec(name):
        asked.append(name)
        if name == "nnabla_ext.cuda" and installed:
            return object()
        if name == "nnabla_ext.cuda" and installed is None:
            raise ModuleNotFoundError("No module named 'nnabla_ext'")
        return None

    monkeypatch.setattr(device.importlib.util, "find_spec", find_spec)
    for case, expected in ((True, True), (False, False), (None, False)):
        installed = case  # read by find_spec
        assert device.cuda_installed() is expected
    assert asked == ["nnabla_ext.cuda"] * 3
    assert "nnabla_ext.cuda" not in sys.modules

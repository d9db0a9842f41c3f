"""The shipped example files run unchanged (only --set epoch / batch sizes) on generated data."""

from __future__ import annotations

import json

import pytest

from nnabla_nas.cli import main
from nnabla_nas.config import ExperimentConfig
from nnabla_nas.contrib import SPACES
from tests import datasets
from tests.conftest import ROOT

EXAMPLES = sorted((ROOT / "examples").glob("*.json"))
SMALL = ["--set", "epoch=1", "--set", "batch_size_train=8", "--set", "mini_batch_train=4",
         "--set", "batch_size_valid=10", "--set", "mini_batch_valid=10"]  # fmt: skip


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_parses_and_builds(path):
    cfg = ExperimentConfig.from_dict(json.loads(path.read_text()))
    space = SPACES.get(cfg.network.search_space)
    if getattr(cfg.network.space, "genotype", None):
        cfg.network.space.genotype = None  # the search's output; built without it here
    model = space(cfg.network.space)
    assert model.num_params() > 0


@pytest.fixture
def cifar_dir(tmp_path):
    datasets.write_cifar(tmp_path / "data", datasets.cifar_batches(per_batch=20, test=10), True)
    return tmp_path / "data"


def test_cifar10_reference_runs_unchanged(tmp_path, cifar_dir):
    out = tmp_path / "ref"
    args = ["-f", str(ROOT / "examples/mobilenet_cifar10_reference.json"), "-a", "Trainer"]
    assert main([*args, "-o", str(out), "--data-dir", str(cifar_dir), *SMALL]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["steps"] == 90 // 8 and res["num_parameters"] == 2236682  # MobileNetV2, 10 classes


def test_seed_search_and_train_run_unchanged(tmp_path, cifar_dir):
    search = tmp_path / "search"
    args = ["--search", "-f", str(ROOT / "examples/mobilenet_cifar10_search.json")]
    args += ["-a", "ProxylessNasSearcher", "-o", str(search), "--data-dir", str(cifar_dir)]
    assert main([*args, *SMALL, "--set", "warmup=0"]) == 0
    assert (search / "arch.h5").is_file() and (search / "arch.png").is_file()
    train = tmp_path / "train"
    args = ["-f", str(ROOT / "examples/mobilenet_cifar10_train.json"), "-a", "Trainer"]
    args += ["-o", str(train), "--data-dir", str(cifar_dir)]
    args += ["--set", f"network.genotype={search / 'arch.h5'}"]
    assert main([*args, *SMALL]) == 0
    arch = json.loads((search / "results.json").read_text())["architecture"]
    assert len(arch) == 21  # 4+4+4+4+4+1 blocks of the seed's settings
    res = json.loads((train / "results.json").read_text())
    assert res["steps"] == 90 // 8

"""The shipped DARTS / pnas example files, search then retrain, through the CLI on tiny CIFAR data
(the files unchanged but for --set: fewer epochs, smaller batches, a tiny network)."""

from __future__ import annotations

import json

import pytest

from nnabla_nas.cli import main
from nnabla_nas.contrib.darts import CellGenotype
from nnabla_nas.module import read_parameter_file
from tests import datasets
from tests.conftest import ROOT
from tests.events import read_image_tags

SMALL = ["--set", "epoch=1", "--set", "batch_size_train=8", "--set", "mini_batch_train=8",
         "--set", "batch_size_valid=10", "--set", "mini_batch_valid=10",
         "--set", "input_shape=[3, 12, 12]", "--set", "network.init_channels=4",
         "--set", "network.num_cells=3"]  # fmt: skip
CELL = ["--set", "network.num_choices=2", "--set", "network.multiplier=2"]


@pytest.fixture
def cifar_dir(tmp_path):
    datasets.write_cifar(tmp_path / "data", datasets.cifar_batches(per_batch=16, test=10), True)
    return tmp_path / "data"


def _run(example, algorithm, out, data, *extra, search=False):
    args = ["--search"] if search else []
    args += ["-f", str(ROOT / "examples" / example), "-a", algorithm, "-o", str(out)]
    assert main([*args, "--data-dir", str(data), *SMALL, *extra]) == 0
    return json.loads((out / "results.json").read_text())


def test_darts_search_then_retrain(tmp_path, cifar_dir):
    search = tmp_path / "search"
    _run("darts_search.json", "DartsSearcher", search, cifar_dir, *CELL,
         "--set", "searcher.order=1", search=True)  # fmt: skip
    arch = json.loads((search / "arch.json").read_text())
    assert arch["search_space"] == "darts" and len(arch["normal"]) == 2 * 2
    cell = CellGenotype.from_dict(arch, "arch.json")
    assert cell.normal_concat == cell.reduce_concat == [2, 3]
    for name in ("arch.h5", "arch.png", "normal.png", "reduce.png", "weights.h5"):
        assert (search / name).is_file(), name
    # arch.json numbers nodes as the choice labels do (inputs 0, 1; intermediate nodes 2, 3):
    # its k-th edge feeds node 2 + k // 2 from node j, the choice normal/edge_<node>_<j>
    probabilities = json.loads((search / "results.json").read_text())["arch_probabilities"]
    for kind in ("normal", "reduce"):
        for k, (op, j) in enumerate(arch[kind]):
            assert op in probabilities[f"{kind}/edge_{2 + k // 2}_{j}"], (kind, k, op, j)
    tags = read_image_tags(search / "tensorboard")
    assert {"architecture/arch.png", "architecture/normal.png", "architecture/reduce.png"} <= tags
    log = (search / "log.txt").read_text()
    assert "finished: DartsSearcher on darts, 1 epoch" in log
    assert f"next: retrain it with -a Trainer --set network.genotype={search / 'arch.h5'}" in log
    # retrain from arch.json (20 cells in the file, 3 here) with auxiliary head and drop-path
    train = tmp_path / "train"
    res = _run("darts_train.json", "Trainer", train, cifar_dir,
               "--set", f"network.genotype={search / 'arch.json'}")  # fmt: skip
    assert res["epochs"] == 1 and res["search_space"] == "darts"
    resolved = json.loads((train / "config.json").read_text())["network"]
    assert resolved["auxiliary"] is True and resolved["drop_path"] == 0.2
    # the arch.h5 of the same search derives the same cells
    again = tmp_path / "again"
    res_h5 = _run("darts_train.json", "Trainer", again, cifar_dir,
                  "--set", f"network.genotype={search / 'arch.h5'}")  # fmt: skip
    assert res_h5["num_parameters"] == res["num_parameters"]


def test_pnas_search_then_retrain(tmp_path, cifar_dir):
    search = tmp_path / "search"
    res = _run("pnas_search.json", "ProxylessNasSearcher", search, cifar_dir, *CELL,
               "--set", "warmup=0", search=True)  # fmt: skip
    assert not (search / "arch.json").exists()  # one architecture per edge: no cell genotype
    arch = res["architecture"]
    assert len(arch) == 3 * (2 + 3) and "cells/2/edge_3_2" in arch
    train = tmp_path / "train"
    res = _run("pnas_train.json", "Trainer", train, cifar_dir,
               "--set", f"network.genotype={search / 'arch.h5'}")  # fmt: skip
    assert res["epochs"] == 1 and res["num_parameters"] > 0
    # the searched multiplier (2) is recorded in arch.h5 and wins over the file's 4: the last
    # cell concatenates 2 nodes of 4 * 2 * 2 = 16 channels
    weights = read_parameter_file(train / "weights.h5")
    assert weights["classifier/_W"].shape == (2 * 16, 10)
    assert not any("alpha" in k for k in weights)


def test_wrong_genotype_is_refused_with_exit_code_2(tmp_path, cifar_dir, capsys):
    bad = tmp_path / "arch.json"
    bad.write_text('{"normal": [["sep_conv_3x3", 0]]}')
    args = ["-f", str(ROOT / "examples/darts_train.json"), "-a", "Trainer", "-o",
            str(tmp_path / "out"), "--data-dir", str(cifar_dir), *SMALL,
            "--set", f"network.genotype={bad}"]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "network.genotype" in err and str(bad) in err

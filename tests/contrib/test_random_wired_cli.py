"""The shipped random_wired example files through the CLI on tiny CIFAR data: trained (the graphs
written to arch.h5 and drawn in arch.png), retrained from its genotype (the same network), and
the refusals (exit 2 naming the key or the file, nothing written)."""

from __future__ import annotations

import json

import h5py
import pytest

from nnabla_nas.cli import main
from nnabla_nas.genotype import load_genotype
from nnabla_nas.module import read_parameter_file
from tests import datasets
from tests.conftest import ROOT

SMALL = ["--set", "epoch=1", "--set", "batch_size_train=8", "--set", "mini_batch_train=8",
         "--set", "batch_size_valid=10", "--set", "mini_batch_valid=10",
         "--set", "input_shape=[3, 12, 12]", "--set", "network.n_vertices=6",
         "--set", "network.k=2", "--set", "network.min_channels=4",
         "--set", "network.max_channels=8", "--set", "network.head_channels=16"]  # fmt: skip


@pytest.fixture
def cifar_dir(tmp_path):
    datasets.write_cifar(tmp_path / "data", datasets.cifar_batches(per_batch=16, test=10), True)
    return tmp_path / "data"


def _args(example, out, data, *extra):
    return ["-f", str(ROOT / "examples" / example), "-a", "Trainer", "-o", str(out),
            "--data-dir", str(data), *SMALL, *extra]  # fmt: skip


def _graphs(path):
    with h5py.File(path) as f:
        return {
            k: f[k][...].tolist()
            for k in (
                "graphs/stage_1/edges",
                "graphs/stage_1/channels",
                "graphs/stage_2/edges",
                "graphs/stage_2/channels",
            )
        }


def test_train_then_retrain_from_the_genotype(tmp_path, cifar_dir):
    train = tmp_path / "train"
    assert main(_args("random_wired_cifar10_train.json", train, cifar_dir)) == 0
    for name in ("arch.h5", "arch.png", "weights.h5", "results.json", "config.json"):
        assert (train / name).is_file(), name
    geno = load_genotype(train / "arch.h5", "random_wired")
    assert geno.choices == {} and geno.extra["generator"] == "ws" and geno.extra["stages"] == 2
    graphs = _graphs(train / "arch.h5")
    assert (
        graphs["graphs/stage_1/channels"] == [4] * 6
        and graphs["graphs/stage_2/channels"] == [8] * 6
    )
    first = json.loads((train / "results.json").read_text())

    # retrain from it, with another graph seed in the file: the genotype's graphs are built
    again = tmp_path / "again"
    args = _args(
        "random_wired_cifar10_retrain.json",
        again,
        cifar_dir,
        "--set",
        f"network.param_path={train / 'arch.h5'}",
        "--set",
        "network.seed=99",
    )
    assert main(args) == 0
    assert _graphs(again / "arch.h5") == graphs
    second = json.loads((again / "results.json").read_text())
    assert second["num_parameters"] == first["num_parameters"]
    assert set(read_parameter_file(again / "weights.h5")) == set(
        read_parameter_file(train / "weights.h5")
    )
    # without the genotype, seed 99 draws other graphs
    other = tmp_path / "other"
    assert main(_args("random_wired_cifar10_train.json", other, cifar_dir,
                      "--set", "network.seed=99")) == 0  # fmt: skip
    assert _graphs(other / "arch.h5") != graphs


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--set", "network.generator=lattice"], ["network.generator", "ws (Watts-Strogatz)"]),
        (["--set", "network.k=3"], ["network.k", "even k"]),
        (["--set", "network.k=6"], ["network.k", "k < n_vertices"]),
        (["--set", "network.p=1.2"], ["network.p", "[0, 1]"]),
        (["--set", "network.min_channels=16"], ["network.min_channels", "larger than"]),
        (["--set", "network.preset=tiny"], ["network.preset", "small, regular"]),
    ],
)
def test_bad_configuration_exits_2_and_writes_nothing(tmp_path, cifar_dir, capsys, extra, words):
    out = tmp_path / "out"
    assert main(_args("random_wired_cifar10_train.json", out, cifar_dir, *extra)) == 2
    err = capsys.readouterr().err
    assert all(w in err for w in words), err
    assert not out.exists()


def test_genotype_that_does_not_fit_or_of_another_space_exits_2(tmp_path, cifar_dir, capsys):
    train = tmp_path / "train"
    assert main(_args("random_wired_cifar10_train.json", train, cifar_dir)) == 0
    capsys.readouterr()
    out = tmp_path / "out"
    arch = train / "arch.h5"
    args = _args(
        "random_wired_cifar10_retrain.json",
        out,
        cifar_dir,
        "--set",
        f"network.param_path={arch}",
        "--set",
        "network.n_vertices=7",
    )
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "network.genotype" in err and str(arch) in err and "7 nodes" in err
    assert not out.exists()
    # an arch.h5 of the mobilenet space
    from nnabla_nas.contrib.mobilenet import MobileNetConfig, MobileNetSpace
    from nnabla_nas.genotype import save_genotype

    mobilenet = MobileNetSpace(MobileNetConfig(settings=[[16, 1, 2]],
                                               candidates=["MB3 3x3", "MB6 3x3"]))  # fmt: skip
    mobile = save_genotype(tmp_path / "mobile.h5", mobilenet.to_genotype({"blocks/0": 1}))
    args = _args("random_wired_cifar10_retrain.json", out, cifar_dir,
                 "--set", f"network.param_path={mobile}")  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert str(mobile) in err and "'mobilenet'" in err and "random_wired" in err
    assert not out.exists()


def test_a_searcher_is_refused(tmp_path, cifar_dir, capsys):
    out = tmp_path / "out"
    args = _args("random_wired_cifar10_train.json", out, cifar_dir)
    args[args.index("Trainer")] = "ProxylessNasSearcher"
    assert main(["--search", *args]) == 2
    err = capsys.readouterr().err
    assert "fixed network" in err and "-a Trainer" in err and not out.exists()

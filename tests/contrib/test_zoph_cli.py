"""The shipped zoph example files through the CLI on tiny CIFAR data: searched by DartsSearcher and
by ProxylessNasSearcher and retrained with the Trainer, a random architecture trained and
retrained, and the refusals (exit 2, nothing written)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nnabla_nas.cli import main
from nnabla_nas.contrib.zoph import CANDIDATES, ZophConfig, ZophSpace
from nnabla_nas.genotype import load_genotype
from nnabla_nas.module import read_parameter_file
from tests import datasets
from tests.conftest import ROOT

SMALL = ["--set", "epoch=1", "--set", "warmup=0", "--set", "batch_size_train=8",
         "--set", "mini_batch_train=8", "--set", "batch_size_valid=10",
         "--set", "mini_batch_valid=10", "--set", "input_shape=[3, 12, 12]",
         "--set", "network.stem_channels=4", "--set", "network.cell_depth=2",
         "--set", "network.cell_channels=[4, 8, 8]"]  # fmt: skip
LABELS = [f"cells/{i}/blocks/{j}" for i in range(3) for j in range(2)]


@pytest.fixture
def cifar_dir(tmp_path):
    datasets.write_cifar(tmp_path / "data", datasets.cifar_batches(per_batch=20, test=10), True)
    return tmp_path / "data"


def _run(example, algorithm, out, data, *extra, search=False):
    args = ["--search"] if search else []
    args += ["-f", str(ROOT / "examples" / example), "-a", algorithm, "-o", str(out)]
    assert main([*args, "--data-dir", str(data), *SMALL, *extra]) == 0
    return json.loads((out / "results.json").read_text())


def _retrain(tmp_path, cifar_dir, arch_h5, name, *extra):
    out = tmp_path / name
    res = _run("zoph_cifar10_train.json", "Trainer", out, cifar_dir,
               "--set", f"network.param_path={arch_h5}", *extra)  # fmt: skip
    searched = load_genotype(arch_h5, "zoph")
    # the Trainer records the architecture it trains (Model.export_files at the start)
    assert dict(load_genotype(out / "arch.h5", "zoph").choices) == dict(searched.choices)
    assert (out / "arch.png").is_file()
    resolved = json.loads((out / "config.json").read_text())["network"]
    assert resolved["genotype"] == str(arch_h5) and resolved["param_path"] is None
    cfg = ZophConfig(**{k: v for k, v in resolved.items() if k != "search_space"})
    cfg.genotype = None
    model = ZophSpace(cfg, genotype=searched, rng=np.random.RandomState(0))
    assert res["num_parameters"] == model.num_params() and res["epochs"] == 1
    weights = read_parameter_file(out / "weights.h5")
    assert not any("alpha" in k for k in weights) and set(weights) == set(model.get_parameters())
    return res


@pytest.mark.parametrize(
    "example, algorithm",
    [("zoph_cifar10_darts_search.json", "DartsSearcher"),
     ("zoph_cifar10_search.json", "ProxylessNasSearcher")],
)  # fmt: skip
def test_search_then_retrain(tmp_path, cifar_dir, example, algorithm):
    search = tmp_path / "search"
    res = _run(example, algorithm, search, cifar_dir, search=True)
    assert list(res["architecture"]) == LABELS
    assert set(res["architecture"].values()) <= set(CANDIDATES)
    for name in ("arch.h5", "arch.png", "weights.h5", "config.json", "log.txt"):
        assert (search / name).is_file(), name
    geno = load_genotype(search / "arch.h5", "zoph")
    assert dict(geno.choices) == res["architecture"] and len(geno.logits) == len(LABELS)
    mode = json.loads((search / "config.json").read_text())["network"]["mode"]
    assert mode == ("full" if algorithm == "DartsSearcher" else "sample")
    _retrain(tmp_path, cifar_dir, search / "arch.h5", "train")


def test_random_architecture_trained_then_retrained(tmp_path, cifar_dir):
    first = tmp_path / "random"
    res = _run("zoph_cifar10_random.json", "Trainer", first, cifar_dir)
    geno = load_genotype(first / "arch.h5", "zoph")
    assert list(geno.choices) == LABELS and geno.extra["random_init"] is True
    # the draw is the space's rng's (RandomState(seed), seed 0): reproducible without the file
    resolved = json.loads((first / "config.json").read_text())["network"]
    cfg = ZophConfig(**{k: v for k, v in resolved.items() if k != "search_space"})
    drawn = ZophSpace(cfg, rng=np.random.RandomState(0)).block_names()
    assert dict(geno.choices) == dict(drawn)
    again = _retrain(tmp_path, cifar_dir, first / "arch.h5", "again",
                     "--set", "network.merging_mode=add")  # fmt: skip
    assert again["num_parameters"] == res["num_parameters"]


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--set", "network.merging_mode=mul"], ["network.merging_mode", "concat, add"]),
        (["--set", "network.cell_depth=[2, 2]"], ["network.cell_depth", "3 cells"]),
        (["--set", "network.param_path=missing/arch.h5"], ["network.genotype", "missing/arch.h5"]),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(tmp_path, cifar_dir, capsys, extra, words):
    out = tmp_path / "out"
    args = ["-f", str(ROOT / "examples/zoph_cifar10_train.json"), "-a", "Trainer", "-o", str(out),
            "--data-dir", str(cifar_dir), *SMALL, *extra]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert all(w in err for w in words), err
    assert not out.exists()


def test_genotype_of_another_space_exits_2(tmp_path, cifar_dir, capsys):
    from nnabla_nas.contrib.random_wired import RandomWiredConfig, RandomWiredSpace
    from nnabla_nas.genotype import save_genotype

    other = tmp_path / "rw" / "arch.h5"
    other.parent.mkdir()
    random_wired = RandomWiredSpace(RandomWiredConfig(n_vertices=4, k=2, max_channels=78))
    save_genotype(other, random_wired.to_genotype())
    out = tmp_path / "out"
    args = [
        "-f",
        str(ROOT / "examples/zoph_cifar10_train.json"),
        "-a",
        "Trainer",
        "-o",
        str(out),
        "--data-dir",
        str(cifar_dir),
        *SMALL,
        "--set",
        f"network.param_path={other}",
    ]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert str(other) in err and "random_wired" in err and "network.genotype" in err
    assert not out.exists()


def test_searching_a_random_architecture_is_refused(tmp_path, cifar_dir, capsys):
    out = tmp_path / "out"
    args = ["--search", "-f", str(ROOT / "examples/zoph_cifar10_search.json"), "-a",
            "ProxylessNasSearcher", "-o", str(out), "--data-dir", str(cifar_dir), *SMALL,
            "--set", "network.random_init=true"]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "network.random_init" in err and "remove random_init" in err and not out.exists()

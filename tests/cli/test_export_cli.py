"""``nnabla-nas export`` on run folders made by tiny CLI runs (tiny CIFAR files): the files
written are read back by nnabla's loader and by onnxruntime and checked against the run's own
network computed by nnabla; every refusal exits 2 with one line, before anything is written."""

from __future__ import annotations

import json
import shutil

import nnabla as nn
import numpy as np
import pytest

from nnabla_nas.cli import main as run_main
from nnabla_nas.cli.export import main
from nnabla_nas.module import Module, read_parameter_file, use_architecture
from tests import datasets
from tests.conftest import ROOT, tiny_mnist_config, write_json
from tests.export.test_export import nnp_outputs, onnx_outputs

pytest.importorskip("onnxruntime")

SHAPE = [3, 12, 12]
X = np.random.RandomState(11).normal(size=(2, *SHAPE)).astype(np.float32)


def _mobilenet(data, fixed: bool) -> dict:
    cfg = tiny_mnist_config(fixed=fixed, dataset="cifar10", data_dir=str(data), input_shape=SHAPE,
                            batch_size_train=8, mini_batch_train=8, batch_size_valid=10,
                            mini_batch_valid=10)  # fmt: skip
    cfg["network"].update(settings=[[8, 1, 2], [16, 1, 1]])
    return cfg


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run folders of tiny runs: a mobilenet search, a mobilenet training, a DARTS search."""
    root = tmp_path_factory.mktemp("export_runs")
    data = root / "data"
    datasets.write_cifar(data, datasets.cifar_batches(per_batch=16, test=10), True)
    out = {name: root / name for name in ("search", "train", "darts")}
    args = {
        "search": ["--search", "-f", write_json(root / "s.json", _mobilenet(data, False)),
                   "-a", "ProxylessNasSearcher"],
        "train": ["-f", write_json(root / "t.json", _mobilenet(data, True)), "-a", "Trainer"],
        "darts": ["--search", "-f", ROOT / "examples" / "darts_search.json", "-a", "DartsSearcher",
                  "--data-dir", data, "--set", "epoch=1", "--set", f"input_shape={SHAPE}",
                  "--set", "batch_size_train=8", "--set", "mini_batch_train=8",
                  "--set", "batch_size_valid=10", "--set", "mini_batch_valid=10",
                  "--set", "network.init_channels=4", "--set", "network.num_cells=3",
                  "--set", "network.num_choices=2", "--set", "network.multiplier=2"],
    }  # fmt: skip
    for name, argv in args.items():
        assert run_main([*map(str, argv), "-o", str(out[name])]) == 0, name
    return out


def _run_network(run_dir):
    """The run's network as the run left it (weights.h5; for a search, the supernet running the
    genotype's candidates), computed by nnabla on X: the reference of the exported files."""
    from nnabla_nas.assemble import build_model, load_network_genotype
    from nnabla_nas.config import ExperimentConfig
    from nnabla_nas.genotype import load_genotype

    cfg = ExperimentConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
    model = build_model(cfg, load_network_genotype(cfg), np.random.RandomState(9))
    model.load_parameters(str(run_dir / "weights.h5"))
    model.apply(training=False)
    architecture = {}
    if model.choices():
        chosen = load_genotype(run_dir / "arch.h5").choices
        architecture = {k: op.names.index(chosen[k]) for k, op in model.choices().items()}
    with use_architecture(model, architecture):
        y = model(nn.Variable.from_numpy_array(X))
    y.forward(clear_buffer=True)
    return y.d.copy()


@pytest.mark.parametrize("kind", ["train", "search"])
def test_export_writes_files_that_reproduce_the_run_network(kind, runs, tmp_path, capsys):
    run_dir = tmp_path / kind
    shutil.copytree(runs[kind], run_dir)
    ref = _run_network(run_dir)
    argv = ["-o", str(run_dir), "--format", "nnp", "--format", "onnx", "--batch-size", "2"]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()  # the log, then the files written
    assert lines[-2:] == [str(run_dir / "model.onnx"), str(run_dir / "model.nnp")]
    np.testing.assert_allclose(onnx_outputs(run_dir / "model.onnx", X), ref, rtol=0, atol=1e-5)
    np.testing.assert_allclose(nnp_outputs(run_dir / "model.nnp", X, 2), ref, rtol=0, atol=1e-6)
    if kind == "search":  # the supernet's weights of the chosen candidates, under fixed paths
        saved = read_parameter_file(run_dir / "weights.h5")
        nn.clear_parameters()
        from nnabla.utils.nnp_graph import NnpLoader

        NnpLoader(str(run_dir / "model.nnp")).get_network("network", batch_size=1)
        exported = nn.get_parameters(grad_only=False)
        assert exported and not any("/ops/" in k for k in exported)
        assert len(exported) < len(saved)
        nn.clear_parameters()


def test_default_batch_is_one_and_output_names_the_file(runs, tmp_path):
    target = tmp_path / "net.onnx"
    assert main(["-o", str(runs["train"]), "--format", "onnx", "--output", str(target)]) == 0
    assert onnx_outputs(target, X[:1]).shape == (1, 10)
    assert not (runs["train"] / "model.onnx").exists()


def test_a_darts_search_says_to_retrain_and_writes_nothing(runs, capsys):
    before = sorted(p.name for p in runs["darts"].iterdir())
    assert main(["-o", str(runs["darts"]), "--format", "onnx"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "darts supernet's weights do not map onto its fixed network" in err
    assert "-a Trainer with network.genotype" in err
    assert sorted(p.name for p in runs["darts"].iterdir()) == before


@pytest.mark.parametrize(
    "args, message",
    [
        (["--format", "nnp", "--format", "onnx", "--output", "x.nnp"], "--output names one file"),
        (["--format", "nnp", "--output", "{run}/model.h5"], "NNP file must end in .nnp"),
        (["--format", "onnx", "--batch-size", "0"], "--batch-size: must be a positive integer"),
        (["--format", "onnx", "--opset", "12"], "--opset: expected one of [7, 9, 10, 11, 13]"),
        (["--format", "tflite"], "invalid choice: 'tflite'"),
        (["--format", "nnp", "--output", "{run}/no/such/model.nnp"], "its folder does not exist"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(runs, tmp_path, capsys, args, message):
    run_dir = tmp_path / "run"
    shutil.copytree(runs["train"], run_dir)
    before = sorted(p.name for p in run_dir.iterdir())
    args = [a.replace("{run}", str(run_dir)) for a in args]
    assert main(["-o", str(run_dir), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert sorted(p.name for p in run_dir.iterdir()) == before


def test_missing_run_files_exit_2_naming_them(runs, tmp_path, capsys):
    assert main(["-o", str(tmp_path), "--format", "nnp"]) == 2
    assert "holds no config.json: not the output folder of a run" in capsys.readouterr().err
    run_dir = tmp_path / "search"
    shutil.copytree(runs["search"], run_dir)
    (run_dir / "arch.h5").unlink()
    assert main(["-o", str(run_dir), "--format", "nnp"]) == 2
    assert f"{run_dir / 'arch.h5'} is missing" in capsys.readouterr().err
    train = tmp_path / "train"
    shutil.copytree(runs["train"], train)
    weights = read_parameter_file(train / "weights.h5")
    del weights["classifier/_W"]
    Module().save_parameters(train / "weights.h5", weights)
    assert main(["-o", str(train), "--format", "onnx"]) == 2
    assert "weights.h5 lacks 1 weight(s) of the network (classifier/_W)" in capsys.readouterr().err
    (run_dir / "weights.h5").unlink()
    assert main(["-o", str(run_dir), "--format", "nnp"]) == 2
    assert "weights.h5 is missing: the run has not written its weights" in capsys.readouterr().err
    assert not list(run_dir.glob("model.*")) and not list(train.glob("model.*"))

"""The command line end to end on tiny data: every output file is read back and checked."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nnabla_nas.cli import main
from tests.conftest import run_cli, tiny_mnist_config, write_json
from tests.events import read_scalars


def _evaluate(output, weights) -> float:
    """Test error of the network of ``output/config.json`` with ``weights``, recomputed."""
    import nnabla as nn

    from nnabla_nas.assemble import build_data, build_model, load_data, load_network_genotype
    from nnabla_nas.config import ExperimentConfig

    cfg = ExperimentConfig.from_dict(json.loads((output / "config.json").read_text()))
    model = build_model(cfg, load_network_genotype(cfg), np.random.RandomState(5))
    model.load_parameters(str(weights))
    model.apply(training=False)
    data = build_data(cfg, load_data(cfg), search=False)
    wrong = total = 0
    for x, y in data.test:
        xv = nn.Variable(x.shape)
        xv.d = x
        out = model(xv)
        out.forward(clear_buffer=True)
        wrong += int((out.d.argmax(axis=1) != y.ravel()).sum())
        total += len(y)
    return wrong / total


def test_trainer_end_to_end(tmp_path):
    cfg = tiny_mnist_config(fixed=True, epoch=2)
    out = tmp_path / "run"
    proc = run_cli(["-f", write_json(tmp_path / "exp.json", cfg), "-a", "Trainer", "-o", out])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in ("config.json", "log.txt", "weights.h5", "results.json"):
        assert (out / name).is_file(), name

    # log.txt: the print_frequency lines and one line per epoch
    log = (out / "log.txt").read_text()
    assert "epoch 1/2 done" in log and "epoch 2/2 done" in log
    assert "step 20/" in log

    # results.json: the numbers of the log, the right epochs and steps
    res = json.loads((out / "results.json").read_text())
    assert res["algorithm"] == "Trainer" and res["epochs"] == 2
    steps_per_epoch = int(3600 // 32)
    assert res["steps"] == 2 * steps_per_epoch
    assert len(res["history"]) == 2
    assert 0.0 <= res["final"]["test_error"] < 0.9  # learnt something in two tiny epochs
    assert res["best"]["valid_error"] == min(h["valid_error"] for h in res["history"])

    # TensorBoard: real event records with the scalars per step and per epoch
    scalars = read_scalars(out / "tensorboard")
    for tag in ("train/loss", "train/error", "train/lr", "epoch/valid_error", "epoch/test_error"):
        assert tag in scalars, sorted(scalars)
    assert len(scalars["train/loss"]) == res["steps"]
    assert [s for s, _ in scalars["epoch/test_error"]] == [1, 2]
    lrs = [v for _, v in scalars["train/lr"]]
    assert lrs[0] > lrs[-1] > 0  # cosine decay by default
    assert scalars["epoch/test_error"][-1][1] == pytest.approx(res["final"]["test_error"])

    # weights.h5 holds the best validation epoch and reproduces its reported test error
    err = _evaluate(out, out / "weights.h5")
    assert err == pytest.approx(res["best"]["test_error"], abs=1e-6)

    # config.json is complete and runs again as -f
    resolved = json.loads((out / "config.json").read_text())
    assert resolved["algorithm"] == "Trainer" and resolved["network"]["in_channels"] == 1
    assert resolved["mini_batch_valid"] == 200 and resolved["seed"] == 0
    out2 = tmp_path / "again"
    assert main(["-f", str(out / "config.json"), "-o", str(out2), "--set", "epoch=1"]) == 0
    assert json.loads((out2 / "results.json").read_text())["epochs"] == 1


def test_search_then_retrain_end_to_end(tmp_path):
    cfg = tiny_mnist_config(epoch=1, warmup=1)
    search = tmp_path / "search"
    proc = run_cli(
        ["--search", "-f", write_json(tmp_path / "s.json", cfg), "-a", "ProxylessNasSearcher",
         "-o", search]
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in ("arch.h5", "arch.png", "weights.h5", "results.json", "config.json", "log.txt"):
        assert (search / name).is_file(), name
    assert (search / "arch.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res = json.loads((search / "results.json").read_text())
    assert res["epochs"] == 2 and res["warmup_epochs"] == 1
    arch = res["architecture"]
    assert set(arch) == {"blocks/0", "blocks/1", "blocks/2"}

    from nnabla_nas.genotype import load_genotype

    genotype = load_genotype(search / "arch.h5", expected_space="mobilenet")
    assert dict(genotype.choices) == arch

    train_cfg = tiny_mnist_config(epoch=1)
    train_cfg["network"]["genotype"] = str(search / "arch.h5")
    del train_cfg["network"]["mode"]
    out = tmp_path / "train"
    code = main(["-f", str(write_json(tmp_path / "t.json", train_cfg)), "-a", "Trainer",
                 "-o", str(out)])  # fmt: skip
    assert code == 0
    res2 = json.loads((out / "results.json").read_text())
    assert res2["final"]["test_error"] < 0.9
    assert json.loads((out / "config.json").read_text())["network"]["genotype"] == str(
        search / "arch.h5"
    )

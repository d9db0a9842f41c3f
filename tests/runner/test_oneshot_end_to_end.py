"""The command line end to end for the one-shot searchers on every kind of space (the ENAS
spaces' input and skip decisions, mobilenet's blocks, zoph's cells): a tiny search on the 8x8
digits, its genotype read back, and the Trainer retraining the network of that genotype (see
CASES)."""

from __future__ import annotations

import json

import pytest
from resume_runs import write_mnist_idx

from nnabla_nas.cli import main
from nnabla_nas.genotype import load_genotype
from tests.conftest import write_json

#: space -> its network keys at a tiny size (8x8 inputs)
SPACES = {
    "enas_macro": {"num_layers": 3, "out_filters": 4, "num_classes": 10},
    "enas_micro": {"num_layers": 3, "num_nodes": 2, "out_filters": 4, "drop_path": 0.2,
                   "auxiliary": False, "num_classes": 10},
    "mobilenet": {"num_classes": 10, "settings": [[8, 1, 2], [16, 1, 2]],
                  "candidates": ["MB3 3x3", "MB3 5x5"], "width_mult": 0.25, "mode": "sample"},
    "zoph": {"n_classes": 10, "stem_channels": 4, "cell_depth": 2, "cell_channels": [4, 8, 8],
             "mode": "sample"},
}  # fmt: skip

SEARCHERS = {
    "EnasSearcher": {"lstm_size": 8, "controller_steps": 2, "num_samples": 2,
                     "num_final_samples": 2, "marginal_samples": 4, "bn_recalibration_batches": 1},
    "RandomSearcher": {"num_candidates": 2, "bn_recalibration_batches": 1},
}  # fmt: skip


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_mnist_idx(tmp_path_factory.mktemp("digits"))


def _experiment(data_dir, network):
    return {
        "dataset": "mnist", "data_dir": str(data_dir), "epoch": 1, "input_shape": [1, 8, 8],
        "batch_size_train": 20, "mini_batch_train": 20, "batch_size_valid": 20,
        "mini_batch_valid": 20, "train_portion": 0.5, "print_frequency": 100,
        "network": {"in_channels": 1, **network},
        "optimizer": {"train": {"solver": {"name": "Momentum", "lr": 0.05}},
                      "valid": {"solver": {"name": "Adam", "alpha": 0.01}}},
    }  # fmt: skip


#: (space, searcher, retrain its genotype): both searchers on every space; each searcher's
#: genotype retrained at least once (enas_micro's fixed networks are also trained in
#: tests/contrib/test_enas_micro.py).
CASES = [
    ("enas_macro", "EnasSearcher", True),
    ("enas_macro", "RandomSearcher", False),
    ("enas_micro", "EnasSearcher", False),
    ("enas_micro", "RandomSearcher", False),
    ("mobilenet", "EnasSearcher", False),
    ("mobilenet", "RandomSearcher", True),
    ("zoph", "EnasSearcher", False),
    ("zoph", "RandomSearcher", True),
]


@pytest.mark.parametrize("space, algorithm, retrain", CASES)
def test_search_then_retrain(tmp_path, data_dir, space, algorithm, retrain):
    cfg = _experiment(data_dir, {"search_space": space, **SPACES[space]})
    cfg["searcher"] = SEARCHERS[algorithm]
    search = tmp_path / "search"
    code = main(["--search", "-f", str(write_json(tmp_path / "s.json", cfg)), "-a", algorithm,
                 "-o", str(search)])  # fmt: skip
    assert code == 0
    res = json.loads((search / "results.json").read_text())
    geno = load_genotype(search / "arch.h5", expected_space=space)
    assert dict(geno.choices) == res["architecture"] and res["architecture"]
    records = res["final_candidates"] if algorithm == "EnasSearcher" else res["candidates"]
    best = res["best_final_candidate"] if algorithm == "EnasSearcher" else res["best_candidate"]
    assert records[best]["architecture"] == res["architecture"]
    assert res["final"]["valid_error"] == pytest.approx(records[best]["valid_error"])

    if not retrain:
        return
    network = {k: v for k, v in cfg["network"].items() if k != "mode"}
    train = _experiment(data_dir, {**network, "genotype": str(search / "arch.h5")})
    out = tmp_path / "train"
    code = main(["-f", str(write_json(tmp_path / "t.json", train)), "-a", "Trainer",
                 "-o", str(out)])  # fmt: skip
    assert code == 0
    res2 = json.loads((out / "results.json").read_text())
    assert res2["algorithm"] == "Trainer" and 0.0 <= res2["final"]["test_error"] <= 1.0
    assert (out / "weights.h5").is_file()

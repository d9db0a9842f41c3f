"""A checkpoint written by the first version of the loop (before the redesign; its state in one
flat dictionary, the searcher's logits among the model's parameters) resumes with this version
and ends exactly where a run of this version ends.

The fixture (``data/v1_run``) is a ProxylessNAS search (tiny mobilenet, 8x8 digits) stopped by
SIGTERM after 7 weight updates by commit a1d0689 (``scripts/identity_check.py record``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
from resume_runs import write_mnist_idx

from nnabla_nas.cli import main

FIXTURE = Path(__file__).parent / "data" / "v1_run"


def write_digits(folder: Path) -> Path:
    """The record's data: 10 training and 2 test digits per class, block-averaged to 8x8."""
    return write_mnist_idx(folder, train_per_class=10, test_per_class=2)


def _arrays(path: Path) -> dict[str, np.ndarray]:
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda k, v: out.__setitem__(k, v[...]) if isinstance(v, h5py.Dataset) else None
        )
    return out


def test_a_checkpoint_of_the_first_version_resumes_exactly(tmp_path):
    data = write_digits(tmp_path / "data")
    old = tmp_path / "old"
    shutil.copytree(FIXTURE, old)
    cfg = json.loads((old / "config.json").read_text())
    cfg["data_dir"] = str(data)
    (old / "config.json").write_text(json.dumps(cfg))
    state = json.loads(next((old / "checkpoint").glob("ckpt-*/state.json")).read_text())
    assert "algorithm_state" not in state["state"]["runner"]  # the first version's layout
    assert main(["--resume", "-o", str(old)]) == 0

    exp = tmp_path / "exp.json"
    exp.write_text(json.dumps({k: v for k, v in cfg.items() if k != "searcher"}))
    ref = tmp_path / "ref"
    assert main(["--search", "-f", str(exp), "-a", "ProxylessNasSearcher", "-o", str(ref)]) == 0
    for name in ("weights.h5", "arch.h5"):
        a, b = _arrays(old / name), _arrays(ref / name)
        assert a.keys() == b.keys() and a
        for key in a:
            if a[key].dtype == np.float64:
                # The architecture logits (float64, updated by numpy): the fixture's first updates
                # ran on another machine, and numpy's float64 kernels may differ there by an ulp
                # (other SIMD extensions: this one has AVX-512); the weights must be identical.
                np.testing.assert_allclose(a[key], b[key], rtol=1e-13, atol=0, err_msg=key)
            else:
                np.testing.assert_array_equal(a[key], b[key], err_msg=f"{name}: {key}")
    res, ref_res = (json.loads((d / "results.json").read_text()) for d in (old, ref))
    # The epochs the first version evaluated before its checkpoint keep its validation and test
    # figures (ProxylessNAS now validates with batch statistics); the rest must be identical.
    v1_epochs = {h["epoch"] for h in state["state"]["runner"]["history"]}
    assert len(res["history"]) == len(ref_res["history"]) and v1_epochs
    for a, b in zip(res["history"], ref_res["history"]):
        if a["epoch"] in v1_epochs:
            a, b = ({k: v for k, v in h.items() if not k.startswith(("valid_", "test_"))}
                    for h in (a, b))  # fmt: skip
        assert a == b
    assert res["steps"] == ref_res["steps"] == 18

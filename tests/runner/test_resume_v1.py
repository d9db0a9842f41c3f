"""A checkpoint written by the first version of the loop (before the redesign; its state in one
flat dictionary, the searcher's logits among the model's parameters) resumes with this version
and ends exactly where a run of this version ends.

The fixture (``data/v1_run``) is a ProxylessNAS search (tiny mobilenet, 8x8 digits) stopped by
SIGTERM after 7 weight updates by commit a1d0689 (``scripts/identity_check.py record``).
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import h5py
import numpy as np

from nnabla_nas.cli import main

FIXTURE = Path(__file__).parent / "data" / "v1_run"


def write_digits(folder: Path) -> Path:
    """The record's data: 10 training and 2 test digits per class, block-averaged to 8x8."""
    from nnabla_nas.data.mnist import load_embedded

    x, y = load_embedded()
    small = x[:, 0, 2:26, 2:26].reshape(-1, 8, 3, 8, 3).mean((2, 4)).astype(np.uint8)
    train = np.concatenate([np.flatnonzero(y == c)[:10] for c in range(10)])
    train = train[np.random.RandomState(0).permutation(len(train))]
    test = np.concatenate([np.flatnonzero(y == c)[10:12] for c in range(10)])
    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in (("train-images-idx3-ubyte", small[train]),
                      ("train-labels-idx1-ubyte", y[train]),
                      ("t10k-images-idx3-ubyte", small[test]),
                      ("t10k-labels-idx1-ubyte", y[test])):  # fmt: skip
        arr = np.asarray(arr, dtype=np.uint8)
        header = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
        (folder / name).write_bytes(header + arr.tobytes())
    return folder


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

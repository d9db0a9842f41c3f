"""Behaviour identity across a refactoring: fixed-seed tiny runs, recorded and compared.

``python scripts/identity_check.py record CHECKOUT OUT``
    runs every case of :data:`CASES` with the code of ``CHECKOUT`` (its ``main.py``) into
    ``OUT/<case>/`` and writes ``OUT/digest.npz`` + ``OUT/digest.json``: every array of
    ``arch.h5``, ``weights.h5`` and the last checkpoint's ``params.h5``, the genotype attributes,
    ``arch.json`` and ``results.json`` without its wall time.

``python scripts/identity_check.py resume CHECKOUT OLD OUT``
    continues, with the code of ``CHECKOUT``, the runs that ``OLD`` (recorded by another
    checkout) stopped by SIGTERM half-way (cases ``*_stopped``): their checkpoints were written
    by the old code. The digests of the resumed runs must equal the uninterrupted ones.

``python scripts/identity_check.py compare A B``
    compares two digests: exit 0 when every array is bit-identical and every value equal.

A refactoring keeps behaviour when ``record`` with the old and the new checkout gives identical
digests, and ``resume`` of the old checkpoints with the new code gives the uninterrupted
digests. The runs are tiny (8x8 digits, seconds each).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np

PY = sys.executable
BASE = dict(
    dataset="mnist", epoch=2, input_shape=[1, 8, 8], batch_size_train=8, mini_batch_train=4,
    batch_size_valid=8, mini_batch_valid=8, print_frequency=2, train_portion=0.5,
    optimizer={
        "train": {"solver": {"name": "Momentum", "lr": 0.05, "momentum": 0.9},
                  "weight_decay": 1e-4},
        "valid": {"solver": {"name": "Adam", "alpha": 0.01, "beta1": 0.5}},
    },
)  # fmt: skip
MOBILENET = {
    "search_space": "mobilenet", "num_classes": 10, "settings": [[8, 1, 2], [16, 2, 2]],
    "width_mult": 0.25, "candidates": ["MB3 3x3", "MB3 5x5", "MB6 3x3"], "mode": "sample",
    "drop_rate": 0.3,
}  # fmt: skip
DARTS = {
    "search_space": "darts", "init_channels": 4, "num_cells": 3, "num_classes": 10,
    "num_choices": 2, "multiplier": 2, "stem_multiplier": 1, "shared": True,
}  # fmt: skip
FLOPS = {"flops": {"name": "FlopsEstimator", "bound": 20000.0, "weight": 0.5}}


def cases() -> dict[str, tuple[str, dict, list[str]]]:
    """name -> (algorithm, experiment, extra arguments)."""
    out: dict[str, tuple[str, dict, list[str]]] = {}
    g = dict(BASE, warmup=1, network=MOBILENET)
    out["proxyless_gradient"] = ("ProxylessNasSearcher", g, ["--search"])
    out["proxyless_reinforce"] = (
        "ProxylessNasSearcher",
        dict(g, searcher={"estimator": "reinforce", "num_samples": 3}),
        ["--search"],
    )
    out["proxyless_gradient_flops"] = (
        "ProxylessNasSearcher",
        dict(g, regularizer=FLOPS),
        ["--search"],
    )
    out["proxyless_reinforce_flops"] = (
        "ProxylessNasSearcher",
        dict(g, regularizer=FLOPS, searcher={"estimator": "reinforce", "num_samples": 2}),
        ["--search"],
    )
    d = dict(BASE, epoch=1, warmup=1, network=DARTS)
    out["darts_order1"] = ("DartsSearcher", dict(d, searcher={"order": 1}), ["--search"])
    out["darts_order2"] = ("DartsSearcher", dict(d, searcher={"order": 2}), ["--search"])
    pnas = {k: v for k, v in DARTS.items() if k != "shared"}
    out["pnas_gradient"] = (
        "ProxylessNasSearcher",
        dict(BASE, epoch=1, warmup=1, network=dict(pnas, search_space="pnas")),
        ["--search"],
    )
    fixed = dict(MOBILENET, candidates=["MB3 3x3"], skip_connect=False)
    del fixed["mode"]
    out["trainer_mobilenet"] = ("Trainer", dict(BASE, network=fixed), [])
    out["trainer_darts_genotype"] = (
        "Trainer",
        dict(BASE, aux_weight=0.4, network=dict(
            DARTS, auxiliary=True, drop_path=0.2, genotype="@darts_order2/arch.json")),
        [],
    )  # fmt: skip
    out["trainer_proxyless_genotype"] = (
        "Trainer",
        dict(BASE, network=dict(MOBILENET, genotype="@proxyless_gradient/arch.h5")),
        [],
    )
    return out


#: Runs stopped by SIGTERM after this many weight updates (their checkpoints test the resume).
STOPPED = {"proxyless_gradient": 7, "proxyless_reinforce": 7, "darts_order2": 3,
           "trainer_mobilenet": 5}  # fmt: skip


def write_mnist_idx(folder: Path, checkout: Path) -> Path:
    """The tiny 8x8 dataset (100 training, 20 test digits) as IDX files."""
    code = (
        "import numpy as np; from nnabla_nas.data.mnist import load_embedded; x, y = "
        "load_embedded(); np.savez(r'%s', x=x, y=y)" % (folder / "raw.npz")
    )
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run([PY, "-c", code], cwd=checkout, check=True)
    raw = np.load(folder / "raw.npz")
    x, y = raw["x"], raw["y"]
    small = x[:, 0, 2:26, 2:26].reshape(-1, 8, 3, 8, 3).mean((2, 4)).astype(np.uint8)
    train = np.concatenate([np.flatnonzero(y == c)[:10] for c in range(10)])
    train = train[np.random.RandomState(0).permutation(len(train))]
    test = np.concatenate([np.flatnonzero(y == c)[10:12] for c in range(10)])
    for name, arr in (("train-images-idx3-ubyte", small[train]),
                      ("train-labels-idx1-ubyte", y[train]),
                      ("t10k-images-idx3-ubyte", small[test]),
                      ("t10k-labels-idx1-ubyte", y[test])):  # fmt: skip
        arr = np.asarray(arr, dtype=np.uint8)
        header = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
        (folder / name).write_bytes(header + arr.tobytes())
    return folder


def _main_args(checkout: Path, kill: str | None) -> list[str]:
    if kill is None:
        return [PY, str(checkout / "main.py")]
    # crash.py of the checkout stops the run by a signal after N updates
    return [PY, str(checkout / "tests" / "runner" / "crash.py"), kill]


def run_case(checkout: Path, out: Path, name: str, data: Path, kill: str | None = None) -> None:
    algorithm, cfg, extra = cases()[name]
    cfg = json.loads(json.dumps(cfg))
    cfg["data_dir"] = str(data)
    geno = cfg["network"].get("genotype")
    if geno and geno.startswith("@"):
        cfg["network"]["genotype"] = str(out.parent / geno[1:])
    out.mkdir(parents=True, exist_ok=True)
    path = out.parent / f"{out.name}.json"
    path.write_text(json.dumps(cfg, indent=1))
    env = dict(os.environ, PYTHONHASHSEED="0", NNABLA_CONFIG_FILE_PATH=str(
        checkout / "tests" / "nnabla.conf"))  # fmt: skip
    env["PYTHONPATH"] = str(checkout)
    cmd = [*_main_args(checkout, kill), "-f", str(path), "-a", algorithm, "-o", str(out),
           "--overwrite", *extra]  # fmt: skip
    proc = subprocess.run(cmd, cwd=checkout, env=env, capture_output=True, text=True)
    expected = 0 if kill is None else 143
    if proc.returncode != expected:
        raise SystemExit(f"{name}: exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr}")
    print(f"  {name}: ok", flush=True)


def resume_case(checkout: Path, out: Path, name: str) -> None:
    env = dict(os.environ, PYTHONHASHSEED="0", PYTHONPATH=str(checkout),
               NNABLA_CONFIG_FILE_PATH=str(checkout / "tests" / "nnabla.conf"))  # fmt: skip
    cmd = [PY, str(checkout / "main.py"), "--resume", "-o", str(out)]
    proc = subprocess.run(cmd, cwd=checkout, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"resume {name}: exit {proc.returncode}\n{proc.stdout[-3000:]}\n"
                         f"{proc.stderr}")  # fmt: skip
    print(f"  resumed {name}: ok", flush=True)


def _h5(path: Path, prefix: str, arrays: dict, values: dict) -> None:
    with h5py.File(path, "r") as f:

        def visit(key, obj):
            if isinstance(obj, h5py.Dataset):
                arrays[f"{prefix}:{key}"] = obj[...]

        f.visititems(visit)
        for key, v in f.attrs.items():
            values[f"{prefix}@{key}"] = v.tolist() if hasattr(v, "tolist") else str(v)


def digest(out: Path, names: list[str]) -> tuple[dict, dict]:
    arrays: dict[str, np.ndarray] = {}
    values: dict[str, object] = {}
    for name in names:
        run = out / name
        for file in ("arch.h5", "weights.h5"):
            if (run / file).exists():
                _h5(run / file, f"{name}/{file}", arrays, values)
        latest = json.loads((run / "checkpoint" / "latest.json").read_text())
        _h5(run / "checkpoint" / latest["name"] / "params.h5", f"{name}/params", arrays, values)
        if (run / "arch.json").exists():
            values[f"{name}/arch.json"] = json.loads((run / "arch.json").read_text())
        res = json.loads((run / "results.json").read_text())
        res.pop("wall_time_s", None)
        values[f"{name}/results.json"] = res
    return arrays, values


def save_digest(out: Path, names: list[str], tag: str = "digest") -> None:
    arrays, values = digest(out, names)
    np.savez(out / f"{tag}.npz", **{k.replace("/", "|"): v for k, v in arrays.items()})
    (out / f"{tag}.json").write_text(json.dumps(values, indent=1, sort_keys=True, default=str))
    print(f"{tag}: {len(arrays)} arrays, {len(values)} values in {out}")


def compare(a: Path, b: Path, tag_a: str = "digest", tag_b: str = "digest") -> int:
    va = json.loads((a / f"{tag_a}.json").read_text())
    vb = json.loads((b / f"{tag_b}.json").read_text())
    xa, xb = np.load(a / f"{tag_a}.npz"), np.load(b / f"{tag_b}.npz")
    problems = []
    for k in sorted(set(xa.files) | set(xb.files)):
        if k not in xa.files or k not in xb.files:
            problems.append(f"array {k} only in {'b' if k in xb.files else 'a'}")
        elif xa[k].shape != xb[k].shape or not np.array_equal(xa[k], xb[k]):
            diff = np.max(np.abs(xa[k].astype(float) - xb[k].astype(float)))
            problems.append(f"array {k} differs (max {diff:.3g})")
    for k in sorted(set(va) | set(vb)):
        if va.get(k) != vb.get(k):
            problems.append(f"value {k} differs: {str(va.get(k))[:200]} vs {str(vb.get(k))[:200]}")
    print(f"{len(xa.files)} arrays, {len(va)} values compared: {len(problems)} differences")
    for p in problems:
        print("  " + p)
    return 1 if problems else 0


def main(argv: list[str]) -> int:
    cmd = argv[0]
    if cmd == "record":
        checkout, out = Path(argv[1]).resolve(), Path(argv[2]).resolve()
        data = write_mnist_idx(out / "data", checkout)
        names = list(cases())
        for name in names:
            run_case(checkout, out / name, name, data)
        for name, n in STOPPED.items():
            run_case(checkout, out / f"{name}_stopped", name, data, kill=f"signal:{n}:SIGTERM")
        save_digest(out, names)
        return 0
    if cmd == "resume":
        checkout, old, out = (Path(p).resolve() for p in argv[1:4])
        out.mkdir(parents=True, exist_ok=True)
        for name in STOPPED:
            target = out / name
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(old / f"{name}_stopped", target)
            resume_case(checkout, target, name)
        save_digest(out, list(STOPPED), tag="digest_resumed")
        # The resumed runs against the uninterrupted ones of the old record.
        arrays, values = digest(old, list(STOPPED))
        np.savez(out / "digest_ref.npz", **{k.replace("/", "|"): v for k, v in arrays.items()})
        (out / "digest_ref.json").write_text(json.dumps(values, indent=1, sort_keys=True,
                                                        default=str))  # fmt: skip
        return compare(out, out, "digest_resumed", "digest_ref")
    if cmd == "compare":
        return compare(Path(argv[1]), Path(argv[2]))
    raise SystemExit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

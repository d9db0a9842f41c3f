"""DARTS against random cells on the embedded MNIST digits, with the same retraining budget.

Runs a DARTS search (``examples/darts_mnist_search.json``), retrains its cell
(``examples/darts_mnist_train.json``), and retrains ``--random`` random cell genotypes (per
intermediate node two distinct earlier inputs and two non-``none`` ops, uniformly; seeds 0, 1,
...) with exactly the same training file. Prints the searched cell's test accuracy next to the
random cells' mean and standard deviation. Two runs at a time (2 cores).

    .venv/bin/python benchmarks/darts_vs_random.py [--random 3] [--order 1] [-o log/darts_vs_random]
        [--set KEY=VALUE ...]

``--set`` overrides a key of both experiment files (as the CLI's ``--set``; e.g. ``epoch=1`` for
a quick look).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from nnabla_nas.contrib.darts.genotype import CellGenotype
from nnabla_nas.contrib.darts.ops import PRIMITIVES

ROOT = Path(__file__).resolve().parents[1]


def random_cell(rng: np.random.RandomState, nodes: int, concat: list[int]) -> CellGenotype:
    """A uniformly random DARTS cell genotype (two edges per node, no ``none``)."""
    ops = [p for p in PRIMITIVES if p != "none"]

    def cell() -> list[list]:
        edges = []
        for node in range(nodes):
            inputs = rng.choice(node + 2, size=2, replace=False)
            edges += [[str(rng.choice(ops)), int(j)] for j in sorted(inputs)]
        return edges

    return CellGenotype(cell(), list(concat), cell(), list(concat))


def main_py(*args: str) -> None:
    cmd = [sys.executable, str(ROOT / "main.py"), *args, "--overwrite"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")


def test_accuracy(folder: Path) -> float:
    res = json.loads((folder / "results.json").read_text())
    return 100.0 * (1.0 - res["final"]["test_error"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--random", type=int, default=3, help="random cells (seeds 0..N-1)")
    p.add_argument("--order", type=int, default=1, help="DARTS order (1 or 2)")
    p.add_argument("-o", default=str(ROOT / "log/darts_vs_random"))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of both experiment files")  # fmt: skip
    args = p.parse_args()
    sets = [a for kv in args.set for a in ("--set", kv)]
    out = Path(args.o)
    search = out / "search"
    main_py("--search", "-f", "examples/darts_mnist_search.json", "-a", "DartsSearcher",
            "-o", str(search), "--set", f"searcher.order={args.order}", *sets)  # fmt: skip
    searched = CellGenotype.from_dict(json.loads((search / "arch.json").read_text()))
    nodes = len(searched.normal) // 2
    genotypes = {"searched": search / "arch.json"}
    for seed in range(args.random):
        cell = random_cell(np.random.RandomState(seed), nodes, searched.normal_concat)
        genotypes[f"random{seed}"] = cell.save(out / f"random{seed}.json")

    def retrain(name: str) -> float:
        folder = out / f"train_{name}"
        main_py("-f", "examples/darts_mnist_train.json", "-a", "Trainer", "-o", str(folder),
                "--set", f'network.genotype="{genotypes[name]}"', *sets)  # fmt: skip
        return test_accuracy(folder)

    with ThreadPoolExecutor(max_workers=2) as pool:
        acc = dict(zip(genotypes, pool.map(retrain, genotypes)))
    rand = [acc[k] for k in acc if k.startswith("random")]
    print(f"DARTS order {args.order} search then retraining (examples/darts_mnist_*.json):")
    print(f"  searched cell: test accuracy {acc['searched']:.2f}%  ({search / 'arch.json'})")
    for k in sorted(acc):
        if k != "searched":
            print(f"  {k}: {acc[k]:.2f}%")
    spread = statistics.stdev(rand) if len(rand) > 1 else 0.0
    print(f"  random cells: mean {statistics.mean(rand):.2f}%, std {spread:.2f} "
          f"(n={len(rand)}, same training file and budget)")  # fmt: skip


if __name__ == "__main__":
    main()

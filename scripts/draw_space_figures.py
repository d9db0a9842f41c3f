"""Draws the figures of docs/zoph.rst, docs/random_wired.rst and docs/spaces.rst (NAS-Bench-Macro).

Usage: python scripts/draw_space_figures.py [OUTPUT_DIR]   (default docs/_static)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from nnabla_nas.config import parse_network
from nnabla_nas.contrib import SPACES
from nnabla_nas.visualize import draw_architecture

ROOT = Path(__file__).resolve().parents[1]


def network(example: str, **overrides):
    """The space's config of an example file, with ``overrides``."""
    data = json.loads((ROOT / "examples" / example).read_text())
    net = parse_network({**data["network"], **overrides})
    return SPACES.get(net.search_space), net.space, data["input_shape"]


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    space, cfg, shape = network("zoph_cifar10_random.json", in_channels=3)
    model = space(cfg, rng=np.random.RandomState(0))
    draw_architecture(model, out / "zoph_random_arch.png", shape)
    space, cfg, shape = network("random_wired_mnist_train.json", in_channels=1)
    draw_architecture(space(cfg), out / "random_wired_mnist_arch.png", shape)
    space, cfg, _ = network("mobilenet_nas_bench_macro_train.json", genotype=None, in_channels=3)
    best = dict(zip((f"blocks/{i}" for i in range(8)), "22212220"))
    names = {"0": "skip_connect", "1": "MB3 3x3", "2": "MB6 5x5"}
    model = space(cfg, genotype={k: names[v] for k, v in best.items()})
    draw_architecture(model, out / "nas_bench_macro_best_arch.png", (3, 32, 32))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "_static")

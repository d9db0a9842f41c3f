"""Writes architectures drawn uniformly from the space of a search experiment file, as ``arch.h5``
files the Trainer retrains (``network.genotype``): the random baseline of ``make demo``.

Usage: ``python scripts/demo_random_arch.py EXPERIMENT.json OUT_DIR N [SEED]`` writes
``OUT_DIR/random_<k>/arch.h5`` for ``k = 1..N``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from nnabla_nas.config import ExperimentConfig
from nnabla_nas.contrib import SPACES
from nnabla_nas.genotype import save_genotype


def main(argv: list[str]) -> int:
    experiment, out, count = argv[0], Path(argv[1]), int(argv[2])
    seed = int(argv[3]) if len(argv) > 3 else 0
    cfg = ExperimentConfig.from_dict(
        {**json.loads(Path(experiment).read_text()), "algorithm": "ProxylessNasSearcher"}
    )
    model = SPACES.get(cfg.network.search_space)(cfg.network.space)
    rng = np.random.RandomState(seed)
    for k in range(1, count + 1):
        arch = {label: int(rng.randint(len(op.ops))) for label, op in model.choices().items()}
        folder = out / f"random_{k}"
        folder.mkdir(parents=True, exist_ok=True)
        save_genotype(folder / "arch.h5", model.to_genotype(arch))
        names = model.genotype(arch)
        sys.stdout.write(f"random_{k}: " + ", ".join(f"{a}={b}" for a, b in names.items()) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

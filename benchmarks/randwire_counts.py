"""RandWire's published sizes against ours: parameters and multiply-adds of the random_wired
space's small regime, WS(4, 0.75), C = 78, 224x224 input, over graph seeds (construction only).

Xie et al. 2019, Table 2, report 5.6M parameters and 583M FLOPs (multiply-adds) for this
network, a mean over graph instances. Prints one line per seed, the mean, the standard deviation
and the ratio of the mean to the paper's figure (docs/random_wired.rst quotes this output).

    .venv/bin/python benchmarks/randwire_counts.py [--seeds 10] [--preset small]
"""

from __future__ import annotations

import argparse

import nnabla as nn
import numpy as np

from nnabla_nas.contrib.presets import preset_config
from nnabla_nas.contrib.random_wired import RandomWiredConfig, RandomWiredSpace
from nnabla_nas.estimator.flops import FlopsEstimator

PAPER = {"small": (5.6e6, 583e6)}  # (parameters, multiply-adds), Table 2, C = 78


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--preset", default="small", choices=["small", "regular"])
    args = parser.parse_args()
    params, macs = [], []
    for seed in range(args.seeds):
        nn.clear_parameters()
        cfg = preset_config(RandomWiredConfig, args.preset, seed=seed, in_channels=3)
        model = RandomWiredSpace(cfg)
        details = FlopsEstimator((3, 224, 224)).details(model)
        params.append(details["params"])
        macs.append(details["macs"])
        edges = [len(g.edges) for g in model.graphs]
        print(f"seed {seed}: {params[-1] / 1e6:.3f}M parameters, {macs[-1] / 1e6:.1f}M MACs, "
              f"edges per stage {edges}")  # fmt: skip
    p, m = np.array(params), np.array(macs)
    print(f"mean {p.mean() / 1e6:.3f}M +- {p.std() / 1e6:.3f}M parameters "
          f"(min {p.min() / 1e6:.3f}M, max {p.max() / 1e6:.3f}M)")  # fmt: skip
    print(f"mean {m.mean() / 1e6:.1f}M +- {m.std() / 1e6:.1f}M MACs "
          f"(min {m.min() / 1e6:.1f}M, max {m.max() / 1e6:.1f}M)")  # fmt: skip
    if args.preset in PAPER:
        pp, pm = PAPER[args.preset]
        print(f"ratio to the paper: parameters {p.mean() / pp:.3f}, MACs {m.mean() / pm:.3f}")


if __name__ == "__main__":
    main()

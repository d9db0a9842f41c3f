"""Randomly wired networks (Xie et al., ICCV 2019): the ``random_wired`` space.

- :mod:`.graphs`: the WS, ER and BA random graphs and their DAGs;
- :mod:`.network`: the nodes (weighted-sum aggregation, ReLU-separable conv-BN) and a stage;
- :mod:`.space`: the registered space, its regimes and its genotype (the graphs).
"""

from __future__ import annotations

from .graphs import GENERATORS, StageGraph, random_graph, stage_graph, stage_seed
from .space import PRESETS, RandomWiredConfig, RandomWiredSpace

__all__ = [
    "GENERATORS",
    "PRESETS",
    "RandomWiredConfig",
    "RandomWiredSpace",
    "StageGraph",
    "random_graph",
    "stage_graph",
    "stage_seed",
]

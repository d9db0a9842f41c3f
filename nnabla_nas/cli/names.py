"""The registry names ``--help`` lists, without importing the registries (and nnabla).

``tests/cli/test_args.py`` checks them against :data:`nnabla_nas.runner.ALGORITHMS` and
:data:`nnabla_nas.contrib.SPACES` (and the multi-trial strategies against
:data:`nnabla_nas.trials.STRATEGIES`): registering an algorithm or a space means adding its name
here too.
"""

from __future__ import annotations

__all__ = ["ALGORITHM_NAMES", "SPACE_NAMES", "STRATEGY_NAMES"]

#: ``-a``: the names of :data:`nnabla_nas.runner.ALGORITHMS`, sorted.
ALGORITHM_NAMES: tuple[str, ...] = (
    "DartsSearcher",
    "EnasSearcher",
    "ProxylessNasSearcher",
    "RandomSearcher",
    "Trainer",
)

#: ``-a`` with a ``trials`` section: the names of :data:`nnabla_nas.trials.STRATEGIES`, sorted.
STRATEGY_NAMES: tuple[str, ...] = ("EvolutionSearcher", "RandomTrials", "TpeTrials")

#: ``network.search_space``: the names of :data:`nnabla_nas.contrib.SPACES`, sorted.
SPACE_NAMES: tuple[str, ...] = (
    "darts",
    "enas_macro",
    "enas_micro",
    "mobilenet",
    "pnas",
    "random_wired",
    "zoph",
)

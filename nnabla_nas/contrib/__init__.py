"""Search spaces: Module trees with labelled choices, registered by name in :data:`SPACES`.

Adding a space is one new module plus one line here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..registry import Registry
from .darts import DartsSpace, PnasSpace
from .enas import EnasMacroSpace, EnasMicroSpace
from .mobilenet import MobileNetSpace
from .model import Model
from .random_wired import RandomWiredSpace
from .zoph import ZophSpace

__all__ = ["SPACES", "Model", "create_space"]

#: Search space registry: name -> space class (with a ``Config`` dataclass).
SPACES = Registry("search space")
SPACES.add("mobilenet", MobileNetSpace)
SPACES.add("darts", DartsSpace)
SPACES.add("pnas", PnasSpace)
SPACES.add("zoph", ZophSpace)
SPACES.add("random_wired", RandomWiredSpace, "random-wired", "randwire")
SPACES.add("enas_macro", EnasMacroSpace)
SPACES.add("enas_micro", EnasMicroSpace)


def create_space(name: str, genotype: Any = None, seed: int = 0, **keys: Any) -> Model:
    """A registered search space built from its experiment-file keys, e.g.
    ``create_space("mobilenet", num_classes=10, in_channels=1)``.

    Args:
        name: the registry name (``network.search_space``).
        genotype: a searched architecture (a :class:`~nnabla_nas.genotype.Genotype`, e.g. from
            :func:`~nnabla_nas.genotype.load_genotype`): builds its fixed network.
        seed: the weight initialisation's seed.
        keys: the space's own keys (its ``Config`` dataclass), parsed strictly.

    Raises:
        ConfigError: an unknown space or key, or an impossible value (naming the key).
    """
    from ..config import parse_dataclass

    space = SPACES.get(name)
    cfg = parse_dataclass(space.Config, keys, "network")
    return space(cfg, genotype=genotype, rng=np.random.RandomState(seed))

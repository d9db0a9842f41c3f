"""The DARTS cell search space (``darts``) and its path-sampled variant (``pnas``).

- :mod:`.ops`: the eight candidates;
- :mod:`.search`: the search cell (one MixedOp per edge);
- :mod:`.network`: the fixed cell, drop-path and the auxiliary head;
- :mod:`.genotype`: the cell genotype (``arch.json``) and its derivation from the logits;
- :mod:`.space`: the two registered spaces.
"""

from __future__ import annotations

from .genotype import DARTS_V1, DARTS_V2, CellGenotype, CellSpec, derive_genotype
from .ops import PRIMITIVES
from .space import DartsConfig, DartsSpace, PnasConfig, PnasSpace

__all__ = [
    "DARTS_V1",
    "DARTS_V2",
    "PRIMITIVES",
    "CellGenotype",
    "CellSpec",
    "DartsConfig",
    "DartsSpace",
    "PnasConfig",
    "PnasSpace",
    "derive_genotype",
]

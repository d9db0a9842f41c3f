"""The ENAS search spaces (Pham et al., "Efficient Neural Architecture Search via Parameter
Sharing", ICML 2018).

- :mod:`.ops`: the candidate operations of both spaces and the micro input edge;
- :mod:`.base`: what both spaces share (decisions from the configuration, the genotype check);
- :mod:`.macro`: ``enas_macro``, layers of six operations with free skip connections;
- :mod:`.micro_cell`: the micro cells (supernet and retraining);
- :mod:`.micro`: ``enas_micro``, normal and reduction cells of ``B`` nodes.
"""

from __future__ import annotations

from .macro import EnasMacroConfig, EnasMacroSpace
from .micro import EnasMicroConfig, EnasMicroSpace
from .ops import MACRO_OPS, MICRO_OPS, SKIP_NAMES

__all__ = [
    "MACRO_OPS",
    "MICRO_OPS",
    "SKIP_NAMES",
    "EnasMacroConfig",
    "EnasMacroSpace",
    "EnasMicroConfig",
    "EnasMicroSpace",
]

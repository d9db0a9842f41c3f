"""The one-shot space of Bender et al. (ICML 2018): the ``zoph`` space.

- :mod:`.network`: the cell of choice blocks and its path dropout;
- :mod:`.space`: the registered space (supernet, random and searched fixed networks).
"""

from __future__ import annotations

from .network import PathDropout, ZophCell
from .space import CANDIDATES, ZophConfig, ZophSpace

__all__ = ["CANDIDATES", "PathDropout", "ZophCell", "ZophConfig", "ZophSpace"]

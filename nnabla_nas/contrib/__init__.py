"""Search spaces: Module trees with labelled choices, registered by name in :data:`SPACES`.

Adding a space is one new module plus one line here.
"""

from __future__ import annotations

from ..registry import Registry
from .darts import DartsSpace, PnasSpace
from .enas import EnasMacroSpace, EnasMicroSpace
from .mobilenet import MobileNetSpace
from .model import Model

__all__ = ["SPACES", "Model"]

#: Search space registry: name -> space class (with a ``Config`` dataclass).
SPACES = Registry("search space")
SPACES.add("mobilenet", MobileNetSpace)
SPACES.add("darts", DartsSpace)
SPACES.add("pnas", PnasSpace)
SPACES.add("enas_macro", EnasMacroSpace)
SPACES.add("enas_micro", EnasMicroSpace)

"""Named sets of a space's keys: ``"preset": NAME`` in the ``network`` section.

A space's ``Config`` dataclass lists its presets in the class attribute ``PRESETS``
(``name -> {key: value}``). When the experiment file is parsed, :func:`expand_preset` replaces
``preset`` by the preset's keys, except those the section gives itself (the file wins, as the
command line wins over the file). The resolved ``config.json`` therefore holds every key and no
``preset``: it re-runs the same network. From Python, :func:`preset_config` builds the Config.
"""

from __future__ import annotations

import copy
import logging
from typing import Any, Mapping

from ..errors import ConfigError

__all__ = ["expand_preset", "preset_config"]

logger = logging.getLogger(__name__)

PRESET_KEY = "preset"


def expand_preset(config_cls: type, data: Mapping[str, Any], path: str = "") -> dict[str, Any]:
    """``data`` with its ``preset`` replaced by the preset's keys that ``data`` does not give.

    Args:
        config_cls: the space's Config dataclass (its ``PRESETS`` class attribute).
        data: the raw keys of the section (``search_space`` removed).
        path: the section's key path, for error messages (e.g. ``network``).

    Raises:
        ConfigError: ``preset`` is not a string, or not one of the space's presets (all named).
    """
    out = dict(data)
    if PRESET_KEY not in out:
        return out
    name = out.pop(PRESET_KEY)
    key = f"{path}.{PRESET_KEY}" if path else PRESET_KEY
    presets: Mapping[str, Mapping[str, Any]] = getattr(config_cls, "PRESETS", None) or {}
    if not presets:
        raise ConfigError("this search space has no presets; remove the key", key=key)
    if not isinstance(name, str) or name.lower() not in presets:
        raise ConfigError(f"unknown preset {name!r}; valid: {', '.join(presets)}", key=key)
    preset = presets[name.lower()]
    filled = [k for k in preset if k not in out]
    for k in filled:
        out[k] = copy.deepcopy(preset[k])
    kept = [k for k in preset if k not in filled]
    logger.debug("preset %s fills %s%s", name, filled, f" (given: {kept})" if kept else "")
    return out


def preset_config(config_cls: type, name: str, **overrides: Any) -> Any:
    """The Config of preset ``name`` with ``overrides`` (parsed and checked as the file would be).

    Example: ``preset_config(MobileNetConfig, "nas-bench-macro", in_channels=3)``.
    """
    from ..config import parse_dataclass

    return parse_dataclass(config_cls, expand_preset(config_cls, {PRESET_KEY: name, **overrides}))

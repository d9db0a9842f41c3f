"""Resuming a run: which configuration changes a resume accepts.

``--resume`` continues the run of an output folder from its last checkpoint with the
configuration it started with (``OUTPUT/config.json``). A different configuration would make the
resumed run compute something else than the run it continues, so any difference is refused,
except in the keys of :data:`SAFE_RESUME_KEYS`.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import ConfigError

__all__ = ["SAFE_RESUME_KEYS", "config_differences", "check_resume_config"]

#: Keys a resume may change (``--set`` or a changed ``-f``):
#:
#: - ``epoch``: extends (or shortens, down to the epochs already done) the run; the
#:   learning-rate schedules are functions of the total number of iterations, so extending a
#:   cosine schedule moves the rest of it (the result is then not that of either run length);
#: - ``print_frequency``, ``checkpoint_every``: logging and checkpointing only;
#: - ``data_dir``: where the same data now lives (a different dataset is refused when the number
#:   of steps per epoch differs, not otherwise: keep it the same data);
#: - ``device_id``: another GPU of the same kind.
SAFE_RESUME_KEYS = ("epoch", "print_frequency", "checkpoint_every", "data_dir", "device_id")


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict) and obj:
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: obj}


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """The dotted keys whose values differ between two resolved configurations (a key present
    in only one of them differs), sorted."""
    a = _flatten(json.loads(json.dumps(saved)))
    b = _flatten(json.loads(json.dumps(current)))
    missing = object()
    return sorted(k for k in set(a) | set(b) if a.get(k, missing) != b.get(k, missing))


def check_resume_config(saved: dict[str, Any], current: dict[str, Any], source: str) -> list[str]:
    """Checks that ``current`` may resume a run started with ``saved``.

    Args:
        saved: the resolved configuration of the run (``OUTPUT/config.json``).
        current: the resolved configuration of this command line.
        source: the saved file's path, for the message.

    Returns:
        The safe keys that changed (see :data:`SAFE_RESUME_KEYS`).

    Raises:
        ConfigError: other keys differ; the message lists each with both values.
    """
    differ = config_differences(saved, current)
    unsafe = [k for k in differ if k.split(".")[0] not in SAFE_RESUME_KEYS]
    if unsafe:
        a, b = _flatten(saved), _flatten(current)
        listed = "; ".join(
            f"{k}: {a.get(k, '(absent)')!r} in the run, {b.get(k, '(absent)')!r} now"
            for k in unsafe
        )
        raise ConfigError(
            f"the configuration differs from the one the run started with ({source}) in "
            f"{len(unsafe)} key(s): {listed}. A resume continues the same run: drop -f (the "
            f"saved configuration is used) or these changes; only "
            f"{', '.join(SAFE_RESUME_KEYS)} may change",
            key="--resume",
        )
    return [k for k in differ if k not in unsafe]

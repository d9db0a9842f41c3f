"""Small helpers shared by the layers."""

from __future__ import annotations

from typing import Sequence, Union

IntOrTuple = Union[int, Sequence[int]]


def as_tuple(value: IntOrTuple | None, ndim: int, default: int, name: str) -> tuple[int, ...]:
    """Normalises a layer size argument to a tuple of ``ndim`` ints.

    ``None`` gives ``(default,) * ndim``; an int ``k`` gives ``(k,) * ndim``.
    """
    if value is None:
        return (default,) * ndim
    if isinstance(value, int):
        return (value,) * ndim
    result = tuple(int(v) for v in value)
    if len(result) != ndim:
        raise ValueError(f"{name} must have {ndim} values like the kernel, got {result}")
    return result

"""``Parameter``: an ``nn.Variable`` that a :class:`~nnabla_nas.module.Module` registers."""

from __future__ import annotations

import logging
from typing import Any, Callable, Sequence, Union

import nnabla as nn
import numpy as np

logger = logging.getLogger(__name__)

#: What a weight can be initialised from: None (zeros), an array, or a callable taking the shape
#: (every ``nnabla.initializer`` object is such a callable).
Initializer = Union[None, np.ndarray, Callable[[tuple], Any]]


def initial_value(shape: Sequence[int], initializer: Initializer = None) -> np.ndarray:
    """Returns the initial float32 value of a weight of ``shape``.

    Args:
        shape: the weight's shape.
        initializer: None (zeros), a numpy array of exactly ``shape``, or a callable called as
            ``initializer(shape)`` (e.g. ``nnabla.initializer.UniformInitializer((-1, 1), rng)``)
            that returns an array of ``shape``.

    Raises:
        ValueError: the array (given or returned) does not have ``shape``.
        TypeError: ``initializer`` is none of the above.
    """
    shape = tuple(int(s) for s in shape)
    if initializer is None:
        return np.zeros(shape, dtype=np.float32)
    if isinstance(initializer, np.ndarray):
        value, source = initializer, "the initializer array"
    elif callable(initializer):
        value, source = np.asarray(initializer(shape)), f"initializer {initializer!r}"
    else:
        raise TypeError(
            f"initializer must be None, a numpy array or a callable taking the shape, "
            f"got {type(initializer).__name__}"
        )
    if tuple(value.shape) != shape:
        raise ValueError(f"{source} has shape {tuple(value.shape)}, expected {shape}")
    return value.astype(np.float32, copy=True)


class Parameter(nn.Variable):
    """A trainable array: an ``nn.Variable`` that modules register as a parameter.

    Assigning a ``Parameter`` to an attribute of a :class:`Module` registers it under the
    attribute's name (a plain ``nn.Variable`` is not registered).

    Args:
        shape: the shape.
        need_grad: whether solvers should update it (``Module.get_parameters(grad_only=True)``
            keeps only parameters with ``need_grad=True``).
        initializer: None (zeros), a numpy array of ``shape``, or a callable taking the shape,
            such as ``nnabla.initializer.UniformInitializer``.

    Example:
        >>> from nnabla.initializer import ConstantInitializer
        >>> Parameter((2, 3), initializer=ConstantInitializer(1.0)).d.sum()
        6.0
    """

    def __new__(
        cls, shape: Sequence[int], need_grad: bool = True, initializer: Initializer = None
    ) -> Parameter:
        # nn.Variable is a Cython type that allocates in __new__ and has no __init__ of its own.
        return super().__new__(cls, tuple(int(s) for s in shape), need_grad)

    def __init__(
        self, shape: Sequence[int], need_grad: bool = True, initializer: Initializer = None
    ) -> None:
        self.d = initial_value(shape, initializer)
        self.grad.zero()

    def __repr__(self) -> str:
        return f"Parameter(shape={self.shape}, need_grad={self.need_grad})"


def make_weight(
    shape: Sequence[int], initializer: Initializer, fix_parameters: bool
) -> nn.Variable:
    """Creates a layer weight: a :class:`Parameter`, or a plain fixed ``nn.Variable``.

    Args:
        shape: the weight's shape.
        initializer: see :func:`initial_value`.
        fix_parameters: True gives a plain ``nn.Variable`` with ``need_grad=False`` (not
            registered as a parameter, so never trained nor saved).
    """
    if not fix_parameters:
        return Parameter(shape, need_grad=True, initializer=initializer)
    var = nn.Variable(tuple(int(s) for s in shape), need_grad=False)
    var.d = initial_value(shape, initializer)
    return var

"""``Linear``: the fully connected layer over ``F.affine``."""

from __future__ import annotations

import logging

import nnabla as nn
import nnabla.functions as F
import numpy as np
from nnabla.initializer import UniformInitializer, calc_uniform_lim_glorot

from nnabla_nas.module.module import Module
from nnabla_nas.module.parameter import Initializer, make_weight

logger = logging.getLogger(__name__)


class Linear(Module):
    """``F.affine(x, _W, _b, base_axis)``: ``y = x.reshape(batch, in_features) @ _W + _b``.

    Weights: ``_W`` of shape ``(in_features, out_features)``, ``_b`` of shape
    ``(out_features,)`` (None without bias). As in ``nnabla.parametric_functions.affine``,
    ``_W`` defaults to ``UniformInitializer(calc_uniform_lim_glorot(in_features,
    out_features), rng)`` and ``_b`` to zeros.

    Args:
        in_features: the product of the input's axes from ``base_axis`` on.
        out_features: output features.
        base_axis: axes before it are sample axes.
        w_init: initializer of ``_W`` (None, an array, or a callable taking the shape).
        b_init: initializer of ``_b`` (default zeros).
        rng: the ``numpy.random.RandomState`` of the default initializer; None uses a fresh,
            unseeded one.
        bias: whether there is a bias.
        fix_parameters: True makes the weights plain ``nn.Variable`` (``need_grad=False``),
            not registered Parameters (an addition to SPEC's arguments, last and optional).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        base_axis: int = 1,
        w_init: Initializer = None,
        b_init: Initializer = None,
        rng: np.random.RandomState | None = None,
        bias: bool = True,
        fix_parameters: bool = False,
    ) -> None:
        self._in_features = int(in_features)
        self._out_features = int(out_features)
        self._base_axis = int(base_axis)
        self._bias = bool(bias)
        self._fix_parameters = bool(fix_parameters)
        if w_init is None:
            rng = rng if rng is not None else np.random.RandomState()
            lim = calc_uniform_lim_glorot(in_features, out_features)
            w_init = UniformInitializer(lim, rng=rng)
        self._W = make_weight((in_features, out_features), w_init, fix_parameters)
        self._b = make_weight((out_features,), b_init, fix_parameters) if bias else None

    def call(self, x: nn.Variable) -> nn.Variable:
        return F.affine(x, self._W, self._b, base_axis=self._base_axis)

    def extra_repr(self) -> str:
        return (
            f"{self._in_features}, {self._out_features}, base_axis={self._base_axis}, "
            f"bias={self._bias}" + (", fix_parameters=True" if self._fix_parameters else "")
        )

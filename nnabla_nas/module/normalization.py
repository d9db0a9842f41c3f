"""``BatchNormalization`` over ``F.batch_normalization``."""

from __future__ import annotations

import logging
from typing import Mapping, Sequence

import nnabla as nn
import nnabla.functions as F
import numpy as np

from nnabla_nas.module.module import Module
from nnabla_nas.module.parameter import Initializer, Parameter, make_weight

logger = logging.getLogger(__name__)

_PARAM_INIT_KEYS = ("beta", "gamma", "mean", "var")


class BatchNormalization(Module):
    """Batch normalisation with running statistics.

    ``F.batch_normalization(x, _beta, _gamma, _mean, _var, axes, decay_rate, eps, batch_stat)``
    where ``batch_stat`` is ``self.training`` unless fixed by the ``batch_stat`` argument: in
    training the batch statistics are used and the running ``_mean``/``_var`` are updated in
    place by the forward pass (``running = decay_rate * running + (1 - decay_rate) * batch``);
    in inference the running statistics are used.

    Weights (shape ``[1] * n_dims`` with ``n_features`` on ``axes``): ``_beta`` (zeros) and
    ``_gamma`` (ones) are trainable; ``_mean`` (zeros) and ``_var`` (ones) are Parameters with
    ``need_grad=False`` (they are saved with the weights; ``need_grad`` propagation keeps them at
    False). With ``fix_parameters=True`` ``_beta``/``_gamma`` are plain ``nn.Variable`` and
    only the running statistics are registered.

    Args:
        n_features: the size of the normalised axis (a sequence, one per axis, when ``axes``
            has several).
        n_dims: the number of dimensions of the input (4 for NCHW).
        axes: the axes that keep their own statistics (``[1]``: per channel).
        decay_rate: decay of the running statistics.
        eps: added to the variance.
        batch_stat: None follows ``training``; True/False forces batch/running statistics.
        fix_parameters: see above.
        param_init: initializers by name, keys among ``beta``, ``gamma``, ``mean``, ``var``.
    """

    _stat_parameters = ("_mean", "_var")

    def __init__(
        self,
        n_features: int | Sequence[int],
        n_dims: int,
        axes: Sequence[int] = [1],  # noqa: B006 - SPEC's signature; never mutated
        decay_rate: float = 0.9,
        eps: float = 1e-5,
        batch_stat: bool | None = None,
        fix_parameters: bool = False,
        param_init: Mapping[str, Initializer] | None = None,
    ) -> None:
        axes = [int(a) for a in axes]
        features = [n_features] * len(axes) if isinstance(n_features, int) else list(n_features)
        if len(features) != len(axes) or (isinstance(n_features, int) and len(axes) != 1):
            raise ValueError(f"BatchNormalization: n_features {n_features} does not fit {axes=}")
        param_init = dict(param_init or {})
        unknown = sorted(set(param_init) - set(_PARAM_INIT_KEYS))
        if unknown:
            raise ValueError(
                f"BatchNormalization: param_init keys {unknown} are not in {_PARAM_INIT_KEYS}"
            )
        shape = [1] * int(n_dims)
        for axis, size in zip(axes, features):
            shape[axis] = int(size)
        self._n_features = n_features
        self._n_dims = int(n_dims)
        self._axes = axes
        self._decay_rate = float(decay_rate)
        self._eps = float(eps)
        self._batch_stat = batch_stat
        self._fix_parameters = bool(fix_parameters)
        ones = np.ones(shape, dtype=np.float32)
        self._beta = make_weight(shape, param_init.get("beta"), fix_parameters)
        self._gamma = make_weight(shape, param_init.get("gamma", ones), fix_parameters)
        self._mean = Parameter(shape, need_grad=False, initializer=param_init.get("mean"))
        self._var = Parameter(shape, need_grad=False, initializer=param_init.get("var", ones))

    def call(self, x: nn.Variable) -> nn.Variable:
        batch_stat = self.training if self._batch_stat is None else bool(self._batch_stat)
        return F.batch_normalization(
            x,
            self._beta,
            self._gamma,
            self._mean,
            self._var,
            axes=self._axes,
            decay_rate=self._decay_rate,
            eps=self._eps,
            batch_stat=batch_stat,
        )

    def extra_repr(self) -> str:
        return (
            f"{self._n_features}, n_dims={self._n_dims}, axes={self._axes}, "
            f"decay_rate={self._decay_rate}, eps={self._eps}"
            + (f", batch_stat={self._batch_stat}" if self._batch_stat is not None else "")
            + (", fix_parameters=True" if self._fix_parameters else "")
        )

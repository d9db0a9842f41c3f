"""The module API: building blocks over nnabla functions (SPEC section 6).

Parameter paths are ``/``-joined attribute names (``features/0/_W``); the layers name their
weights ``_W``/``_b`` (Conv, DwConv, Linear), ``_beta``/``_gamma``/``_mean``/``_var``
(BatchNormalization), and a MixedOp's architecture parameter ``alpha``. See
:class:`~nnabla_nas.module.module.Module` for registration and the flags.
"""

from __future__ import annotations

from nnabla_nas.module.activation import Dropout, LeakyReLU, ReLU, ReLU6
from nnabla_nas.module.container import ModuleDict, ModuleList, ParameterList, Sequential
from nnabla_nas.module.conv import Conv, DwConv
from nnabla_nas.module.linear import Linear
from nnabla_nas.module.mixedop import (
    DEFAULT_RULES,
    MixedOp,
    arch_parameters,
    choice_groups,
    full_rule,
    max_rule,
    mixture,
    net_parameters,
    sample_rule,
    softmax,
    use_architecture,
    use_rule,
)
from nnabla_nas.module.module import Module, read_parameter_file
from nnabla_nas.module.normalization import BatchNormalization
from nnabla_nas.module.operation import Identity, Lambda, Merging, Zero
from nnabla_nas.module.parameter import Parameter
from nnabla_nas.module.pooling import AvgPool, GlobalAvgPool, MaxPool

__all__ = [
    "Parameter",
    "Module",
    "read_parameter_file",
    "Sequential",
    "ModuleList",
    "ParameterList",
    "ModuleDict",
    "Conv",
    "DwConv",
    "BatchNormalization",
    "Linear",
    "MaxPool",
    "AvgPool",
    "GlobalAvgPool",
    "ReLU",
    "ReLU6",
    "LeakyReLU",
    "Dropout",
    "Identity",
    "Zero",
    "Merging",
    "Lambda",
    "MixedOp",
    "full_rule",
    "mixture",
    "sample_rule",
    "max_rule",
    "DEFAULT_RULES",
    "softmax",
    "choice_groups",
    "use_architecture",
    "use_rule",
    "arch_parameters",
    "net_parameters",
]

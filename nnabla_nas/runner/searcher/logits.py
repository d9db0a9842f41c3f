"""The architecture logits of a softmax searcher: one Parameter per decision, built in one place.

DARTS and ProxylessNAS hold a distribution ``softmax(logits)`` per decision (a label of
:func:`~nnabla_nas.module.choice_groups`: MixedOps sharing a label share one). The logits belong
to the searcher, not to the space: :class:`ArchLogits` creates them (zeros, or the initialiser
given), except that a decision whose MixedOps declare an ``alpha`` (a space ported from the
original NNabla NAS) starts from, and trains, that Parameter.

Keys: the logits of decision ``label`` are stored (``arch.h5``, checkpoints, the ``valid``
optimizer's state) under ``<label>/alpha``, or under the declared parameter's own path.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Mapping

import nnabla as nn
import nnabla.functions as F
import numpy as np

from ...errors import GenotypeError
from ...module import MixedOp, Parameter, choice_groups, softmax

__all__ = ["ArchLogits", "Initializer"]

#: ``init(n) -> array of n logits``.
Initializer = Callable[[int], np.ndarray]


class ArchLogits:
    """``label -> Parameter`` of shape ``(n, 1, 1, 1, 1)`` for every decision of a model.

    Args:
        model: the supernet.
        init: the initial logits of a decision with ``n`` candidates (default zeros: uniform
            probabilities). Not used for decisions that declare an ``alpha``.
    """

    def __init__(self, model: Any, init: Initializer | None = None) -> None:
        self.groups: OrderedDict[str, list[MixedOp]] = choice_groups(model)
        paths = {id(p): k for k, p in model.get_parameters().items()}
        self.params: OrderedDict[str, Parameter] = OrderedDict()
        self.keys: OrderedDict[str, str] = OrderedDict()
        self._label_of: dict[int, str] = {}
        for label, ops in self.groups.items():
            n = len(ops[0].ops)
            declared = {id(op.alpha): op.alpha for op in ops if op.alpha is not None}
            if len(declared) > 1 or (declared and any(op.alpha is None for op in ops)):
                raise ValueError(f"the MixedOps of decision {label!r} declare different alphas")
            if any(len(op.ops) != n for op in ops):
                raise ValueError(f"the MixedOps of decision {label!r} differ in candidates")
            if declared:
                param = next(iter(declared.values()))
                key = paths[id(param)]
            else:
                value = np.zeros(n) if init is None else np.asarray(init(n), dtype=np.float64)
                param = Parameter((n, 1, 1, 1, 1), initializer=value.reshape(n, 1, 1, 1, 1))
                key = f"{label}/alpha"
            self.params[label] = param
            self.keys[label] = key
            for op in ops:
                self._label_of[id(op)] = label

    def __len__(self) -> int:
        return len(self.params)

    def label_of(self, op: MixedOp) -> str:
        """The decision of a MixedOp."""
        return self._label_of[id(op)]

    def of(self, op: MixedOp) -> Parameter:
        """The logits of a MixedOp's decision."""
        return self.params[self._label_of[id(op)]]

    def parameters(self) -> OrderedDict[str, Parameter]:
        """``key -> Parameter`` (see the module docstring): the ``valid`` optimizer's parameters,
        checkpointed with the model's."""
        return OrderedDict((self.keys[label], p) for label, p in self.params.items())

    def trainable(self) -> OrderedDict[str, Parameter]:
        """The :meth:`parameters` with ``need_grad`` and more than one candidate."""
        return OrderedDict(
            (k, p) for k, p in self.parameters().items() if p.need_grad and p.size > 1
        )

    def probabilities(self) -> OrderedDict[str, np.ndarray]:
        """``label -> softmax(logits)`` (numpy float64, shape ``(n,)``)."""
        return OrderedDict((label, softmax(p.d)) for label, p in self.params.items())

    def distribution(self) -> OrderedDict[str, nn.Variable]:
        """``label -> softmax(logits)`` as ``nn.Variable`` s of shape ``(n,)``, differentiable in
        the logits (what the estimators' expected values are computed from)."""
        return OrderedDict(
            (label, F.softmax(F.reshape(p, (p.size,)), axis=0)) for label, p in self.params.items()
        )

    def argmax(self) -> OrderedDict[str, int]:
        """``label -> index of the largest logit`` (the first on ties)."""
        return OrderedDict(
            (label, int(np.argmax(softmax(p.d)))) for label, p in self.params.items()
        )

    def arrays(self) -> OrderedDict[str, np.ndarray]:
        """``key -> a copy of the logits`` (what ``arch.h5`` stores)."""
        return OrderedDict(
            (self.keys[label], np.array(p.d, copy=True)) for label, p in self.params.items()
        )

    def load(self, logits: Mapping[str, Any], source: str = "genotype") -> None:
        """Sets the logits from ``key or label -> array`` (e.g. ``Genotype.logits``; keys of
        files written before the redesign are read too).

        Raises:
            GenotypeError: a key is unknown or a shape differs (naming ``source``).
        """
        by_key = {k: label for label, k in self.keys.items()}
        for key, value in logits.items():
            label = by_key.get(key)
            if label is None and key in self.params:  # a label: the first version's DARTS keys
                label = key
            if label is None:
                raise GenotypeError(
                    f"{source}: architecture parameter {key!r} does not exist in this network; "
                    f"valid: {', '.join(self.keys.values()) or 'none'}"
                )
            param = self.params[label]
            value = np.asarray(value)
            if value.size != param.size:
                raise GenotypeError(
                    f"{source}: architecture parameter {key!r} has {value.size} values, the "
                    f"choice has {param.size} candidates"
                )
            param.d = value.reshape(param.shape)

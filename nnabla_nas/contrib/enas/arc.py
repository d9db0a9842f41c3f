"""Architectures written as the ENAS reference code writes them (a string of integers), and the
paper's published CIFAR-10 architectures in that form.

- Macro (``search_whole_channels``): for every layer ``k = 1 .. L``, its operation index (in
  :data:`~.ops.MACRO_OPS` order) followed by ``k - 1`` skip bits, bit ``j`` for output ``j``
  (``0`` the stem, ``j`` layer ``j``).
- Micro: the normal cell then the reduction cell; for every node ``i = 2 .. B+1`` four integers,
  ``input0 op0 input1 op1`` (operations in :data:`~.ops.MICRO_OPS` order).
"""

from __future__ import annotations

import logging
from collections import OrderedDict

from ...errors import GenotypeError
from .micro_cell import CELL_KINDS
from .ops import MACRO_OPS, MICRO_OPS, SKIP_NAMES

__all__ = ["ENAS_MACRO_FINAL", "ENAS_MICRO_FINAL", "macro_genotype", "micro_genotype"]

logger = logging.getLogger(__name__)

#: The 24-layer macro architecture the reference code retrains (``cifar10_macro_final.sh``).
ENAS_MACRO_FINAL = " ".join(
    (
        "0",
        "3 0",
        "0 1 0",
        "2 0 0 1",
        "2 0 0 0 0",
        "3 1 1 0 1 0",
        "2 0 0 0 0 0 1",
        "2 0 1 1 0 1 1 1",
        "1 0 1 1 1 0 1 0 1",
        "0 0 0 0 0 0 0 0 0 0",
        "2 0 0 0 0 0 1 0 0 0 0",
        "0 1 0 0 1 1 0 0 0 0 1 1",
        "2 0 1 0 0 0 0 0 1 0 1 1 0",
        "1 0 0 1 0 0 0 1 1 1 0 1 0 1",
        "0 1 1 0 1 0 1 0 0 0 0 0 1 0 0",
        "2 0 0 1 0 0 0 0 0 0 0 1 0 1 0 1",
        "2 0 1 0 0 0 1 0 0 1 1 1 1 0 0 1 0",
        "2 0 0 0 0 1 0 1 0 1 0 0 1 0 1 0 0 1",
        "3 0 1 1 0 1 0 0 0 0 0 1 0 1 0 1 0 0 0",
        "3 0 1 1 0 0 0 0 0 0 0 0 0 1 1 0 0 0 0 1",
        "0 1 0 0 1 0 1 1 0 0 0 1 0 0 0 0 0 1 1 0 0",
        "3 0 1 0 1 1 0 0 1 0 1 1 0 1 1 0 1 0 0 1 0 0",
        "0 1 0 1 0 1 0 0 0 0 0 0 0 0 1 0 1 0 0 1 0 0 0",
        "0 1 1 0 0 0 1 1 1 0 1 0 0 0 1 0 1 0 0 1 1 0 0 0",
    )
)  # fmt: skip

#: The micro cells the reference code retrains (``cifar10_micro_final.sh``).
ENAS_MICRO_FINAL = "0 2 0 0 0 4 0 1 0 4 1 1 1 0 0 1 0 2 1 1 1 0 1 0 0 3 0 2 1 1 3 1 1 0 0 4 0 3 1 1"


def _ints(arc: str) -> list[int]:
    try:
        return [int(t) for t in arc.split()]
    except ValueError:
        raise GenotypeError(
            f"an ENAS architecture string holds integers only, got {arc!r}"
        ) from None


def macro_genotype(arc: str) -> OrderedDict[str, str]:
    """A macro architecture string as an ``enas_macro`` genotype (its length gives ``L``).

    Raises:
        GenotypeError: the string is not ``L`` layers of an operation index and skip bits.
    """
    values = _ints(arc)
    out: OrderedDict[str, str] = OrderedDict()
    pos, k = 0, 1
    while pos < len(values):
        if pos + k > len(values) or not 0 <= values[pos] < len(MACRO_OPS):
            raise GenotypeError(f"bad macro architecture string at layer {k}: {arc!r}")
        out[f"layer{k}/op"] = MACRO_OPS[values[pos]]
        for j, bit in enumerate(values[pos + 1 : pos + k]):
            if bit not in (0, 1):
                raise GenotypeError(f"layer {k}: skip bit {bit} is not 0 or 1 in {arc!r}")
            out[f"layer{k}/skip{j}"] = SKIP_NAMES[bit]
        pos, k = pos + k, k + 1
    return out


def micro_genotype(arc: str) -> OrderedDict[str, str]:
    """A micro architecture string (normal cell, then reduction cell) as an ``enas_micro``
    genotype (its length gives ``B``).

    Raises:
        GenotypeError: the length is not a multiple of 8, an input is not an earlier node, or an
            operation index is out of range.
    """
    values = _ints(arc)
    if not values or len(values) % 8:
        raise GenotypeError(f"a micro architecture string has 8 integers per node, got {arc!r}")
    num_nodes = len(values) // 8
    out: OrderedDict[str, str] = OrderedDict()
    for c, kind in enumerate(CELL_KINDS):
        for n in range(num_nodes):
            i = n + 2
            base = 4 * (c * num_nodes + n)
            for s in (0, 1):
                j, op = values[base + 2 * s], values[base + 2 * s + 1]
                if not 0 <= j < i or not 0 <= op < len(MICRO_OPS):
                    raise GenotypeError(f"{kind} node {i}: input {j} or op {op} out of range")
                out[f"{kind}/node{i}/input{s}"] = f"node{j}"
                out[f"{kind}/node{i}/op{s}"] = MICRO_OPS[op]
    return out

"""What kind of decision each choice of a space is: the structure a controller may exploit.

A space's choices (:meth:`~nnabla_nas.contrib.model.Model.choices`) are categorical: a label and
its candidates. Some searchers (the ENAS controller) also use what a choice *means*: whether it
picks an operation, one of the earlier nodes as an input, or switches a skip connection from an
earlier node on or off. A space says so through a method ``decisions() -> list[Decision]``, one
:class:`Decision` per label, in the order of :meth:`Model.choices`. A space without that method
(e.g. ``mobilenet``) is a plain sequence of operation decisions (:func:`describe_decisions`).

The kinds:

- ``"op"``: pick one of ``names`` (operations, blocks, ...).
- ``"input"``: pick one of the earlier nodes ``sources`` as an input; candidate ``i`` is node
  ``sources[i]``.
- ``"skip"``: two candidates, ``(absent, present)``: the skip connection from node
  ``sources[0]`` into this decision's node is left out (candidate 0) or made (candidate 1).

Nodes are names (``"stem"``, ``"layer3"``, ``"normal/node2"``): every decision belongs to one
``node``; a source is either the node of earlier decisions or a node with no decision of its own
(a stem, a cell's input), which must not be the node of a later decision. The search space stays
a declaration: nothing here samples or holds architecture parameters.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Sequence

from ..module import choice_groups

__all__ = ["KINDS", "Decision", "check_decisions", "describe_decisions"]

logger = logging.getLogger(__name__)

#: The kinds of decision (see the module docstring).
KINDS = ("op", "input", "skip")


@dataclass(frozen=True)
class Decision:
    """One decision of a space.

    Attributes:
        label: the choice's label (as in :meth:`Model.choices` and the genotype).
        kind: ``"op"``, ``"input"`` or ``"skip"``.
        names: the candidates' names, in candidate order.
        node: the node the decision belongs to (defaults to the label).
        sources: ``input``: the node of every candidate; ``skip``: the one source node; ``op``:
            empty.
    """

    label: str
    kind: str
    names: tuple[str, ...]
    node: str = ""
    sources: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(self.names))
        object.__setattr__(self, "sources", tuple(self.sources))
        if not self.node:
            object.__setattr__(self, "node", self.label)
        if self.kind not in KINDS:
            raise ValueError(f"decision {self.label!r}: kind {self.kind!r} is not one of {KINDS}")
        if not self.names:
            raise ValueError(f"decision {self.label!r} has no candidates")
        if self.kind == "op" and self.sources:
            raise ValueError(f"op decision {self.label!r} takes no sources")
        if self.kind == "input" and len(self.sources) != len(self.names):
            raise ValueError(
                f"input decision {self.label!r}: {len(self.names)} candidates but "
                f"{len(self.sources)} source nodes"
            )
        if self.kind == "skip" and (len(self.names) != 2 or len(self.sources) != 1):
            raise ValueError(
                f"skip decision {self.label!r} needs two candidates (absent, present) and one "
                f"source node, got {len(self.names)} and {len(self.sources)}"
            )
        if self.node in self.sources:
            raise ValueError(f"decision {self.label!r} takes its own node {self.node!r} as input")


def check_decisions(decisions: Sequence[Decision]) -> None:
    """Refuses a decision list a controller cannot follow.

    Raises:
        ValueError: a label appears twice, the decisions of a node are not consecutive, or a
            source is a node whose decisions come later (or the decision's own).
    """
    seen_labels: set[str] = set()
    finished: set[str] = set()  # nodes whose decisions are all listed
    current = None
    for d in decisions:
        if d.label in seen_labels:
            raise ValueError(f"decision {d.label!r} is listed twice")
        seen_labels.add(d.label)
        if d.node != current:
            if d.node in finished:
                raise ValueError(f"the decisions of node {d.node!r} are not consecutive")
            if current is not None:
                finished.add(current)
            current = d.node
    nodes = {d.node for d in decisions}
    done: set[str] = set()
    current = None
    for d in decisions:
        if d.node != current:
            if current is not None:
                done.add(current)
            current = d.node
        late = [s for s in d.sources if s in nodes and s not in done]
        if late:
            raise ValueError(
                f"decision {d.label!r} takes node {late[0]!r} as input before that node's "
                "decisions are complete"
            )


def describe_decisions(model: Any) -> list[Decision]:
    """The decisions of ``model``: its ``decisions()`` when it has that method, else one ``op``
    decision per choice label (``model.choices()``, or the labels of
    :func:`~nnabla_nas.module.choice_groups` for a plain Module).

    Raises:
        ValueError: the space's decisions do not match its choices (labels, order, candidate
            counts), or :func:`check_decisions` refuses them.
    """
    groups = choice_groups(model)
    if not hasattr(model, "decisions"):
        out = [Decision(label, "op", tuple(ops[0].names)) for label, ops in groups.items()]
        check_decisions(out)
        return out
    out = list(model.decisions())
    labels = [d.label for d in out]
    if labels != list(groups):
        raise ValueError(
            f"{type(model).__name__}.decisions() lists {labels[:4]}..., its choices are "
            f"{list(groups)[:4]}...: they must be the same labels in the same order"
        )
    sizes = OrderedDict((label, len(ops[0].ops)) for label, ops in groups.items())
    wrong = [d.label for d in out if len(d.names) != sizes[d.label]]
    if wrong:
        raise ValueError(f"decisions {wrong[:4]} do not have as many candidates as their choice")
    check_decisions(out)
    return out

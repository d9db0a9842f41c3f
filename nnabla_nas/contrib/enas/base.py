"""What the two ENAS spaces share: their decisions described from the configuration alone, the
genotype check, and the fixed network's bookkeeping.

A space's decisions (:class:`~nnabla_nas.contrib.decisions.Decision`, one per label) follow from
its configuration (:meth:`EnasModel.decision_specs`), so a fixed network validates a genotype
without building the supernet, and the size of the space is known without building anything.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from typing import Any, ClassVar, Mapping

import numpy as np

from ...errors import GenotypeError, NnasError
from ...genotype import Genotype
from ..decisions import Decision
from ..model import Model

__all__ = ["EnasModel", "reduction_after"]

logger = logging.getLogger(__name__)


def reduction_after(num_layers: int) -> tuple[int, int]:
    """The two (1-based) layers of a macro network after which every earlier output is halved:
    ``p`` and ``2p`` with ``p = num_layers // 3`` (the 4th and 8th of 12, as in the paper)."""
    p = num_layers // 3
    return p, 2 * p


class EnasModel(Model):
    """Base of ``enas_macro`` and ``enas_micro``.

    Subclasses implement :meth:`decision_specs` and build, from ``self.chosen`` (set by
    :meth:`parse_genotype`), either the supernet (``chosen is None``) or the fixed network.
    """

    #: The genotype the fixed network was built from (``label -> candidate``), None for a
    #: supernet.
    chosen: OrderedDict[str, str] | None = None
    space_name: ClassVar[str] = ""

    @classmethod
    def decision_specs(cls, cfg: Any) -> list[Decision]:  # pragma: no cover - abstract
        """The decisions of the supernet of ``cfg``, in the order of its choices."""
        raise NotImplementedError

    def decisions(self) -> list[Decision]:
        """The decisions of this supernet (none for a fixed network), one per label."""
        return [] if self.is_fixed else self.decision_specs(self.cfg)

    @property
    def is_fixed(self) -> bool:
        """True for a network built from a genotype."""
        return self.chosen is not None

    @classmethod
    def search_space_size(cls, cfg: Any) -> int:
        """The number of architectures: the product of every decision's candidate count."""
        return math.prod(len(d.names) for d in cls.decision_specs(cfg))

    def parse_genotype(self, genotype: Any) -> OrderedDict[str, str] | None:
        """Checks a genotype (``label -> candidate`` or a Genotype of this space) against the
        decisions of ``self.cfg``; returns it in decision order (None for None).

        Raises:
            GenotypeError: another space, unknown or missing labels, or an unknown candidate.
        """
        if genotype is None:
            return None
        where = self.genotype_source(genotype)
        choices = genotype.choices if isinstance(genotype, Genotype) else genotype
        if not isinstance(choices, Mapping):
            raise GenotypeError(
                f"{where}: expected label -> candidate, got {type(choices).__name__}",
                key="genotype",
            )
        specs = {d.label: d for d in self.decision_specs(self.cfg)}
        unknown = [k for k in choices if k not in specs]
        missing = [k for k in specs if k not in choices]
        if unknown or missing:
            raise GenotypeError(
                f"{where} does not match this {self.space_name} configuration: unknown labels "
                f"{unknown[:5]}, missing labels {missing[:5]}; was it searched with the same "
                "num_layers (and num_nodes)?",
                key="genotype",
            )
        for label, d in specs.items():
            if choices[label] not in d.names:
                raise GenotypeError(
                    f"{where} chooses {choices[label]!r} for {label!r}, which is not one of its "
                    f"candidates {list(d.names)}",
                    key="genotype",
                )
        return OrderedDict((label, str(choices[label])) for label in specs)

    def genotype_of(self, architecture: Mapping[str, int]) -> OrderedDict[str, str]:
        """An architecture ``label -> candidate index`` as a genotype ``label -> candidate``.

        Raises:
            KeyError: a label of this space is missing.
        """
        return OrderedDict(
            (d.label, d.names[int(architecture[d.label])]) for d in self.decision_specs(self.cfg)
        )

    def drawn_genotype(self, architecture: Any = None) -> OrderedDict[str, str]:
        """What :meth:`arch_graph`, the exports and the summary draw: the fixed network's
        genotype, or (supernet) ``architecture``: ``{label: candidate index}`` (a searcher's
        exported one) or ``{label: candidate name}`` (checked).

        Raises:
            GenotypeError: a supernet without an architecture, or one that does not fit.
        """
        if self.chosen is not None:
            return OrderedDict(self.chosen)
        if not architecture:
            raise GenotypeError(f"the {self.space_name} supernet is drawn for an architecture")
        if all(isinstance(v, (int, np.integer)) for v in architecture.values()):
            return self.parse_genotype(self.genotype(architecture))
        return self.parse_genotype(architecture)

    def num_params(self, architecture: Mapping[str, int] | None = None) -> int:
        """The number of learnable weights; with ``architecture`` (a supernet): those of its
        fixed network (built to count them)."""
        if architecture is not None and not self.is_fixed:
            return type(self)(self.cfg, genotype=self.genotype(architecture)).num_params()
        return super().num_params()

    def fixed_parameters(self, architecture: Mapping[str, int]) -> OrderedDict[str, Any]:
        """Not available: the paper retrains the fixed network from scratch, whose layers are not
        those of the supernet (e.g. the macro fixed network concatenates its skip connections).

        Raises:
            NnasError: always.
        """
        raise NnasError(
            f"the {self.space_name} fixed network does not inherit supernet weights: retrain it "
            "from scratch (network.genotype with the Trainer)"
        )

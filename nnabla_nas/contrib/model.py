"""The base of every search space: loss, metrics, labelled choices and genotype export.

A space is a :class:`~nnabla_nas.module.Module` tree whose choice points are
:class:`~nnabla_nas.module.MixedOp` modules. Each decision is known by a stable label (see
:func:`~nnabla_nas.module.choice_groups`: the MixedOp's module path, e.g. ``"blocks/3"``, unless
the space gives several MixedOps one shared label), used in every output file. The space holds
no optimizer, sampling policy, reward or architecture parameter: searchers see it only through
:meth:`Model.choices` and own the architecture state.

An architecture of a supernet is ``{label: candidate index}`` (what a searcher exports); the
methods that describe one (:meth:`Model.genotype`, :meth:`Model.arch_graph`,
:meth:`Model.export_files`, :meth:`Model.fixed_parameters`) take it as an argument. A space built
from a genotype (the fixed network) puts the chosen candidate of choice ``label`` at module path
``label`` itself; :meth:`Model.fixed_parameters` and :meth:`Model.copy_chosen_weights` rely on
that to carry weights from a supernet to its fixed network.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import nnabla as nn
import nnabla.functions as F
import numpy as np

from ..errors import ConfigError, GenotypeError
from ..genotype import Genotype
from ..module import MixedOp, Module, arch_parameters, choice_groups, net_parameters
from ..visualize import ArchGraph, ArchNode, kernel_of

__all__ = ["Model"]

logger = logging.getLogger(__name__)

#: An architecture of a supernet: ``{choice label: candidate index}``.
Architecture = Mapping[str, int]

#: Candidate names drawn as a removed block.
SKIP_NAMES = frozenset({"skip_connect", "identity", "skip"})


def _split_outputs(outputs: Any) -> tuple[nn.Variable, nn.Variable | None]:
    if isinstance(outputs, (tuple, list)):
        return outputs[0], (outputs[1] if len(outputs) > 1 else None)
    return outputs, None


class Model(Module):
    """Base class of the search spaces.

    Subclasses set :attr:`space_name` (their registry name), implement ``call(x) -> logits`` (or
    ``(logits, aux_logits)``), define a ``Config`` dataclass and are built as
    ``Space(cfg, genotype=None, rng=None)``.
    """

    #: The search space's registry name (written into genotype files).
    space_name: ClassVar[str] = ""
    #: False for a space that is a fixed network (``random_wired``): no choices to search.
    searchable: ClassVar[bool] = True

    def call(self, x: nn.Variable) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement call(x)")

    # ------------------------------------------------------------------ losses and metrics

    @staticmethod
    def prepare(
        cfg: Any, genotype: Any, rng: np.random.RandomState | None
    ) -> np.random.RandomState:
        """What every space's constructor does first: checks ``cfg``, refuses a genotype path
        that the caller did not load, and returns the weights' RNG (seed 0 when none is given).
        """
        cfg.check()
        if getattr(cfg, "genotype", None) is not None and genotype is None:
            raise ConfigError(
                f"the genotype file {cfg.genotype!r} must be loaded by the caller "
                "(nnabla_nas.genotype.load_genotype) and passed as `genotype`",
                key="genotype",
            )
        return np.random.RandomState(0) if rng is None else rng

    def genotype_source(self, genotype: Any) -> str:
        """How error messages name ``genotype`` (its file when it has one); a
        :class:`~nnabla_nas.genotype.Genotype` of another space is a GenotypeError."""
        if not isinstance(genotype, Genotype):
            return "the genotype"
        where = f"genotype file {genotype.source!r}" if genotype.source else "the genotype"
        if genotype.space.lower() != self.space_name:
            raise GenotypeError(
                f"{where} belongs to search space {genotype.space!r}, not {self.space_name!r}",
                key="genotype",
            )
        return where

    def check_input(self, x: nn.Variable) -> None:
        """Refuses an input that is not ``(batch, self.in_channels, height, width)``."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ConfigError(
                f"the network expects inputs (batch, {self.in_channels}, height, width), got "
                f"{tuple(x.shape)}; set network.in_channels to the images' channels "
                "(input_shape[0])",
                key="in_channels",
            )

    def loss(self, outputs: Any, target: nn.Variable, aux_weight: float = 0.0) -> nn.Variable:
        """Mean softmax cross-entropy.

        Args:
            outputs: logits ``(B, classes)``, or ``(logits, aux_logits)`` with an auxiliary head.
            target: int labels ``(B, 1)``.
            aux_weight: weight of the auxiliary head's cross-entropy (ignored without one).
        """
        logits, aux = _split_outputs(outputs)
        loss = F.mean(F.softmax_cross_entropy(logits, target))
        if aux is not None and aux_weight:
            loss = loss + aux_weight * F.mean(F.softmax_cross_entropy(aux, target))
        return loss

    def error(self, outputs: Any, target: nn.Variable) -> nn.Variable:
        """Top-1 error rate over the batch (a scalar expression in [0, 1])."""
        logits, _ = _split_outputs(outputs)
        return F.mean(F.top_n_error(logits, target, axis=1, n=1))

    # ------------------------------------------------------------------ parameters

    def get_arch_parameters(self, grad_only: bool = False) -> OrderedDict[str, nn.Variable]:
        """The architecture parameters a ported space declares (MixedOps' ``alpha``), path ->
        Parameter; empty for spaces that only declare choices (searchers own the logits)."""
        params = arch_parameters(self)
        return OrderedDict((k, v) for k, v in params.items() if v.need_grad or not grad_only)

    def get_net_parameters(self, grad_only: bool = False) -> OrderedDict[str, nn.Variable]:
        """The weights (everything but declared architecture parameters), path -> Parameter."""
        params = net_parameters(self)
        return OrderedDict((k, v) for k, v in params.items() if v.need_grad or not grad_only)

    def num_params(self, architecture: Architecture | None = None) -> int:
        """The number of learnable weights (``need_grad``), architecture parameters excluded.

        Args:
            architecture: count only the weights of this architecture's path (those of its
                fixed network); None counts every weight.
        """
        params = self.get_net_parameters(grad_only=True)
        if architecture is not None:
            active = {id(v) for v in self.fixed_parameters(architecture).values()}
            params = OrderedDict((k, v) for k, v in params.items() if id(v) in active)
        return int(sum(v.size for v in params.values()))

    # ------------------------------------------------------------------ choices

    def choices(self) -> OrderedDict[str, MixedOp]:
        """Every decision of the space, ``label -> MixedOp`` (the first of the MixedOps that
        share the label), in module order. See :func:`~nnabla_nas.module.choice_groups`."""
        return OrderedDict((label, ops[0]) for label, ops in choice_groups(self).items())

    def check_architecture(self, architecture: Architecture, source: str = "architecture") -> None:
        """Refuses an architecture that does not give one valid candidate per decision.

        Raises:
            GenotypeError: a label is missing or unknown, or an index is out of range.
        """
        choices = self.choices()
        missing = [k for k in choices if k not in architecture]
        unknown = [k for k in architecture if k not in choices]
        if missing or unknown:
            raise GenotypeError(
                f"{source} does not fit this {self.space_name!r} network: missing choices "
                f"{missing[:5]}, unknown choices {unknown[:5]}"
            )
        for label, op in choices.items():
            if not 0 <= int(architecture[label]) < len(op.ops):
                raise GenotypeError(
                    f"{source}: candidate {architecture[label]} of {label!r} is out of range "
                    f"(0..{len(op.ops) - 1})"
                )

    def genotype(self, architecture: Architecture) -> OrderedDict[str, str]:
        """The names of an architecture's candidates, ``label -> candidate name``."""
        return OrderedDict(
            (label, op.names[int(architecture[label])]) for label, op in self.choices().items()
        )

    def architecture_of(self, genotype: Mapping[str, str]) -> OrderedDict[str, int]:
        """The inverse of :meth:`genotype`: ``label -> candidate index`` from candidate names.

        Raises:
            GenotypeError: a label is missing or a name is not one of the choice's candidates.
        """
        out = OrderedDict()
        for label, op in self.choices().items():
            if label not in genotype or genotype[label] not in op.names:
                raise GenotypeError(
                    f"the genotype gives {genotype.get(label)!r} for {label!r}; its candidates "
                    f"are {op.names}"
                )
            out[label] = op.names.index(genotype[label])
        return out

    def to_genotype(
        self,
        architecture: Architecture,
        logits: Mapping[str, np.ndarray] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Genotype:
        """An architecture as a Genotype (``arch.h5``): its candidate names, the searcher's
        ``logits`` (file key -> array, may be empty) and ``extra`` information."""
        return Genotype(
            self.space_name, self.genotype(architecture), OrderedDict(logits or {}),
            dict(extra or {}),
        )  # fmt: skip

    # ------------------------------------------------------------------ supernet -> fixed net

    def fixed_parameters(self, architecture: Architecture) -> OrderedDict[str, nn.Variable]:
        """The weights of an architecture's path, keyed by their paths in the fixed network.

        Parameters inside the chosen candidate of choice ``label`` (supernet path
        ``label/ops/j/rest``) are keyed ``label/rest``; weights outside any choice keep their
        path; unchosen candidates and architecture parameters are left out. Includes parameters
        with ``need_grad=False`` (e.g. batch-norm running statistics).
        """
        paths = {}
        for path, module in self.get_modules():
            paths.setdefault(id(module), path)
        label_of = {id(op): lab for lab, ops in choice_groups(self).items() for op in ops}
        dead: set[int] = set()  # modules inside unchosen candidates
        drop: set[int] = set()  # their parameters
        rewrites: list[tuple[str, str]] = []  # (chosen op path, label), outer choices first
        for path, op in self.get_modules():
            if not isinstance(op, MixedOp) or id(op) in dead:
                continue
            best = int(architecture[label_of[id(op)]])
            label = path  # the fixed network puts the chosen candidate at the MixedOp's path
            for j, cand in enumerate(op.ops):
                if j == best:
                    rewrites.append((paths[id(cand)], label))
                    continue
                dead.update(id(m) for _, m in cand.get_modules())
                drop.update(id(v) for v in cand.get_parameters().values())
        out = OrderedDict()
        for path, var in self.get_net_parameters().items():
            if id(var) in drop:
                continue
            for prefix, label in reversed(rewrites):  # innermost first
                if path.startswith(prefix + "/"):
                    path = label + path[len(prefix) :]
            out[path] = var
        return out

    def copy_chosen_weights(self, fixed: Model, architecture: Architecture) -> None:
        """Copies the weights of ``architecture``'s path of this supernet into ``fixed`` (the
        fixed network built from ``genotype(architecture)``).

        Raises:
            ValueError: a weight of ``fixed`` has no counterpart here, or shapes differ.
        """
        source = self.fixed_parameters(architecture)
        target = fixed.get_net_parameters()
        missing = [k for k in target if k not in source]
        extra = [k for k in source if k not in target]
        if missing or extra:
            raise ValueError(
                f"the fixed network does not match the argmax path: missing {missing[:5]}, "
                f"unexpected {extra[:5]}"
            )
        for path, var in target.items():
            if var.shape != source[path].shape:
                raise ValueError(f"{path}: shape {var.shape} != {source[path].shape}")
            var.d = source[path].d.copy()

    # ------------------------------------------------------------------ training schedule

    def set_progress(self, fraction: float) -> None:
        """Called by the loop at the start of every epoch with the fraction of training done
        (in [0, 1]), for what a space schedules over training (e.g. ``zoph``'s path dropout).
        Nothing by default."""

    # ------------------------------------------------------------------ exports

    def export_files(
        self,
        folder: Path,
        architecture: Architecture,
        probabilities: Mapping[str, np.ndarray] | None = None,
    ) -> list[Path]:
        """Writes the space's own architecture files into ``folder`` (atomically); returns them.

        Called after every search epoch, next to ``arch.h5`` and ``arch.png``, with the found
        architecture and, from searchers that have them, its probabilities (``label ->
        array``); a fixed network is called once at the start of training with ``{}``. Nothing
        by default; e.g. the ``darts`` space writes ``arch.json``, ``normal.png`` and
        ``reduce.png``.
        """
        return []

    # ------------------------------------------------------------------ drawing

    def arch_graph(
        self,
        input_shape: Sequence[int],
        architecture: Architecture,
        probabilities: Mapping[str, np.ndarray] | None = None,
    ) -> ArchGraph:
        """What :mod:`nnabla_nas.visualize` draws of an architecture: by default a chain of its
        choices (``{}`` for a fixed network).

        Spaces override it to add their fixed layers and tensor shapes.
        """
        nodes = [ArchNode("input", "input", "input", tuple(input_shape))]
        for i, (label, name) in enumerate(self.genotype(architecture).items()):
            skip = name in SKIP_NAMES
            nodes.append(
                ArchNode(
                    f"c{i}", f"{label}\\n{name}", "skip" if skip else "op", kernel=kernel_of(name)
                )
            )
        nodes.append(ArchNode("output", "output", "output"))
        return ArchGraph.chain(nodes)

"""The base of every search space: loss, metrics, labelled choices and genotype export.

A space is a :class:`~nnabla_nas.module.Module` tree whose choice points are
:class:`~nnabla_nas.module.MixedOp` modules. Each choice is known by a stable label, its module
path (e.g. ``"blocks/3"``). The space holds no optimizer, sampling policy or reward: searchers see
it only through :meth:`Model.choices` and the parameter split of :mod:`nnabla_nas.module`.

A space built from a genotype (the fixed network) puts the chosen candidate of choice ``label``
at module path ``label`` itself; :meth:`Model.fixed_parameters` and
:meth:`Model.copy_chosen_weights` rely on that to carry weights from a supernet to its fixed
network.
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
        """The architecture parameters (every MixedOp's ``alpha``), path -> Parameter."""
        params = arch_parameters(self)
        return OrderedDict((k, v) for k, v in params.items() if v.need_grad or not grad_only)

    def get_net_parameters(self, grad_only: bool = False) -> OrderedDict[str, nn.Variable]:
        """The weights (everything but architecture parameters), path -> Parameter."""
        params = net_parameters(self)
        return OrderedDict((k, v) for k, v in params.items() if v.need_grad or not grad_only)

    def num_params(self, only_active: bool = False) -> int:
        """The number of learnable weights (``need_grad``), architecture parameters excluded.

        Args:
            only_active: count only the argmax path of every choice (the architecture
                :meth:`genotype` exports), i.e. the weights of the fixed network.
        """
        params = self.get_net_parameters(grad_only=True)
        if only_active:
            active = {id(v) for v in self.fixed_parameters().values()}
            params = OrderedDict((k, v) for k, v in params.items() if id(v) in active)
        return int(sum(v.size for v in params.values()))

    # ------------------------------------------------------------------ choices

    def choices(self) -> OrderedDict[str, MixedOp]:
        """Every decision of the space, ``label -> MixedOp``, in module order.

        The label is the MixedOp's ``label`` when the space gives one, else its module path
        (stable: it depends only on the configuration). MixedOps sharing a label are one
        decision, listed once (by the first of them); :func:`~nnabla_nas.module.choice_groups`
        lists them all.
        """
        return OrderedDict((label, ops[0]) for label, ops in choice_groups(self).items())

    @staticmethod
    def chosen_index(op: MixedOp) -> int:
        """The argmax candidate of a choice."""
        return int(np.argmax(op.probabilities()))

    def genotype(self) -> OrderedDict[str, str]:
        """The argmax architecture, ``label -> candidate name``."""
        return OrderedDict(
            (label, op.names[self.chosen_index(op)]) for label, op in self.choices().items()
        )

    def to_genotype(self, extra: Mapping[str, Any] | None = None) -> Genotype:
        """The argmax architecture with the architecture logits, as a Genotype."""
        logits = OrderedDict(
            (path, np.array(p.d, copy=True)) for path, p in self.get_arch_parameters().items()
        )
        return Genotype(self.space_name, self.genotype(), logits, dict(extra or {}))

    def set_arch_logits(self, logits: Mapping[str, np.ndarray], source: str = "genotype") -> None:
        """Loads architecture logits (e.g. ``Genotype.logits``) into this supernet.

        Raises:
            GenotypeError: a path is unknown or a shape differs (naming ``source``).
        """
        params = self.get_arch_parameters()
        for path, value in logits.items():
            value = np.asarray(value)
            if path not in params:
                raise GenotypeError(
                    f"{source}: architecture parameter {path!r} does not exist in this "
                    f"{self.space_name!r} network; valid: {', '.join(params) or 'none'}"
                )
            if tuple(value.shape) != tuple(params[path].shape):
                raise GenotypeError(
                    f"{source}: architecture parameter {path!r} has shape {value.shape}, "
                    f"the network expects {params[path].shape}"
                )
            params[path].d = value

    def summary(self) -> str:
        """A table of the choices: label, argmax candidate, its probability."""
        choices = self.choices()
        if not choices:
            return f"{type(self).__name__}: fixed network, no architecture choices"
        rows = []
        for label, op in choices.items():
            probs = op.probabilities()
            best = int(np.argmax(probs))
            rows.append((label, op.names[best], f"{probs[best]:.3f}", str(len(probs))))
        head = ("choice", "argmax", "prob", "n")
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [head, *rows]
        ]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)

    # ------------------------------------------------------------------ supernet -> fixed net

    def fixed_parameters(self) -> OrderedDict[str, nn.Variable]:
        """The weights of the argmax path, keyed by their paths in the fixed network.

        Parameters inside the chosen candidate of choice ``label`` (supernet path
        ``label/ops/j/rest``) are keyed ``label/rest``; weights outside any choice keep their
        path; unchosen candidates and architecture parameters are left out. Includes parameters
        with ``need_grad=False`` (e.g. batch-norm running statistics).
        """
        paths = {}
        for path, module in self.get_modules():
            paths.setdefault(id(module), path)
        dead: set[int] = set()  # modules inside unchosen candidates
        drop: set[int] = set()  # their parameters
        rewrites: list[tuple[str, str]] = []  # (chosen op path, label), outer choices first
        for label, op in self.choices().items():
            if id(op) in dead:
                continue
            best = self.chosen_index(op)
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

    def copy_chosen_weights(self, fixed: Model) -> None:
        """Copies this supernet's argmax-path weights into ``fixed`` (built from genotype()).

        Raises:
            ValueError: a weight of ``fixed`` has no counterpart here, or shapes differ.
        """
        source = self.fixed_parameters()
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

    # ------------------------------------------------------------------ exports

    def export_files(self, folder: Path) -> list[Path]:
        """Writes the space's own architecture files into ``folder`` (atomically); returns them.

        Called by the searchers after every epoch, next to ``arch.h5`` and ``arch.png``. Nothing
        by default; e.g. the ``darts`` space writes ``arch.json``, ``normal.png`` and
        ``reduce.png``.
        """
        return []

    # ------------------------------------------------------------------ drawing

    def arch_graph(self, input_shape: Sequence[int]) -> ArchGraph:
        """What :mod:`nnabla_nas.visualize` draws: by default a chain of the argmax choices.

        Spaces override it to add their fixed layers and tensor shapes.
        """
        nodes = [ArchNode("input", "input", "input", tuple(input_shape))]
        for i, (label, name) in enumerate(self.genotype().items()):
            skip = name in SKIP_NAMES
            nodes.append(
                ArchNode(
                    f"c{i}", f"{label}\\n{name}", "skip" if skip else "op", kernel=kernel_of(name)
                )
            )
        nodes.append(ArchNode("output", "output", "output"))
        return ArchGraph.chain(nodes)

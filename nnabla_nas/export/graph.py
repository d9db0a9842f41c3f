"""A fixed network's inference graph, and its NNP file (``nnabla.utils.save``).

The graph is built once in inference mode (``training=False``: batch normalisation uses its
running statistics, dropout and drop-path are off) on an input of shape
``(batch_size, *input_shape)``; its output is the network's logits (the first output of a network
that returns ``(logits, aux_logits)``). Every leaf of the graph other than the input becomes a
parameter of the file, named by its path in the module tree (``features/0/_W``); fixed weights
(``fix_parameters=True``, plain ``nn.Variable`` attributes) are named by their attribute path too,
and any other constant ``constant_<i>``.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import nnabla as nn

from ..errors import ConfigError
from ..module import Module, choice_groups
from ..utils.io import atomic_path

__all__ = ["ExportError", "InferenceGraph", "export_nnp", "inference_graph", "write_nnp"]

logger = logging.getLogger(__name__)


class ExportError(ConfigError):
    """The network cannot be exported as asked (exit code 2): open choices, a function the
    format cannot express, a missing exporter. The message says what to do instead."""


@dataclass
class InferenceGraph:
    """A network's inference graph.

    Attributes:
        x: the input variable, shape ``(batch_size, *input_shape)``.
        y: the output (the logits).
        parameters: every other leaf of the graph, ``name -> variable``, in module order.
        input_name: the input's name in exported files.
        output_name: the output's name in exported files.
    """

    x: nn.Variable
    y: nn.Variable
    parameters: OrderedDict[str, nn.Variable]
    input_name: str = "x"
    output_name: str = "y"

    @property
    def batch_size(self) -> int:
        """The batch size of the input."""
        return int(self.x.shape[0])


def inference_graph(
    model: Module,
    input_shape: Sequence[int],
    batch_size: int = 1,
    input_name: str = "x",
    output_name: str = "y",
) -> InferenceGraph:
    """Builds ``model``'s inference graph on an input of shape ``(batch_size, *input_shape)``.

    The model's ``training`` flags are restored afterwards.

    Args:
        model: a fixed network (no open choice: a space built from a genotype, or any Module
            without a :class:`~nnabla_nas.module.MixedOp`).
        input_shape: one example's shape, e.g. ``(3, 32, 32)``.
        batch_size: the batch of the graph (1 by default: one image per inference).
        input_name: the input's name in exported files.
        output_name: the output's name in exported files.

    Raises:
        ExportError: ``batch_size`` or ``input_shape`` is not positive, or the network still
            has open choices.
    """
    shape = _check_shapes(input_shape, batch_size)
    groups = choice_groups(model)
    if groups:
        labels = list(groups)
        raise ExportError(
            f"the network still has {len(labels)} open choice(s) ({', '.join(labels[:3])}"
            f"{', ...' if len(labels) > 3 else ''}): export a fixed network, built from a "
            "genotype (network.genotype: the arch.h5 of a search)",
            key="network",
        )
    flags = [(m, m.training) for _, m in model.get_modules()]
    model.training = False
    try:
        x = nn.Variable((batch_size, *shape))
        outputs = model(x)
    finally:
        for module, flag in flags:  # parents first: a child's own flag is set after its parent's
            module.training = flag
    y = outputs[0] if isinstance(outputs, (tuple, list)) else outputs
    if not isinstance(y, nn.Variable):
        raise ExportError(
            f"{type(model).__name__} returned {type(y).__name__}, not an nn.Variable: the "
            "exported network must return its output (or a tuple whose first item is it)"
        )
    return InferenceGraph(x, y, _leaf_names(model, x, y), input_name, output_name)


def write_nnp(
    graph: InferenceGraph, path: str | os.PathLike, network_name: str = "network"
) -> Path:
    """Writes ``graph`` as an NNP file with ``nnabla.utils.save``, atomically.

    The file holds one network (``network_name``, its batch dimension variable: nnabla's loader
    can run it at any batch size) and one executor ``runtime`` from ``graph.input_name`` to
    ``graph.output_name``, with every parameter.
    """
    from nnabla.utils.save import save

    contents = {
        "networks": [
            {
                "name": network_name,
                "batch_size": graph.batch_size,
                "outputs": {graph.output_name: graph.y},
                "names": {graph.input_name: graph.x},
            }
        ],
        "executors": [
            {
                "name": "runtime",
                "network": network_name,
                "data": [graph.input_name],
                "output": [graph.output_name],
            }
        ],
    }
    path = Path(path)
    if path.suffix != ".nnp":
        raise ExportError(f"an NNP file must end in .nnp, got {path.name!r}", key="--output")
    # nnabla.utils.save names parameters from the current parameter scope: a private scope
    # holding this graph's parameters, by path, leaves nnabla's global scope untouched.
    with atomic_path(path) as tmp, nn.parameter_scope("", OrderedDict()):
        for name, var in graph.parameters.items():
            nn.parameter.set_parameter(name, var)
        save(tmp, contents, variable_batch_size=True)
    logger.info("wrote %s (%d parameters)", path, len(graph.parameters))
    return path


def export_nnp(
    model: Module,
    input_shape: Sequence[int],
    path: str | os.PathLike,
    batch_size: int = 1,
    network_name: str = "network",
) -> Path:
    """Writes ``model``'s inference graph as an NNP file (nnabla's format), atomically.

    Read it back with ``nnabla.utils.nnp_graph.NnpLoader(path).get_network(network_name)``:
    its input is ``x``, its output ``y`` (the logits).

    Args:
        model: a fixed network (see :func:`inference_graph`).
        input_shape: one example's shape, e.g. ``(3, 32, 32)``.
        path: the ``.nnp`` file to write.
        batch_size: the batch of the saved network (1 by default).
        network_name: the network's name in the file.

    Returns:
        The path written.

    Raises:
        ExportError: see :func:`inference_graph`; ``path`` does not end in ``.nnp``.
    """
    return write_nnp(inference_graph(model, input_shape, batch_size), path, network_name)


def _check_shapes(input_shape: Sequence[int], batch_size: int) -> tuple[int, ...]:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ExportError(f"must be a positive integer, got {batch_size!r}", key="batch_size")
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        shape = ()
    if not shape or any(d < 1 for d in shape):
        raise ExportError(
            f"expected one example's shape of positive sizes (e.g. [3, 32, 32]), got "
            f"{input_shape!r}",
            key="input_shape",
        )
    return shape


def _leaf_names(model: Module, x: nn.Variable, y: nn.Variable) -> OrderedDict[str, nn.Variable]:
    """Every leaf of ``y``'s graph but ``x``, named by its path in ``model``."""
    known: dict[Any, str] = {}
    for name, var in _variables_of(model):
        known.setdefault(var.data, name)
    leaves: list[nn.Variable] = []
    seen = {x.data}

    def visit(func: Any) -> None:
        for var in func.inputs:
            if var.parent is None and var.data not in seen:
                seen.add(var.data)
                leaves.append(var)

    y.visit(visit)
    order = {name: i for i, name in enumerate(known.values())}
    named = sorted(
        ((known.get(v.data), v) for v in leaves),
        key=lambda item: order.get(item[0], len(order)) if item[0] else len(order),
    )
    out: OrderedDict[str, nn.Variable] = OrderedDict()
    for name, var in named:
        if name is None:
            name = f"constant_{sum(k.startswith('constant_') for k in out)}"
        out[name] = var
    return out


def _variables_of(model: Module) -> Iterator[tuple[str, nn.Variable]]:
    """The Parameters by path, then any other ``nn.Variable`` attribute by its path."""
    yield from model.get_parameters().items()
    for prefix, module in model.get_modules():
        for attr, value in vars(module).items():
            if isinstance(value, nn.Variable) and attr not in module.parameters:
                yield (f"{prefix}/{attr}" if prefix else attr), value

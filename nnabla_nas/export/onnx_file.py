"""ONNX export through nnabla-converter's exporter (``nnabla.utils.converter.onnx``).

The network's NNP (:func:`~nnabla_nas.export.graph.write_nnp`, in a temporary folder) is read by
the converter's ``NnpImporter`` and written by its ``OnnxExporter``; the result is checked with
``onnx.checker`` before it replaces the target file. TensorFlow, which nnabla-converter declares
as a dependency, is never imported: the ``export`` extra installs ``onnx`` and nnabla-converter
without its dependencies.

One correction over the converter: it writes an average pooling that excludes the padding
(``including_pad=False``, DARTS' ``avg_pool_3x3``) as an edge-replicating pad followed by a plain
average, which gives other numbers at the borders. Here it becomes ONNX ``AveragePool`` with
``pads`` and ``count_include_pad=0``, which is nnabla's definition.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any, Sequence

from ..module import Module
from ..utils.io import atomic_path
from .graph import ExportError, InferenceGraph, inference_graph, write_nnp

__all__ = ["OPSETS", "export_onnx", "require_converter", "write_onnx"]

logger = logging.getLogger(__name__)

#: The ONNX opsets nnabla-converter 1.39 writes (it silently falls back to 7 for others).
OPSETS = (7, 9, 10, 11, 13)

_INSTALL = (
    "pip install -e '.[export]' && pip install --no-deps nnabla-converter==1.39.0 "
    "(make setup does both)"
)


def require_converter() -> tuple[Any, Any, Any]:
    """``(NnpImporter, OnnxExporter, onnx)``, or an ExportError saying how to install them."""
    try:
        import onnx
        from nnabla.utils.converter.nnabla import NnpImporter
        from nnabla.utils.converter.onnx import OnnxExporter
    except ImportError as err:
        raise ExportError(
            f"ONNX export needs onnx and nnabla-converter ({err}); install them with {_INSTALL}",
            key="--format",
        ) from None
    return NnpImporter, OnnxExporter, onnx


def _average_pooling(exporter: Any, fallback: Any, func: Any) -> list[Any]:
    """The exporter's AveragePooling, exact for ``including_pad=False`` (see the module doc)."""
    import onnx

    param = func.average_pooling_param
    if param.including_pad:
        return fallback(func)
    kernel = list(param.kernel.dim)
    rank = len(exporter._var_dict[func.input[0]].dim)
    if not param.ignore_border or param.channel_last or rank != len(kernel) + 2:
        raise ExportError(
            "the nnabla function AveragePooling with including_pad=False "
            f"(ignore_border={param.ignore_border}, channel_last={param.channel_last}, "
            f"{rank}-D input) has no exact ONNX equivalent here; export as NNP (--format nnp)",
            key="--format",
        )
    pads = list(param.pad.dim)
    node = onnx.helper.make_node(
        "AveragePool",
        [func.input[0]],
        [func.output[0]],
        kernel_shape=kernel,
        strides=list(param.stride.dim),
        pads=pads + pads,
        count_include_pad=0,
    )
    return [node]


def _exporter(nnp: Any, batch_size: int, opset: int) -> Any:
    _, OnnxExporter, _ = require_converter()
    exporter = OnnxExporter(nnp, batch_size, -1, opset=str(opset))
    table = exporter.nnabla_function_type_to_onnx_optype
    if "AveragePooling" in table:
        table = dict(table)  # the converter's tables are shared by its opset variants
        table["AveragePooling"] = partial(_average_pooling, exporter, table["AveragePooling"])
        exporter.nnabla_function_type_to_onnx_optype = table
    return exporter


def _check_supported(nnp: Any, exporter: Any, opset: int) -> None:
    """Refuses, before writing, the nnabla functions the exporter cannot express."""
    table = exporter.nnabla_function_type_to_onnx_optype
    missing: Counter[str] = Counter()
    for network in nnp.protobuf.network:
        for func in network.function:
            if func.type not in table:
                missing[func.type] += 1
    if missing:
        listed = ", ".join(f"{name} (x{count})" for name, count in sorted(missing.items()))
        raise ExportError(
            f"ONNX (opset {opset}) cannot express the nnabla function(s) {listed} used by this "
            "network; export it as NNP (--format nnp), or replace the layer that calls them",
            key="--format",
        )


def write_onnx(graph: InferenceGraph, path: str | os.PathLike, opset: int = 11) -> Path:
    """Writes ``graph`` as an ONNX file (checked by ``onnx.checker``), atomically.

    Raises:
        ExportError: the converter is not installed, ``opset`` is not one of :data:`OPSETS`, or
            the graph uses an nnabla function ONNX cannot express (the message names it).
    """
    if opset not in OPSETS:
        raise ExportError(f"expected one of {list(OPSETS)}, got {opset!r}", key="opset")
    NnpImporter, _, onnx = require_converter()
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="nnabla_nas_onnx_") as folder:
        nnp_path = write_nnp(graph, Path(folder) / "network.nnp")
        chatter = io.StringIO()  # the converter prints its progress; it goes to the debug log
        with contextlib.redirect_stdout(chatter):
            nnp = NnpImporter(str(nnp_path), expand_network=True, executor_index=None).execute()
            exporter = _exporter(nnp, graph.batch_size, opset)
            _check_supported(nnp, exporter, opset)
            with atomic_path(path) as tmp:
                try:
                    exporter.execute(tmp)
                except ValueError as err:  # the converter's word for what it cannot write
                    raise ExportError(
                        f"nnabla-converter cannot write this network as ONNX: {err}; export it "
                        "as NNP (--format nnp)",
                        key="--format",
                    ) from None
                try:
                    onnx.checker.check_model(onnx.load(tmp))
                except onnx.checker.ValidationError as err:
                    raise ExportError(f"the ONNX file fails onnx.checker: {err}") from None
        if chatter.getvalue().strip():
            logger.debug("nnabla-converter: %s", chatter.getvalue().strip())
    logger.info("wrote %s (ONNX opset %d)", path, opset)
    return path


def export_onnx(
    model: Module,
    input_shape: Sequence[int],
    path: str | os.PathLike,
    batch_size: int = 1,
    opset: int = 11,
) -> Path:
    """Writes ``model``'s inference graph as an ONNX file, atomically.

    The ONNX graph has one input ``x`` of shape ``(batch_size, *input_shape)`` and one output
    ``y`` (the logits); onnxruntime reproduces nnabla's outputs (``tests/export/test_export.py``).

    Args:
        model: a fixed network (see :func:`~nnabla_nas.export.graph.inference_graph`).
        input_shape: one example's shape, e.g. ``(3, 32, 32)``.
        path: the ``.onnx`` file to write.
        batch_size: the batch of the exported graph (1 by default; ONNX shapes are fixed).
        opset: the ONNX opset, one of :data:`OPSETS`.

    Returns:
        The path written.

    Raises:
        ExportError: see :func:`write_onnx` and
            :func:`~nnabla_nas.export.graph.inference_graph`.
    """
    return write_onnx(inference_graph(model, input_shape, batch_size), path, opset)

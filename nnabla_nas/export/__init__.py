"""Export of a fixed network (the retrained network, or a search's argmax network) for inference.

- :func:`export_nnp` writes NNP, nnabla's own format (``nnabla.utils.save``), read back by
  ``nnabla.utils.nnp_graph.NnpLoader``;
- :func:`export_onnx` writes ONNX through nnabla-converter's exporter (the ``export`` extra).

Both export the inference graph (batch normalisation on its running statistics, no dropout) of
one input ``x`` of shape ``(batch_size, *input_shape)`` (batch 1 by default) to the logits ``y``.
The command ``nnabla-nas export -o RUN_DIR --format nnp|onnx`` (:mod:`nnabla_nas.cli.export`)
exports the network of a run folder.
"""

from __future__ import annotations

from .graph import ExportError, InferenceGraph, export_nnp, inference_graph, write_nnp
from .onnx_file import OPSETS, export_onnx, write_onnx

__all__ = [
    "ExportError",
    "InferenceGraph",
    "OPSETS",
    "export_nnp",
    "export_onnx",
    "inference_graph",
    "write_nnp",
    "write_onnx",
]

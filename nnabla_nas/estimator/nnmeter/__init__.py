"""``NnMeterEstimator``: nn-Meter's latency predictors on the nnabla graph, offline.

nn-Meter (Zhang et al., MobiSys 2021, the ``nn-meter`` package) predicts a network's latency on
an edge device as the sum of the predicted latencies of its *kernels*: groups of operations the
device's runtime fuses (``conv-bn-relu``, ``dwconv-bn-relu``, ``add``, ``fc``, ...), each
predicted by a random forest trained on latencies measured on that device.

How a network reaches nn-Meter
    :func:`to_nnmeter_ir` walks the nnabla graph of one architecture (built at the estimator's
    batch size in inference mode, by :func:`~nnabla_nas.estimator.base.inference_graph`) and
    writes nn-Meter's own graph IR (the dict its predictors take as ``model_type="nnmeter-ir"``):
    one node per nnabla function (``Convolution`` -> ``conv``, ``DepthwiseConvolution`` ->
    ``dwconv``, ``BatchNormalization`` -> ``bn``, ``ReLU``/``ReLU6`` -> ``relu``, ``Add2`` ->
    ``add``, ``Affine`` -> ``fc``, ``GlobalAveragePooling`` -> ``gap``, ...), NHWC shapes,
    kernel sizes and strides. nn-Meter's own kernel detector then fuses the nodes into kernels
    with the predictor's fusion rules, and nn-Meter's own ``predict`` sums the kernels. No ONNX,
    TensorFlow or PyTorch is involved.

Predictors
    - the four built-in ones (:data:`BUILTIN_PREDICTORS`) when their files are in nn-Meter's
      data folder (``<data_folder>/predictor/<name>/``: one ``<kernel>.pkl`` per kernel and
      ``fusion_rules.json``; ``data_folder`` is nn-Meter's setting, ``~/.nn_meter/data`` by
      default). A missing file is a :class:`~nnabla_nas.errors.ConfigError` naming the folder
      and the files. Nothing is ever downloaded: nn-Meter's download function is replaced by
      one that raises.
    - a custom predictor folder (the same layout) built by
      :mod:`nnabla_nas.estimator.nnmeter_build` from latencies measured on your device, or any
      folder nn-Meter's builder wrote.

nn-Meter's traps, handled here
    - kernels without a predictor count as 0 ms in nn-Meter, silently: they are logged as a
      WARNING (once per kernel type) with their names;
    - ``import nn_meter`` needs ``pkg_resources`` (``setuptools<82``): a clear error otherwise;
    - its published predictors are scikit-learn 0.2x pickles that current scikit-learn refuses
      (the tree node layout changed in 1.3): :func:`load_kernel_predictor` loads them through a
      compatibility unpickler that upgrades the trees and predicts with them directly.
"""

from __future__ import annotations

from ._runtime import (
    BUILTIN_PREDICTORS,
    DEFAULT_FUSION_RULES,
    FUSION_RULES,
    PREDICTOR_META,
    import_nn_meter,
    nn_meter_data_folder,
)
from .estimator import NnMeterEstimator, NnMeterOptions
from .ir import NnMeterGraph, kernel_features, kernel_name, to_nnmeter_ir
from .predictors import FastForest, NnMeterPredictor, load_kernel_predictor, load_predictor

__all__ = [
    "BUILTIN_PREDICTORS",
    "DEFAULT_FUSION_RULES",
    "FastForest",
    "PREDICTOR_META",
    "NnMeterEstimator",
    "NnMeterGraph",
    "NnMeterOptions",
    "NnMeterPredictor",
    "import_nn_meter",
    "kernel_name",
    "FUSION_RULES",
    "kernel_features",
    "load_kernel_predictor",
    "load_predictor",
    "nn_meter_data_folder",
    "to_nnmeter_ir",
]

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

import contextlib
import json
import logging
import os
import pickle
import warnings
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterator, Mapping, Sequence

import nnabla as nn
import nnabla.functions as F
import numpy as np

from ..errors import ConfigError, NnasError
from ..module import MixedOp, Module, choice_groups
from .base import Architecture, Distribution, Estimator, Layer, inference_graph, probabilities_of

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
    "kernel_features",
    "load_kernel_predictor",
    "load_predictor",
    "nn_meter_data_folder",
    "to_nnmeter_ir",
]

logger = logging.getLogger(__name__)

#: nn-Meter 2.0's built-in predictors (device_runtime).
BUILTIN_PREDICTORS = (
    "cortexA76cpu_tflite21",
    "adreno640gpu_tflite21",
    "adreno630gpu_tflite21",
    "myriadvpu_openvino2019r2",
)

#: Fusion rules of the custom predictors built here (nn-Meter's ``fusion_rules.json`` format):
#: a conv / depthwise conv absorbs its BN and activation, BN its activation, add its ReLU.
DEFAULT_FUSION_RULES: dict[str, dict[str, bool]] = {
    f"BF_{a}_{b}": {"obey": True}
    for a, b in [
        ("conv", "bn"),
        ("conv", "relu"),
        ("conv", "hswish"),
        ("dwconv", "bn"),
        ("dwconv", "relu"),
        ("dwconv", "hswish"),
        ("bn", "relu"),
        ("add", "relu"),
        ("fc", "relu"),
    ]
}

#: The metadata file of a predictor folder built by nnabla_nas (batch size, backend, fit).
PREDICTOR_META = "nnabla_nas_predictor.json"
FUSION_RULES = "fusion_rules.json"

#: nnabla function type -> nn-Meter op type. Other functions keep their lower-cased name: they
#: become kernels without a predictor (warned about).
_OP_TYPES = {
    "Convolution": "conv",
    "DepthwiseConvolution": "dwconv",
    "BatchNormalization": "bn",
    "ReLU": "relu",
    "ReLU6": "relu",
    "HardSwish": "hswish",
    "Add2": "add",
    "Affine": "fc",
    "GlobalAveragePooling": "gap",
    "AveragePooling": "avgpool",
    "MaxPooling": "maxpool",
    "Concatenate": "concat",
    "Constant": "Const",  # one of nn-Meter's dummy types: no kernel
}
#: Functions that only relabel memory: their consumers read their input's producer.
_PASS_THROUGH = frozenset({"Reshape", "Identity", "Sink"})
_INPUT = "input"

_NN_METER: Any = None


# ---------------------------------------------------------------------------------------------
# nn-Meter: import, data folder, offline guard
# ---------------------------------------------------------------------------------------------


def _no_download(url: str, *args: Any, **kwargs: Any) -> None:
    raise NnasError(
        f"nn-Meter tried to download {url}; nnabla_nas never downloads predictors. Put the "
        "predictor's files in nn-Meter's data folder (see the NnMeterEstimator docs)"
    )


def import_nn_meter() -> Any:
    """Imports ``nn_meter`` once, offline-guarded and quiet.

    nn-Meter's download function is replaced by one that raises (no network access ever), and
    its chatty logger (which prints every prediction to stdout) is set to WARNING.

    Raises:
        ConfigError: nn-Meter is not installed, or ``setuptools>=82`` removed the
            ``pkg_resources`` it imports.
    """
    global _NN_METER
    if _NN_METER is not None:
        return _NN_METER
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pkg_resources' deprecation notice
            import nn_meter
            import nn_meter.predictor.utils as pred_utils
            import nn_meter.utils as nm_utils
            import nn_meter.utils.utils as nm_utils_utils
    except ModuleNotFoundError as err:
        if err.name == "pkg_resources":
            raise ConfigError(
                "nn-Meter 2.0 imports pkg_resources, which setuptools 82 removed; install "
                "'setuptools<82' (make setup does)",
                key="regularizer",
            ) from err
        if err.name and err.name.split(".")[0] == "nn_meter":
            raise ConfigError(
                "NnMeterEstimator needs the nn-meter package: run `make setup` (it installs "
                "nnabla_nas[nnmeter]) or `pip install 'nn-meter==2.0' 'setuptools<82'`",
                key="regularizer",
            ) from err
        raise
    except OSError as err:  # nn-Meter writes ~/.nn_meter/config when imported
        raise ConfigError(
            f"nn-Meter could not write its configuration folder ~/.nn_meter/config at import: "
            f"{err}; make the home folder writable (or set HOME to a writable folder)",
            key="regularizer",
        ) from err
    for mod in (pred_utils, nm_utils, nm_utils_utils):
        mod.download_from_url = _no_download
    nn_meter.download_from_url = _no_download
    logging.getLogger("nn-Meter").setLevel(logging.WARNING)
    _NN_METER = nn_meter
    return nn_meter


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """nn-Meter logs every kernel through the root logger at INFO: silence INFO while it runs."""
    previous = logging.root.manager.disable
    logging.disable(max(previous, logging.INFO))
    try:
        yield
    finally:
        logging.disable(previous)


def nn_meter_data_folder() -> Path:
    """nn-Meter's data folder: ``data_folder`` of ``~/.nn_meter/config/settings.yaml``, else
    ``~/.nn_meter/data`` (nn-Meter's default). Creates nothing."""
    settings = Path(os.path.expanduser("~/.nn_meter/config/settings.yaml"))
    if settings.is_file():
        import yaml

        try:
            data = yaml.safe_load(settings.read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError(f"cannot read nn-Meter's settings {settings}: {err}") from err
        if isinstance(data, dict) and data.get("data_folder"):
            return Path(os.path.expanduser(str(data["data_folder"])))
    return Path(os.path.expanduser("~/.nn_meter/data"))


def _predictor_registry() -> dict[str, dict[str, Any]]:
    """nn-Meter's predictors by name: the ones it ships, updated with the user's
    ``~/.nn_meter/config/predictors.yaml`` (which holds predictors registered with nn-Meter)."""
    import yaml

    nn_meter = import_nn_meter()
    shipped = Path(nn_meter.__file__).parent / "configs" / "predictors.yaml"
    user = Path(os.path.expanduser("~/.nn_meter/config/predictors.yaml"))
    found: dict[str, dict[str, Any]] = {}
    for path in (shipped, user):
        entries = None
        if path.is_file():
            with contextlib.suppress(OSError, yaml.YAMLError):
                entries = yaml.safe_load(path.read_text())
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                found[entry["name"]] = entry
    return found


# ---------------------------------------------------------------------------------------------
# Loading predictors (scikit-learn 0.2x pickles included)
# ---------------------------------------------------------------------------------------------

_LEGACY_MODULES = {
    "sklearn.ensemble.forest": "sklearn.ensemble._forest",
    "sklearn.tree.tree": "sklearn.tree._classes",
}
_FOREST_NAMES = frozenset({"RandomForestRegressor", "ExtraTreesRegressor"})
_TREE_NAMES = frozenset({"DecisionTreeRegressor", "ExtraTreeRegressor"})


def _as_rows(X: Any) -> np.ndarray:
    X = np.ascontiguousarray(X, dtype=np.float32)  # the trees' dtype, as scikit-learn casts
    return X.reshape(1, -1) if X.ndim == 1 else X


def _tree_values(tree: Any, X: np.ndarray) -> np.ndarray:
    return np.asarray(tree.predict(X)).reshape(len(X), -1)[:, 0]


def _forest_mean(estimators: Sequence[Any], X: Any) -> np.ndarray:
    """``RandomForestRegressor.predict``: the trees' values summed in order, divided by their
    number (scikit-learn's accumulation), without its per-tree checks (~0.1 ms a tree)."""
    X = _as_rows(X)
    total = np.zeros(len(X), dtype=np.float64)
    for est in estimators:
        total += _tree_values(est.tree_, X)
    return total / len(estimators)


class _LegacyTreeModel:
    """A regression tree unpickled from an old scikit-learn: holds its ``tree_``."""

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def predict(self, X: Any) -> np.ndarray:
        X = _as_rows(X)
        return _tree_values(self.tree_, X)


class _LegacyForest:
    """A regression forest unpickled from an old scikit-learn: the mean of its trees."""

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def predict(self, X: Any) -> np.ndarray:
        return _forest_mean(self.estimators_, X)


class FastForest:
    """A fitted single-output ``RandomForestRegressor`` predicting through its trees directly.

    The same numbers as ``model.predict`` (the trees' values accumulated in the same order),
    about five times faster on nn-Meter's forests of 240 to 690 trees: scikit-learn's
    per-tree validation dominates the prediction of a network otherwise.

    Attributes:
        model: the wrapped forest.
    """

    def __init__(self, model: Any) -> None:
        self.model = model

    def predict(self, X: Any) -> np.ndarray:
        return _forest_mean(self.model.estimators_, X)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["model"], name)


def _fast(model: Any) -> Any:
    trees = getattr(model, "estimators_", None)
    if (
        type(model).__name__ == "RandomForestRegressor"
        and int(getattr(model, "n_outputs_", 1)) == 1
        and trees
        and all(hasattr(t, "tree_") for t in trees)
    ):
        return FastForest(model)
    return model


_COMPAT_TREE: Any = None


def _compat_tree() -> Any:
    """``sklearn.tree._tree.Tree`` accepting node arrays pickled before scikit-learn 1.3."""
    global _COMPAT_TREE
    if _COMPAT_TREE is None:
        from sklearn.tree._tree import NODE_DTYPE, Tree

        class CompatTree(Tree):
            def __setstate__(self, state: dict[str, Any]) -> None:
                nodes = state.get("nodes")
                if nodes is not None and nodes.dtype != NODE_DTYPE:
                    upgraded = np.zeros(nodes.shape, dtype=NODE_DTYPE)
                    for name in nodes.dtype.names or ():
                        if name in NODE_DTYPE.names:
                            upgraded[name] = nodes[name]
                    state = dict(state, nodes=upgraded)
                super().__setstate__(state)

        _COMPAT_TREE = CompatTree
    return _COMPAT_TREE


class _LegacyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        module = _LEGACY_MODULES.get(module, module)
        if module.startswith("sklearn.ensemble") and name in _FOREST_NAMES:
            return _LegacyForest
        if module.startswith("sklearn.tree") and name in _TREE_NAMES:
            return _LegacyTreeModel
        if module == "sklearn.tree._tree" and name == "Tree":
            return _compat_tree()
        return super().find_class(module, name)


def load_kernel_predictor(path: str | os.PathLike) -> Any:
    """Loads one kernel predictor pickle (an object with ``predict(features)``).

    A pickle of the installed scikit-learn loads as it is. One from another version (nn-Meter's
    published predictors are scikit-learn 0.2x forests, which scikit-learn >= 1.3 refuses to
    load) is loaded by a compatibility unpickler: old module paths are mapped, tree node arrays
    are upgraded to the current layout, and the forest predicts as the mean of its trees (what
    scikit-learn's ``RandomForestRegressor.predict`` computes).

    Raises:
        ConfigError: the file cannot be read or is not a regression-forest pickle.
    """
    path = Path(path)
    legacy = False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with open(path, "rb") as f:
                model = pickle.load(f)
        legacy = any("unpickle estimator" in str(w.message) for w in caught)
    except (ValueError, AttributeError, ModuleNotFoundError, TypeError):
        legacy = True  # an old scikit-learn layout (node dtype, module paths)
    except (OSError, pickle.UnpicklingError, EOFError) as err:
        raise ConfigError(f"cannot read nn-Meter kernel predictor {path}: {err}") from err
    if not legacy:
        return model
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with open(path, "rb") as f:
                model = _LegacyUnpickler(f).load()
        if not isinstance(model, (_LegacyForest, _LegacyTreeModel)):
            raise TypeError(f"a {type(model).__name__}, not a regression forest")
        model.predict(np.zeros((1, _n_features(model)), dtype=np.float32))
    except Exception as err:  # noqa: BLE001 - any failure means: unusable file
        raise ConfigError(
            f"cannot load nn-Meter kernel predictor {path} with this scikit-learn: {err}"
        ) from err
    logger.info("loaded %s through the scikit-learn compatibility loader", path)
    return model


def _n_features(model: Any) -> int:
    for attr in ("n_features_in_", "n_features_"):
        if hasattr(model, attr):
            return int(getattr(model, attr))
    trees = getattr(model, "estimators_", None) or [model]
    return int(trees[0].tree_.n_features)


@dataclass
class NnMeterPredictor:
    """A loaded predictor: nn-Meter's ``nnMeterPredictor`` plus where it came from.

    Attributes:
        name: the built-in name or the folder's name.
        folder: the folder of its files.
        kernel_predictors: kernel name -> model (``global-avgpool``, ``conv-bn-relu``, ...).
        fusion_rules: the ``fusion_rules.json`` path.
        meta: the folder's :data:`PREDICTOR_META` (empty for built-in predictors).
        predictor: the ``nn_meter.nnMeterPredictor``.
    """

    name: str
    folder: Path
    kernel_predictors: dict[str, Any]
    fusion_rules: Path
    meta: dict[str, Any]
    predictor: Any


def _missing_builtin(name: str, folder: Path, missing: list[str], url: str | None) -> ConfigError:
    where = f" (nn-Meter's release zip {url})" if url else ""
    return ConfigError(
        f"nn-Meter predictor {name!r} is not installed: {folder} lacks {', '.join(missing)}. "
        f"nnabla_nas never downloads it; fetch the predictor's files on a connected machine"
        f"{where}, put them in {folder} (or set options.data_folder to a folder holding "
        f"predictor/{name}/), or use a custom predictor folder built with "
        "`nnabla-nas nnmeter-build`",
        key="options.predictor",
    )


def load_predictor(
    predictor: str, data_folder: str | os.PathLike | None = None
) -> NnMeterPredictor:
    """Loads a built-in predictor (by name) or a predictor folder (by path). Never downloads.

    Args:
        predictor: one of :data:`BUILTIN_PREDICTORS` (or a predictor registered in nn-Meter's
            user configuration), or the path of a folder holding ``<kernel>.pkl`` files and
            ``fusion_rules.json``.
        data_folder: nn-Meter's data folder for built-in predictors (default: nn-Meter's
            setting, :func:`nn_meter_data_folder`).

    Raises:
        ConfigError: an unknown name, a missing folder or file (named), an unreadable pickle.
    """
    nn_meter = import_nn_meter()
    registry = _predictor_registry()
    path = Path(os.path.expanduser(str(predictor)))
    meta: dict[str, Any] = {}
    if predictor in registry and "package_location" not in registry[predictor]:
        info = registry[predictor]
        base = Path(data_folder) if data_folder is not None else nn_meter_data_folder()
        folder = base / "predictor" / predictor
        needed = [f"{k}.pkl" for k in info.get("kernel_predictors", [])] + [FUSION_RULES]
        missing = [f for f in needed if not (folder / f).is_file()]
        if missing:
            raise _missing_builtin(predictor, folder, missing, info.get("download"))
        name = predictor
    elif predictor in registry or path.is_dir() or os.sep in str(predictor):
        folder = Path(registry[predictor]["package_location"]) if predictor in registry else path
        name = predictor if predictor in registry else folder.name
        if not folder.is_dir():
            raise ConfigError(
                f"predictor folder {folder} does not exist; build one with `python -m "
                "nnabla_nas.estimator.nnmeter_build -f EXP.json -o FOLDER`, or name a built-in "
                f"predictor ({', '.join(BUILTIN_PREDICTORS)})",
                key="options.predictor",
            )
        missing = [] if any(folder.glob("*.pkl")) else ["<kernel>.pkl files"]
        missing += [] if (folder / FUSION_RULES).is_file() else [FUSION_RULES]
        if missing:
            raise ConfigError(
                f"predictor folder {folder} lacks {', '.join(missing)}; it must hold one "
                f"<kernel>.pkl per kernel and {FUSION_RULES} (what nnmeter_build writes)",
                key="options.predictor",
            )
        if (folder / PREDICTOR_META).is_file():
            try:
                meta = json.loads((folder / PREDICTOR_META).read_text())
            except (OSError, ValueError) as err:
                raise ConfigError(f"cannot read {folder / PREDICTOR_META}: {err}") from err
    else:
        raise ConfigError(
            f"unknown nn-Meter predictor {predictor!r}; valid: {', '.join(registry)} or the "
            "path of a predictor folder",
            key="options.predictor",
        )
    kernels = {p.stem: _fast(load_kernel_predictor(p)) for p in sorted(folder.glob("*.pkl"))}
    rules = folder / FUSION_RULES
    try:
        json.loads(rules.read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot read nn-Meter fusion rules {rules}: {err}") from err
    with _quiet():
        wrapped = nn_meter.nnMeterPredictor(kernels, str(rules))
    logger.info("nn-Meter predictor %s from %s: kernels %s", name, folder, ", ".join(kernels))
    return NnMeterPredictor(name, folder, kernels, rules, meta, wrapped)


# ---------------------------------------------------------------------------------------------
# nnabla graph -> nn-Meter IR
# ---------------------------------------------------------------------------------------------


@dataclass
class NnMeterGraph:
    """One architecture in nn-Meter's IR.

    Attributes:
        ir: the nn-Meter IR dict (``{node: {"attr": {"type", "attr", "input_shape",
            "output_shape"}, "inbounds", "outbounds"}}``), ``model_type="nnmeter-ir"``.
        layers: node name -> the :class:`~nnabla_nas.estimator.base.Layer` (nnabla function)
            it was made from (what the latency lookup table is keyed by).
    """

    ir: dict[str, dict[str, Any]]
    layers: dict[str, Layer]


def _nhwc(shape: Sequence[int], channel_last: bool = False) -> list[int]:
    shape = [int(s) for s in shape]
    if len(shape) == 4 and not channel_last:
        return [shape[0], shape[2], shape[3], shape[1]]
    return shape


def _node_attr(func: Any, layer: Layer, op: str) -> dict[str, Any]:
    args = layer.arguments
    attr: dict[str, Any] = {}
    if op in ("conv", "dwconv"):
        kernel = list(layer.inputs[1][-2:])
        stride = list(args.get("stride", [1, 1]))
        attr = {
            "ks": kernel,
            "strides": [1, *stride, 1],
            "pads": list(args.get("pad", [0, 0])),
            "dilations": list(args.get("dilation", [1, 1])),
        }
        # No "group": nn-Meter turns any conv whose group equals its input channels into a
        # dwconv, a 1-channel input's stem conv included; dwconv is decided here instead.
    elif op in ("avgpool", "maxpool"):
        attr = {"ks": list(args["kernel"]), "strides": [1, *args["stride"], 1]}
        attr["pads"] = list(args.get("pad", [0, 0]))
    elif op == "concat":
        attr = {"axis": int(args.get("axis", 1))}
    return attr


def to_nnmeter_ir(outputs: nn.Variable | Sequence[nn.Variable], x: nn.Variable) -> NnMeterGraph:
    """nn-Meter's IR of the nnabla graph that computes ``outputs`` from the input ``x``.

    One node per nnabla function, named ``<Type>_<i>``, plus an ``input`` placeholder. Shapes
    are NHWC (nn-Meter's layout); weights are not nodes (they are the functions' leaf inputs).
    ``Reshape``/``Identity`` only relabel memory and are skipped (their consumers read from
    their input's producer). A ``Convolution`` whose groups equal its input and output
    channels is a ``dwconv``. Functions without an nn-Meter type keep their lower-cased name.
    """
    outs = [outputs] if isinstance(outputs, nn.Variable) else list(outputs)
    outs = [o for o in outs if o.parent is not None]
    root = F.sink(*outs) if len(outs) > 1 else outs[0]
    funcs: list[Any] = []
    root.visit(funcs.append)
    ir: dict[str, dict[str, Any]] = {
        _INPUT: {
            "attr": {
                "name": _INPUT,
                "type": "Placeholder",
                "attr": {},
                "input_shape": [],
                "output_shape": [_nhwc(x.shape)],
            },
            "inbounds": [],
            "outbounds": [],
        }
    }
    layers: dict[str, Layer] = {}
    producer: dict[Any, str] = {x: _INPUT}  # activation variable -> node name
    for func in funcs:
        layer = Layer.from_function(func, {x})
        data = [v for v, w in zip(func.inputs, layer.weights) if not w]
        inbounds = [producer[v] for v in data if v in producer]
        kind = layer.type
        if kind in _PASS_THROUGH:
            if data and data[0] in producer:
                for v in func.outputs:
                    producer[v] = producer[data[0]]
            continue
        op = _OP_TYPES.get(kind, kind.lower())
        channel_last = bool(layer.arguments.get("channel_last", False))
        in_shapes = [_nhwc(v.shape, channel_last) for v in data]
        out_shapes = [_nhwc(v.shape, channel_last) for v in func.outputs]
        if op == "conv":
            group = int(layer.arguments.get("group", 1))
            if group > 1 and group == in_shapes[0][-1] == out_shapes[0][-1]:
                op = "dwconv"
        if op == "fc":
            base = int(layer.arguments.get("base_axis", 1))
            shape = [int(s) for s in data[0].shape]
            in_shapes = [[*shape[:base], int(np.prod(shape[base:]))]]
        name = f"{kind}_{len(layers)}"
        ir[name] = {
            "attr": {
                "name": name,
                "type": op,
                "attr": _node_attr(func, layer, op),
                "input_shape": in_shapes,
                "output_shape": out_shapes,
            },
            "inbounds": inbounds,
            "outbounds": [],
        }
        for parent in inbounds:
            ir[parent]["outbounds"].append(name)
        layers[name] = layer
        for v in func.outputs:
            producer[v] = name
    return NnMeterGraph(ir, layers)


def kernel_features(kernel: Mapping[str, Any]) -> list[float] | None:
    """The feature vector nn-Meter's predictor feeds the kernel's model (None: nn-Meter has no
    features for this kernel type, so it is never predicted)."""
    import_nn_meter()
    from nn_meter.predictor.prediction.extract_feature import get_predict_features

    with _quiet():
        try:
            feats = get_predict_features([dict(kernel)])
        except (KeyError, IndexError, TypeError):
            return None
    return [float(v) for v in next(iter(feats[0].values()))] if feats else None


def kernel_name(op: str) -> str:
    """The kernel predictor nn-Meter uses for a kernel op (``conv-bn`` -> ``conv-bn-relu``)."""
    import_nn_meter()
    from nn_meter.predictor.prediction.utils import get_kernel_name

    return str(get_kernel_name(op))


# ---------------------------------------------------------------------------------------------
# The estimator
# ---------------------------------------------------------------------------------------------


@dataclass
class NnMeterOptions:
    """The ``options`` of an ``NnMeterEstimator`` regularizer.

    Attributes:
        predictor: a built-in predictor name (``cortexA76cpu_tflite21``,
            ``adreno640gpu_tflite21``, ``adreno630gpu_tflite21``, ``myriadvpu_openvino2019r2``)
            or the path of a predictor folder (built by ``nnmeter_build``).
        data_folder: nn-Meter's data folder for built-in predictors (default: nn-Meter's
            setting, ``~/.nn_meter/data``); the files go in ``<data_folder>/predictor/<name>/``.
    """

    predictor: str = "cortexA76cpu_tflite21"
    data_folder: str | None = None

    def check(self) -> None:
        if not isinstance(self.predictor, str) or not self.predictor.strip():
            raise ConfigError(
                f"expected a predictor name ({', '.join(BUILTIN_PREDICTORS)}) or the path of a "
                f"predictor folder, got {self.predictor!r}",
                key="predictor",
            )


def _labels(model: Module) -> dict[str, MixedOp]:
    return {label: ops[0] for label, ops in choice_groups(model).items()}


def _values(var: nn.Variable) -> np.ndarray:
    """The values of an expression (computed when it has a parent)."""
    if var.parent is not None:
        var.forward()
    return np.asarray(var.d).reshape(-1)


class NnMeterEstimator(Estimator):
    """Latency (ms) of an architecture predicted by an nn-Meter predictor.

    Args:
        input_shape: one example's shape ``(C, H, W)``.
        batch_size: the batch of the predicted inference. Built-in predictors were measured at
            batch 1; a custom predictor at the batch recorded in its folder: both must match.
        predictor: see :class:`NnMeterOptions`.
        data_folder: see :class:`NnMeterOptions`.

    Raises:
        ConfigError: nn-Meter is missing, the predictor is unknown or its files are missing
            (the message names the folder and files), or the batch size does not match it.
    """

    unit: ClassVar[str] = "ms"
    Options: ClassVar[type] = NnMeterOptions

    def __init__(
        self,
        input_shape: Sequence[int],
        batch_size: int = 1,
        predictor: str = "cortexA76cpu_tflite21",
        data_folder: str | None = None,
    ) -> None:
        super().__init__(input_shape, batch_size)
        self.loaded = load_predictor(predictor, data_folder)
        trained = int(self.loaded.meta.get("batch_size", 1))
        if trained != self.batch_size:
            raise ConfigError(
                f"nn-Meter predictor {self.loaded.name!r} was built for batch size {trained}, "
                f"the estimator's batch_size is {self.batch_size}; nn-Meter's kernel features "
                "ignore the batch, so predict at the predictor's batch size (or build a "
                "predictor at this one)",
                key="batch_size",
            )
        self._cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._checked_ops: dict[str, bool] = {}
        self.unpredicted: dict[str, int] = {}

    # -- one architecture ---------------------------------------------------------------------

    def _full(self, model: Module, architecture: Architecture | None) -> tuple[int, ...]:
        arch = dict(architecture or {})
        missing = [label for label in _labels(model) if label not in arch]
        if missing:
            raise ValueError(f"no candidate given for choices {missing[:5]}")
        return tuple(int(arch[label]) for label in _labels(model))

    def graph(self, model: Module, architecture: Architecture | None = None) -> NnMeterGraph:
        """nn-Meter's IR of one architecture of ``model``."""
        x, out = inference_graph(model, self.input_shape, self.batch_size, architecture)
        return to_nnmeter_ir(out if isinstance(out, nn.Variable) else list(out), x)

    def kernels(self, graph: NnMeterGraph | Mapping[str, Any]) -> list[dict[str, Any]]:
        """The kernels nn-Meter's kernel detector finds in an IR (with this predictor's fusion
        rules): dicts with ``op``, ``name`` (``"<op>#<i>"``), shapes and features' fields."""
        ir = graph.ir if isinstance(graph, NnMeterGraph) else graph
        kd = self.loaded.predictor.kd
        with _quiet():
            kd.load_graph(ir)
            return kd.get_kernels()

    def predict_ir(self, graph: NnMeterGraph | Mapping[str, Any]) -> float:
        """nn-Meter's latency (ms) of an IR; kernels without a predictor are warned about."""
        ir = graph.ir if isinstance(graph, NnMeterGraph) else graph
        with _quiet():
            value = float(self.loaded.predictor.predict(dict(ir), model_type="nnmeter-ir"))
            found = self.loaded.predictor.kd.get_kernels()
        self._warn_unpredicted(found)
        return value

    def predict(self, model: Module, architecture: Architecture | None = None) -> float:
        """nn-Meter's latency (ms) of one architecture of ``model``.

        Values are cached per (model, architecture): nn-Meter's prediction depends only on the
        shapes, not on the weights.
        """
        cache = self._cache.setdefault(model, {})
        key = self._full(model, architecture)
        if key not in cache:
            cache[key] = self.predict_ir(self.graph(model, architecture))
        return cache[key]

    def _covered(self, kernel: Mapping[str, Any]) -> bool:
        op = str(kernel["op"])
        if op not in self._checked_ops:
            self._checked_ops[op] = (
                kernel_name(op) in self.loaded.kernel_predictors
                and kernel_features(kernel) is not None
            )
        return self._checked_ops[op]

    def _warn_unpredicted(self, kernels: Sequence[Mapping[str, Any]]) -> None:
        missing = [k for k in kernels if not self._covered(k)]
        new = sorted({str(k["op"]) for k in missing} - set(self.unpredicted))
        for k in missing:
            self.unpredicted[str(k["op"])] = self.unpredicted.get(str(k["op"]), 0) + 1
        if new:
            names = ", ".join(str(k["name"]) for k in missing if str(k["op"]) in new)
            logger.warning(
                "nn-Meter predictor %s has no model for kernel type(s) %s: nn-Meter counts "
                "them as 0 ms (kernels %s); build a custom predictor that covers them",
                self.loaded.name,
                ", ".join(new),
                names,
            )

    # -- expectation and report ---------------------------------------------------------------

    def expected(self, model: Module, distribution: Distribution) -> nn.Variable:
        """First-order expected latency around the most probable architecture ``a*``.

        ``L(a*) + sum_c sum_i p_c,i * (L(a* with choice c = i) - L(a*))``, a scalar
        differentiable with respect to the probabilities. nn-Meter's latency is a sum over
        kernels, and the kernels of one block change only with that block's choice, so this is
        the exact expectation when no kernel spans two choices (true with the default fusion
        rules for the mobilenet space). Costs ``1 + sum_c (n_c - 1)`` predictions, cached.
        """
        ops = _labels(model)
        probs_of = {label: probabilities_of(distribution, label, len(op.ops))
                    for label, op in ops.items()}  # fmt: skip
        best = {label: int(np.argmax(_values(p))) for label, p in probs_of.items()}
        base = self.predict(model, best)
        total: nn.Variable | None = None
        for label, op in ops.items():
            n = len(op.ops)
            deltas = [self.predict(model, {**best, label: i}) - base for i in range(n)]
            if not any(deltas):
                continue
            probs = probs_of[label]
            const = nn.Variable.from_numpy_array(np.asarray(deltas, dtype=np.float32))
            term = F.sum(probs * const)
            total = term if total is None else total + term
        if total is None:
            return nn.Variable.from_numpy_array(np.array(base, dtype=np.float32))
        return F.add_scalar(total, base)

"""Loading nn-Meter kernel predictors: pickles of any scikit-learn era (a compatibility
loader for old ones), a fast forest evaluation, and the predictor folders."""

from __future__ import annotations

import json
import logging
import os
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ...errors import ConfigError
from ._runtime import (
    BUILTIN_PREDICTORS,
    FUSION_RULES,
    PREDICTOR_META,
    _predictor_registry,
    _quiet,
    import_nn_meter,
    nn_meter_data_folder,
)

logger = logging.getLogger(__name__)


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

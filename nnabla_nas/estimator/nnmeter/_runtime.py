"""The nn-Meter package at run time: import without downloads, its data folder, the
built-in predictors' registry, and the constants of the predictor folders built here."""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Iterator

from ...errors import ConfigError, NnasError

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

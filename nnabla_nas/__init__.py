"""nnabla_nas: neural architecture search on Sony's NNabla.

The Python API, as a script would use it (``docs/python_api.rst``)::

    import nnabla_nas as nas

    model = nas.create_space("mobilenet", num_classes=10, in_channels=1, mode="sample")
    data = nas.make_loaders("mnist", search=True, input_shape=(1, 28, 28), batch_size_train=32)
    searcher = nas.ProxylessNasSearcher(model, data, "log/mine", loop=nas.LoopOptions(epochs=3))
    results = searcher.run()   # config.json, log.txt, tensorboard/, arch.h5, arch.png, ...

The names are imported on first use, so ``import nnabla_nas`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: public name -> the module that defines it
_API = {
    "ALGORITHMS": "nnabla_nas.runner",
    "Algorithm": "nnabla_nas.runner",
    "DartsSearcher": "nnabla_nas.runner",
    "EnasSearcher": "nnabla_nas.runner",
    "LoopOptions": "nnabla_nas.runner",
    "ProxylessNasSearcher": "nnabla_nas.runner",
    "RandomSearcher": "nnabla_nas.runner",
    "Trainer": "nnabla_nas.runner",
    "SPACES": "nnabla_nas.contrib",
    "Model": "nnabla_nas.contrib",
    "create_space": "nnabla_nas.contrib",
    "DataBundle": "nnabla_nas.data",
    "make_loaders": "nnabla_nas.data",
    "ESTIMATORS": "nnabla_nas.estimator",
    "build_regularizer": "nnabla_nas.estimator.regularizer",
    "Regularizer": "nnabla_nas.estimator.regularizer",
    "Genotype": "nnabla_nas.genotype",
    "load_genotype": "nnabla_nas.genotype",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nnabla_nas' has no attribute {name!r}")

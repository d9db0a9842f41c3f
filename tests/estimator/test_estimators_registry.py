"""Registry-driven: every registered estimator answers on a tiny network: a positive value for
every architecture, ``details`` that include it, and an expected value under a distribution that
is differentiable and equals the value at a one-hot distribution.

A new estimator adds its tiny configuration to TINY (the test fails until it does).
"""

from __future__ import annotations

import nnabla as nn
import nnabla.functions as F
import numpy as np
import pytest

from nnabla_nas.estimator import ESTIMATORS
from nnabla_nas.runner.searcher.logits import ArchLogits

from .toy import SHAPE, Toy, layer_ms, write_table


def _nnmeter_predictor(tmp_path):
    """A custom nn-Meter predictor fitted on the toy's kernels (constant latencies)."""
    from nnabla_nas.estimator.nnmeter_build import build_predictor, measured_samples

    model = Toy()
    archs = [{"a": a, "b": b} for a in range(3) for b in range(2)]
    samples = measured_samples(model, SHAPE, archs, lambda layer: layer_ms(layer), 1)
    folder = tmp_path / "predictor"
    build_predictor(samples, folder)
    return {"predictor": str(folder)}


def _latency_table(tmp_path):
    from nnabla_nas.estimator import trace

    table = tmp_path / "table.json"
    write_table(table, trace(Toy(), SHAPE).all_layers())
    return {"lookup_table": table}


#: name -> (keyword arguments of the estimator given a tmp folder, a tolerance for the expected
#: value at a one-hot distribution: 0 for exact expectations)
TINY = {
    "LatencyEstimator": (_latency_table, 1e-6),
    "MemoryEstimator": (lambda tmp: {}, None),  # a lower bound of the peak, checked below
    "FlopsEstimator": (lambda tmp: {}, 1e-6),
    "ParamsEstimator": (lambda tmp: {}, 1e-6),
    "NnMeterEstimator": (_nnmeter_predictor, 1e-5),
}


@pytest.mark.parametrize("name", ESTIMATORS.names())
def test_every_estimator_answers_on_a_tiny_network(name, tmp_path):
    if name not in TINY:
        pytest.fail(f"add a tiny configuration of the {name!r} estimator to TINY in {__file__}")
    kwargs, tolerance = TINY[name]
    nn.clear_parameters()
    est = ESTIMATORS.get(name)(SHAPE, **kwargs(tmp_path))
    model = Toy()
    values = {}
    for a in range(3):
        for b in range(2):
            arch = {"a": a, "b": b}
            values[(a, b)] = est.predict(model, arch)
            assert values[(a, b)] > 0
            details = est.details(model, arch)
            assert details and all(np.isfinite(v) for v in details.values())
    assert len(set(values.values())) > 1, "the estimate does not depend on the architecture"
    with pytest.raises(ValueError, match="no candidate"):
        est.predict(model, {"a": 0})

    logits = ArchLogits(model)
    for _label, p in logits.params.items():  # nearly one-hot on candidate 0 everywhere
        p.d = np.array([30.0] + [0.0] * (p.size - 1)).reshape(p.shape)
    value = est.expected(model, logits.distribution())
    assert value.shape == ()
    value.forward()
    if tolerance is not None:
        assert float(value.d) == pytest.approx(values[(0, 0)], rel=tolerance, abs=1e-6)
    else:
        assert 0 < float(value.d) <= values[(0, 0)] * (1 + 1e-6)
    for p in logits.params.values():  # uniform: the gradient reaches the logits
        p.d = np.zeros(p.shape)
        p.grad.zero()
    value = est.expected(model, logits.distribution())
    F.sink(value).forward()
    value.backward()
    assert sum(float(np.abs(p.g).sum()) for p in logits.params.values()) > 0

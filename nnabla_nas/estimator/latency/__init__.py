"""Latency on the runtime the model runs on: :class:`LatencyEstimator` and its lookup table.

Every distinct layer (one nnabla function: type, input shapes and arguments, see
:class:`~nnabla_nas.estimator.base.Layer`) is measured once on the current nnabla context:
the function is rebuilt alone on random inputs of its shapes, run ``warmup`` times, then timed
``repeat`` times (:func:`default_timer`: CPU time of the thread on the CPU, wall time with
synchronisation on a GPU); runs outside Tukey's fences (more than 1.5 interquartile ranges
beyond the quartiles: a scheduler hiccup) are dropped and the median of the rest is kept, in
milliseconds. A layer's latency is that measurement times the runtime's calibration factor
(:meth:`LatencyEstimator.calibrate`: a layer runs faster alone, its data and code staying cached
across the repeated runs, than inside a network); an architecture's latency is the sum over its
layers; the expected latency under the architecture distribution is an nnabla expression (see
:class:`~nnabla_nas.estimator.base.LayerwiseEstimator`).

The lookup table (a JSON file, written atomically) keeps the measurements per runtime (nnabla
context and device), so a table can be reused across runs and shipped to other users of the same
device::

    {"format": "nnabla_nas.latency_table/1", "unit": "ms",
     "runtimes": {"cpu:float @ <cpu model>": {"context": "cpu:float", "device": "<cpu model>",
                  "nnabla": "1.39.0", "calibration": {"scale": 1.4, "fits": {...}},
                  "layers": {"<layer key>": {"ms": 0.012, "runs": 30}}}}}

The tables shipped in ``nnabla_nas/estimator/tables/`` (built with the command below on the
machine the project is developed on) are consulted for layers the user's table lacks, but only
for the same runtime (same context and device).

Build (or complete) a table for a space's layers, then calibrate it on 20 whole networks, with
the command line (:mod:`nnabla_nas.cli.latency`)::

    nnabla-nas latency build -f EXP.json [-o TABLE.json] [--batch-size N]

The package is split by job: :mod:`.measure` (timing layers and networks), :mod:`.table` (the
file), :mod:`.estimator` (the estimator).
"""

from __future__ import annotations

from .estimator import LatencyEstimator, LatencyOptions
from .measure import (
    Timer,
    default_timer,
    measure_layer,
    measure_network,
    robust_median,
    runtime_key,
)
from .table import FORMAT, SHIPPED_TABLES, LatencyTable, section_name

__all__ = [
    "FORMAT",
    "SHIPPED_TABLES",
    "LatencyEstimator",
    "LatencyOptions",
    "LatencyTable",
    "Timer",
    "measure_layer",
    "measure_network",
    "default_timer",
    "robust_median",
    "runtime_key",
    "section_name",
]

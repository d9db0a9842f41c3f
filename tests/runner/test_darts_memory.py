"""DARTS memory: the full-mode supernet's graph recomputes its intermediate buffers in the
backward instead of keeping every candidate's activations from the forward (nnabla's
``recompute``), with exactly the same numbers."""

from __future__ import annotations

import contextlib

import nnabla as nn
import numpy as np
from searcher_toy import ToySpace, make_data, make_optimizers, make_options, toy_data

from nnabla_nas.runner.searcher.darts import GRAPH_KEY, DartsSearcher, DartsSearcherConfig


def _steps(tmp_path, order: int) -> tuple[DartsSearcher, dict[str, np.ndarray]]:
    s = DartsSearcher(ToySpace(seed=0), make_data(16), tmp_path, DartsSearcherConfig(order=order),
                      loop=make_options(1, 8), optimizers=make_optimizers(), seed=0)  # fmt: skip
    s.loop()
    split = s.ctx.steps.split
    x, y = toy_data(16, seed=2)
    xa, ya = toy_data(16, seed=3)
    for _ in range(2):
        s.train_step(split(x, y, 8), "train")
        s.arch_step(split(xa, ya, 8), split(x, y, 8))
    params = {k: p.d.copy() for k, p in s.model.get_parameters().items()}
    params.update({k: p.d.copy() for k, p in s.parameters().items()})
    return s, params


def test_the_supernet_graph_recomputes_its_intermediates(tmp_path):
    s, _ = _steps(tmp_path, order=1)
    graphs = [g for (key, _), g in s.ctx.steps._graphs.items() if key == GRAPH_KEY]
    assert graphs
    flags = []
    graphs[0][3].visit(lambda f: flags.extend(v.recompute for v in f.outputs))
    assert len(flags) > 5 and all(flags)


def test_recomputing_changes_no_number(tmp_path, monkeypatch):
    for order in (1, 2):
        _, kept = _steps(tmp_path / f"r{order}", order)
        with monkeypatch.context() as m:  # the same steps with every activation kept
            m.setattr(nn, "recompute", lambda flag=True: contextlib.nullcontext())
            _, plain = _steps(tmp_path / f"p{order}", order)
        assert kept.keys() == plain.keys()
        for k in kept:
            np.testing.assert_array_equal(kept[k], plain[k], err_msg=k)

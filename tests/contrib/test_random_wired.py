"""The random_wired space: graphs with known answers, nodes against plain nnabla.functions, the
paper's RandWire-WS(4, 0.75) small-regime counts, the genotype, refusals."""

from __future__ import annotations

import h5py
import nnabla as nn
import nnabla.functions as F
import numpy as np
import pytest

from nnabla_nas.config import parse_network
from nnabla_nas.contrib import SPACES
from nnabla_nas.contrib.presets import preset_config
from nnabla_nas.contrib.random_wired import (
    RandomWiredConfig,
    RandomWiredSpace,
    StageGraph,
    stage_graph,
    stage_seed,
)
from nnabla_nas.contrib.random_wired.network import Stage
from nnabla_nas.errors import ConfigError, GenotypeError
from nnabla_nas.estimator.flops import FlopsEstimator
from nnabla_nas.genotype import Genotype, load_genotype, save_genotype

# Xie et al. 2019, Table 2: RandWire-WS(4, 0.75), small regime, C = 78: 583M FLOPs
# (multiply-adds), 5.6M parameters (mean over random graph instances).
PAPER_PARAMS, PAPER_MACS = 5.6e6, 583e6


def tiny(**kw) -> RandomWiredConfig:
    base = dict(n_classes=10, n_vertices=6, min_channels=4, max_channels=8, k=2, p=0.5,
                head_channels=16, in_channels=1)  # fmt: skip
    base.update(kw)
    cfg = RandomWiredConfig(**base)
    cfg.check()
    return cfg


# ------------------------------------------------------------------ graphs
def test_generators_give_the_known_graphs():
    # WS with no rewiring is the ring lattice: every node joined to its K/2 neighbours each side
    ring = stage_graph("ws", 8, 4, k=4, p=0.0, m=0, seed=1)
    expected = sorted({tuple(sorted((i, (i + d) % 8))) for i in range(8) for d in (1, 2)})
    assert list(ring.edges) == expected
    assert ring.input_nodes() == [0] and ring.output_nodes() == [7]
    # ER: no edge at P = 0 (every node is an input and an output), all pairs at P = 1
    assert stage_graph("er", 7, 4, 0, 0.0, 0, 1).edges == ()
    assert len(stage_graph("er", 7, 4, 0, 1.0, 0, 1).edges) == 7 * 6 // 2
    # BA(M): the star of M + 1 nodes, then M edges per added node: M (N - M) edges
    assert len(stage_graph("ba", 10, 4, 0, 0.0, 3, 1).edges) == 3 * 7
    for g in (ring, stage_graph("ws", 16, 4, 4, 0.75, 0, 5), stage_graph("ba", 9, 4, 0, 0, 2, 5)):
        assert all(0 <= a < b < g.num_nodes for a, b in g.edges)  # a DAG by node order


def test_graphs_are_reproducible_from_the_seed():
    cfg = tiny(n_vertices=12, k=4, max_channels=16, seed=7)
    a, b = RandomWiredSpace.draw_graphs(cfg), RandomWiredSpace.draw_graphs(tiny(
        n_vertices=12, k=4, max_channels=16, seed=7))  # fmt: skip
    assert a == b and len(a) == 3
    assert a[0].edges != a[1].edges  # each stage has its own seed
    assert stage_seed(7, 0) != stage_seed(7, 1) != stage_seed(8, 1)
    assert RandomWiredSpace.draw_graphs(tiny(n_vertices=12, k=4, max_channels=16, seed=8)) != a
    assert [g.channels[0] for g in a] == [4, 8, 16]


# ------------------------------------------------------------------ numbers
def _plain_node(x, w_dw, w_pw, bn):
    """ReLU - depthwise 3x3 - pointwise 1x1 - BN (batch statistics) in plain functions."""
    h = F.depthwise_convolution(F.relu(x), w_dw, pad=(1, 1), stride=(1, 1))
    h = F.convolution(h, w_pw)
    beta, gamma, mean, var = bn
    return F.batch_normalization(h, beta, gamma, mean, var, axes=[1], batch_stat=True)


def test_stage_matches_plain_functions():
    """A hand-written DAG 0 -> 1, 0 -> 2, 1 -> 2; input node 0 has stride 2, node 2 sums
    sigmoid(w) * inputs, the output averages the output nodes (here only node 2)."""
    rng = np.random.RandomState(0)
    graph = StageGraph((4, 4, 4), ((0, 1), (0, 2), (1, 2)))
    stage = Stage(graph, 3, np.random.RandomState(1))
    for p in stage.get_parameters().values():
        p.d = rng.normal(0, 0.5, p.shape)
    xd = rng.normal(size=(2, 3, 8, 8)).astype(np.float32)
    x = nn.Variable.from_numpy_array(xd)
    out = stage(x)
    out.forward()

    def params(v):
        t = stage.nodes[v].transform
        return t.dw._W, t.pw._W, (t.bn._beta, t.bn._gamma, t.bn._mean, t.bn._var)

    x0 = nn.Variable.from_numpy_array(xd)
    dw0, pw0, bn0 = params(0)
    h0 = F.batch_normalization(
        F.convolution(F.depthwise_convolution(F.relu(x0), dw0, pad=(1, 1), stride=(2, 2)), pw0),
        *bn0,
        axes=[1],
        batch_stat=True,
    )
    h1 = _plain_node(h0, *params(1))
    w = 1.0 / (1.0 + np.exp(-stage.nodes[2].aggregate.weight.d.reshape(-1)))
    h2 = _plain_node(h0 * float(w[0]) + h1 * float(w[1]), *params(2))
    h2.forward()
    assert out.shape == (2, 4, 4, 4)
    np.testing.assert_allclose(out.d, h2.d, rtol=1e-4, atol=1e-5)


def test_two_output_nodes_are_averaged():
    graph = StageGraph((4, 4, 4), ((0, 1), (0, 2)))
    stage = Stage(graph, 4, np.random.RandomState(1))
    x = nn.Variable.from_numpy_array(np.random.RandomState(2).normal(size=(2, 4, 6, 6)))
    out = stage(x)
    h1 = stage.nodes[1](stage.nodes[0](x))
    h2 = stage.nodes[2](stage.nodes[0](x))
    both = (h1 + h2) * 0.5
    nn.forward_all([out, both])
    np.testing.assert_allclose(out.d, both.d, rtol=1e-5, atol=1e-6)


def test_randwire_ws_small_regime_matches_the_paper():
    """RandWire-WS(4, 0.75), small regime, C = 78, 224x224 ImageNet input: mean over 10 graph
    seeds of the parameters and multiply-adds within 5 % of the paper's 5.6M and 583M
    (measured: 5.631M +- 0.043M and 584.1M +- 3.2M; docs/random_wired.rst)."""
    params, macs = [], []
    for seed in range(10):
        nn.clear_parameters()
        cfg = preset_config(RandomWiredConfig, "small", seed=seed, in_channels=3)
        model = RandomWiredSpace(cfg)
        assert [len(g.channels) for g in model.graphs] == [32, 32, 32]
        details = FlopsEstimator((3, 224, 224)).details(model)
        assert details["params"] == model.num_params()
        params.append(details["params"])
        macs.append(details["macs"])
    assert abs(np.mean(params) / PAPER_PARAMS - 1) < 0.05, np.mean(params)
    assert abs(np.mean(macs) / PAPER_MACS - 1) < 0.05, np.mean(macs)
    assert np.std(params) > 0  # the graphs differ


def test_regular_regime_structure():
    cfg = preset_config(RandomWiredConfig, "regular", in_channels=3)
    assert cfg.stage_widths() == [109, 218, 436, 872] and cfg.stage_vertices() == [16, 32, 32, 32]
    assert cfg.stem_strides == [2]


# ------------------------------------------------------------------ genotype
def test_genotype_rebuilds_the_same_network(tmp_path):
    cfg = tiny(seed=11)
    model = RandomWiredSpace(cfg)
    assert model.choices() == {} and not RandomWiredSpace.searchable
    written = model.export_files(tmp_path)
    assert tmp_path / "arch.h5" in written
    nn.clear_parameters()
    nn.load_parameters(str(tmp_path / "arch.h5"))  # nnabla's own reader takes the file
    assert "graphs/stage_1/edges" in nn.get_parameters(grad_only=False)
    geno = load_genotype(tmp_path / "arch.h5", "random_wired")
    assert geno.extra["generator"] == "ws" and geno.extra["seed"] == 11
    # another seed in the configuration: the file's graphs win
    again = RandomWiredSpace(tiny(seed=12), genotype=geno)
    assert again.graphs == model.graphs and again.num_params() == model.num_params()
    assert again.to_genotype().extra["seed"] == 11
    with h5py.File(tmp_path / "arch.h5") as f:
        edges = f["graphs/stage_2/edges"][...]
    assert [tuple(e) for e in edges] == list(model.graphs[1].edges)
    if (tmp_path / "arch.png").exists():
        from PIL import Image

        assert Image.open(tmp_path / "arch.png").size[1] > 200


@pytest.mark.parametrize(
    "change, words",
    [
        (dict(n_vertices=7), "7 nodes"),
        (dict(min_channels=8, max_channels=16), "width 8"),
        (dict(max_channels=16), "stages"),
    ],
)
def test_genotype_that_does_not_fit_is_refused(tmp_path, change, words):
    save_genotype(tmp_path / "arch.h5", RandomWiredSpace(tiny()).to_genotype())
    geno = load_genotype(tmp_path / "arch.h5", "random_wired")
    with pytest.raises(GenotypeError) as err:
        RandomWiredSpace(tiny(**change), genotype=geno)
    assert err.value.key == "genotype" and words in str(err.value)
    assert str(tmp_path / "arch.h5") in str(err.value)


def test_corrupt_graph_and_other_space_are_refused():
    graph = {"graphs/stage_1/edges": np.array([[2, 1]], np.int32),
             "graphs/stage_1/channels": np.full(6, 4, np.int32),
             "graphs/stage_2/edges": np.zeros((0, 2), np.int32),
             "graphs/stage_2/channels": np.full(6, 8, np.int32)}  # fmt: skip
    with pytest.raises(GenotypeError, match=r"edge \(2, 1\)"):
        RandomWiredSpace(tiny(), genotype=Genotype("random_wired", {}, graph))
    with pytest.raises(GenotypeError, match="belongs to search space 'mobilenet'"):
        RandomWiredSpace(tiny(), genotype=Genotype("mobilenet", {"blocks/0": "MB3 3x3"}))


def test_empty_stage_graph_round_trips(tmp_path):
    model = RandomWiredSpace(tiny(generator="er", p=0.0))
    assert all(g.edges == () for g in model.graphs)
    save_genotype(tmp_path / "arch.h5", model.to_genotype())
    again = RandomWiredSpace(tiny(generator="er", p=0.0),
                             genotype=load_genotype(tmp_path / "arch.h5"))  # fmt: skip
    assert again.graphs == model.graphs


# ------------------------------------------------------------------ configuration
@pytest.mark.parametrize(
    "keys, key, words",
    [
        (dict(generator="smallworld"), "network.generator", "ws (Watts-Strogatz)"),
        (dict(k=3), "network.k", "even k"),
        (dict(k=6, n_vertices=6), "network.k", "k < n_vertices"),
        (dict(p=1.5), "network.p", "[0, 1]"),
        (dict(p=-0.1, generator="er"), "network.p", "[0, 1]"),
        (dict(min_channels=64, max_channels=32), "network.min_channels", "larger than"),
        (dict(min_channels=32, max_channels=96), "network.max_channels", "power of two"),
        (dict(generator="ba", m=6, n_vertices=6), "network.m", "1 <= m"),
        (dict(stem_strides=[]), "network.stem_strides", "non-empty"),
        (dict(param_path="a.h5", genotype="b.h5"), "network.param_path", "seed-era name"),
        (dict(preset="huge"), "network.preset", "small, regular"),
    ],
)
def test_bad_configuration_names_the_key(keys, key, words):
    with pytest.raises(ConfigError) as err:
        parse_network({"search_space": "random_wired", **keys})
    assert err.value.key == key and words in str(err.value)


def test_seed_keys_and_presets_parse():
    seed_era = {
        "search_space": "random_wired",
        "name": "random_wired",
        "n_classes": 10,
        "n_vertices": 20,
        "min_channels": 128,
        "max_channels": 512,
        "k": 4,
        "p": 0.75,
    }
    net = parse_network(seed_era)
    assert net.space.stage_widths() == [128, 256, 512]
    small = parse_network({"search_space": "RandWire", "preset": "small", "n_classes": 10})
    assert small.search_space == "random_wired" and small.space.n_classes == 10
    assert small.space.min_channels == 78 and small.space.stem_strides == [2, 2]
    net = parse_network({"search_space": "random_wired", "param_path": "x/arch.h5"})
    assert net.space.genotype == "x/arch.h5"
    assert SPACES.get("random-wired") is RandomWiredSpace

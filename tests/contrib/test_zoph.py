"""The zoph space: cell wiring against plain nnabla.functions, one architecture of the supernet
against its fixed network, path dropout's probabilities and schedule, random and searched fixed
networks, refusals."""

from __future__ import annotations

import nnabla as nn
import nnabla.functions as F
import numpy as np
import pytest

from nnabla_nas.config import parse_network
from nnabla_nas.contrib.darts.ops import make_op
from nnabla_nas.contrib.zoph import CANDIDATES, PathDropout, ZophCell, ZophConfig, ZophSpace
from nnabla_nas.errors import ConfigError, GenotypeError
from nnabla_nas.genotype import Genotype, load_genotype, save_genotype
from nnabla_nas.module import use_architecture


def tiny(**kw) -> ZophConfig:
    base = dict(stem_channels=4, cell_depth=2, cell_channels=[4, 8, 8], in_channels=1)
    base.update(kw)
    cfg = ZophConfig(**base)
    cfg.check()
    return cfg


def randomize(module, rng):
    for path, p in module.get_parameters().items():
        p.d = (
            rng.uniform(0.5, 2.0, p.shape) if path.endswith("_var") else rng.normal(0, 0.5, p.shape)
        )


def _relu_conv_bn(x, m):
    """ReLU - 1x1 conv - BN (batch statistics) with the weights of a ReLUConvBN."""
    h = F.convolution(F.relu(x), m.conv._W)
    return F.batch_normalization(h, m.bn._beta, m.bn._gamma, m.bn._mean, m.bn._var, axes=[1],
                                 batch_stat=True)  # fmt: skip


def test_labels_and_candidates():
    model = ZophSpace(tiny())
    choices = model.choices()
    assert list(choices) == [f"cells/{i}/blocks/{j}" for i in range(3) for j in range(2)]
    assert all(op.names == list(CANDIDATES) and len(op.ops) == 8 for op in choices.values())
    assert CANDIDATES == ("sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5",
                          "max_pool_3x3", "avg_pool_3x3", "skip_connect", "none")  # fmt: skip
    # concat: the cell's 2 inputs and 2 blocks
    assert [c.out_channels for c in model.cells] == [16, 32, 32]
    assert [c.out_channels for c in ZophSpace(tiny(merging_mode="add")).cells] == [4, 8, 8]


@pytest.mark.parametrize("merging", ["add", "concat"])
def test_cell_matches_plain_functions(merging):
    """Identity blocks: block j sees the cell's inputs and blocks < j (concatenated, then
    ReLU-conv-BN); the larger input is max-pooled to the other's size, a reducing cell pools
    both; the output merges the inputs and the blocks."""
    rng = np.random.RandomState(0)
    blocks = [make_op("skip_connect", 4, 1) for _ in range(2)]
    cell = ZophCell(3, 5, 4, blocks, True, merging, None, np.random.RandomState(1))
    randomize(cell, rng)
    s0 = nn.Variable.from_numpy_array(rng.normal(size=(2, 3, 8, 8)))
    s1 = nn.Variable.from_numpy_array(rng.normal(size=(2, 5, 4, 4)))
    out = cell(s0, s1)

    def pool(x):
        return F.max_pooling(x, (2, 2), (2, 2))

    h0 = pool(pool(_relu_conv_bn(s0, cell.pre0)))  # adapted to s1's size, then reduced
    h1 = pool(_relu_conv_bn(s1, cell.pre1))
    b0 = _relu_conv_bn(F.concatenate(h0, h1, axis=1), cell.inputs[0])
    b1 = _relu_conv_bn(F.concatenate(h0, h1, b0, axis=1), cell.inputs[1])
    want = h0 + h1 + b0 + b1 if merging == "add" else F.concatenate(h0, h1, b0, b1, axis=1)
    nn.forward_all([out, want])
    assert out.shape == ((2, 4, 2, 2) if merging == "add" else (2, 16, 2, 2))
    np.testing.assert_allclose(out.d, want.d, rtol=1e-4, atol=1e-5)


def test_one_architecture_of_the_supernet_is_its_fixed_network():
    rng = np.random.RandomState(3)
    cfg = tiny(mode="full")
    supernet = ZophSpace(cfg)
    randomize(supernet, rng)
    arch = {label: int(rng.randint(8)) for label in supernet.choices()}
    genotype = {label: CANDIDATES[i] for label, i in arch.items()}
    fixed = ZophSpace(cfg, genotype=genotype)
    assert not fixed.choices() and fixed.block_names() == genotype
    params = supernet.get_parameters()
    for path, p in fixed.get_parameters().items():
        parts = path.split("/")
        if len(parts) > 3 and parts[2] == "blocks":  # cells/i/blocks/j/... <- .../ops/<k>/...
            label = "/".join(parts[:4])
            path = f"{label}/ops/{arch[label]}/" + "/".join(parts[4:])
        p.d = params[path].d
    x = nn.Variable.from_numpy_array(rng.normal(size=(2, 1, 12, 12)))
    with use_architecture(supernet, arch):
        a = supernet(x)
    b = fixed(x)
    nn.forward_all([a, b])
    np.testing.assert_allclose(a.d, b.d, rtol=1e-4, atol=1e-5)
    assert fixed.num_params() < supernet.num_params()


# ------------------------------------------------------------------ path dropout
def test_path_dropout_probabilities_and_masks():
    pd = PathDropout()
    drop2, drop3 = pd.for_paths(2), pd.for_paths(3)
    pd.set_rate(0.25)
    assert float(drop2.prob.d) == pytest.approx(0.5) and pd.probability(3) == 0.25 ** (1 / 3)
    assert float(drop3.prob.d) == pytest.approx(0.25 ** (1 / 3))
    x = nn.Variable.from_numpy_array(np.ones((20000, 1, 1, 1), np.float32))
    y2 = drop2(x)
    nn.random.set_function_seed(11)
    y2.forward()
    first = y2.d.copy()
    assert np.mean(first == 0) == pytest.approx(0.5, abs=0.02)
    assert set(np.unique(first)) == {0.0, 2.0}  # kept paths divided by the keep probability
    nn.random.set_function_seed(11)  # the global generator, reseeded: the same masks
    y2.forward()
    np.testing.assert_array_equal(y2.d, first)
    y2.forward()
    assert not np.array_equal(y2.d, first)
    # the three paths of a block are all dropped with probability r, whatever k
    ys = [drop3(x) for _ in range(3)]
    nn.forward_all(ys)
    all_dropped = np.all(np.stack([y.d for y in ys]) == 0, axis=0)
    assert np.mean(all_dropped) == pytest.approx(0.25, abs=0.02)


@pytest.mark.parametrize("schedule, rates", [("linear", [0.0, 0.2, 0.4]),
                                             ("constant", [0.4, 0.4, 0.4])])  # fmt: skip
def test_set_progress_schedules_the_rate(schedule, rates):
    model = ZophSpace(tiny(drop_path=0.4, drop_path_schedule=schedule))
    got = []
    for fraction in (0.0, 0.5, 1.0):
        model.set_progress(fraction)
        got.append(model.path_dropout_rate)
        k = 2 + 1  # block 1 of a cell: the two inputs and block 0
        assert float(model.cells[2].drops[1].prob.d) == pytest.approx(got[-1] ** (1 / k))
    assert got == pytest.approx(rates)
    with pytest.raises(ValueError):
        model.set_progress(1.5)


def test_path_dropout_only_in_training():
    model = ZophSpace(tiny(drop_path=0.5, drop_path_schedule="constant", mode="sample"))
    x = nn.Variable.from_numpy_array(np.random.RandomState(0).normal(size=(4, 1, 12, 12)))
    arch = {label: 0 for label in model.choices()}
    with use_architecture(model, arch):
        train = model(x)
    model.apply(training=False)
    with use_architecture(model, arch):
        test = model(x)
    nn.random.set_function_seed(1)
    train.forward()
    a = train.d.copy()
    train.forward()
    assert not np.allclose(a, train.d)  # new masks at every forward
    test.forward()
    b = test.d.copy()
    test.forward()
    np.testing.assert_array_equal(b, test.d)  # no dropout at inference
    assert ZophSpace(tiny()).path_dropout_rate == 0.0  # off by default


# ------------------------------------------------------------------ fixed networks
def test_random_init_is_seeded_and_exports_its_architecture(tmp_path):
    cfg = tiny(random_init=True)
    a = ZophSpace(cfg, rng=np.random.RandomState(5))
    b = ZophSpace(tiny(random_init=True), rng=np.random.RandomState(5))
    c = ZophSpace(tiny(random_init=True), rng=np.random.RandomState(6))
    assert not a.choices() and a.block_names() == b.block_names() != c.block_names()
    assert set(a.block_names().values()) <= set(CANDIDATES)
    written = a.export_files(tmp_path)
    assert written[0] == tmp_path / "arch.h5"
    geno = load_genotype(tmp_path / "arch.h5", "zoph")
    assert dict(geno.choices) == dict(a.block_names()) and geno.extra["random_init"] is True
    again = ZophSpace(tiny(param_path=str(tmp_path / "arch.h5")), genotype=geno)
    assert again.block_names() == a.block_names() and again.num_params() == a.num_params()
    assert ZophSpace(tiny()).export_files(tmp_path / "none") == []  # the supernet: searchers


def test_searched_genotype_rebuilds_and_bad_ones_are_refused(tmp_path):
    supernet = ZophSpace(tiny())
    rng = np.random.RandomState(2)
    searched = {label: CANDIDATES[rng.randint(8)] for label in supernet.choices()}
    save_genotype(tmp_path / "arch.h5", Genotype("zoph", searched))  # as a searcher writes it
    geno = load_genotype(tmp_path / "arch.h5", "zoph")
    fixed = ZophSpace(tiny(), genotype=geno)
    assert fixed.block_names() == searched
    with pytest.raises(GenotypeError) as err:  # one block per cell, not two
        ZophSpace(tiny(cell_depth=1), genotype=geno)
    assert err.value.key == "genotype" and "cells/0/blocks/1" in str(err.value)
    assert str(tmp_path / "arch.h5") in str(err.value) and "unknown labels" in str(err.value)
    names = set(geno.choices.values())
    with pytest.raises(GenotypeError, match="not among the candidates"):
        others = [c for c in CANDIDATES if c not in names]
        ZophSpace(tiny(candidates=others or ["none"]), genotype=geno)
    with pytest.raises(GenotypeError, match="belongs to search space 'darts'"):
        ZophSpace(tiny(), genotype=Genotype("darts", {}))


# ------------------------------------------------------------------ configuration
def test_seed_era_keys_parse_verbatim():
    search = parse_network({"search_space": "zoph", "name": "zoph", "n_classes": 10,
                            "stem_channels": 128, "mode": "sample"})  # fmt: skip
    assert search.space.cells == 3 and search.space.cell_depth == [7, 7, 7]
    assert search.space.cell_channels == [128, 256, 512]
    random = parse_network(
        {
            "search_space": "zoph",
            "name": "zoph",
            "n_classes": 10,
            "stem_channels": 128,
            "random_init": True,
            "merging_mode": "add",
        }
    )
    assert random.space.random_init and random.space.merging_mode == "add"
    layout = parse_network({"search_space": "zoph", "cells": ["ZophCell"] * 2, "cell_depth": 3,
                            "cell_channels": [16, 32], "reducing": [False, True],
                            "param_path": "log/arch.h5"})  # fmt: skip
    assert (layout.space.cells, layout.space.cell_depth) == (2, [3, 3])
    assert layout.space.genotype == "log/arch.h5"
    assert parse_network(layout.to_dict()).space == layout.space  # config.json re-runs


@pytest.mark.parametrize(
    "keys, key, words",
    [
        (dict(merging_mode="mul"), "network.merging_mode", "concat, add"),
        (dict(cells=["NasNetCell"]), "network.cells", "ZophCell"),
        (dict(cell_depth=[7, 7]), "network.cell_depth", "3 cells"),
        (dict(reducing=[True]), "network.reducing", "3 cells"),
        (dict(cell_channels=[8, 0, 8]), "network.cell_channels", ">= 1"),
        (dict(drop_path=1.0), "network.drop_path", "[0, 1)"),
        (dict(drop_path_schedule="cosine"), "network.drop_path_schedule", "linear, constant"),
        (dict(candidates=["conv_7x1"]), "network.candidates", "sep_conv_3x3"),
        (dict(mode="gumbel"), "network.mode", "full, sample, max"),
        (dict(random_init=True, genotype="a.h5"), "network.random_init", "only one"),
        (dict(param_path="a.h5", genotype="b.h5"), "network.param_path", "seed-era name"),
    ],
)
def test_bad_configuration_names_the_key(keys, key, words):
    with pytest.raises(ConfigError) as err:
        parse_network({"search_space": "zoph", **keys})
    assert err.value.key == key and words in str(err.value)

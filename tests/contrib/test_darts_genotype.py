"""DARTS genotypes: derivation, arch.json, loading, and the fixed networks built from them."""

from __future__ import annotations

import json
import shutil

import nnabla as nn
import numpy as np
import pytest

from nnabla_nas.contrib.darts import (
    DARTS_V2,
    PRIMITIVES,
    CellGenotype,
    DartsConfig,
    DartsSpace,
    PnasConfig,
    PnasSpace,
)
from nnabla_nas.contrib.darts.genotype import derive_nodes
from nnabla_nas.contrib.darts.ops import DilConv, FactorizedReduce, Pool, SepConv
from nnabla_nas.errors import GenotypeError
from nnabla_nas.genotype import load_genotype, save_genotype
from nnabla_nas.module import Identity
from tests.arch import genotype_of, logits_of

P = {name: i for i, name in enumerate(PRIMITIVES)}


def probs(**given: float) -> np.ndarray:
    """A probability vector over PRIMITIVES: the given values, the rest shared equally."""
    p = np.full(len(PRIMITIVES), (1.0 - sum(given.values())) / (len(PRIMITIVES) - len(given)))
    for name, value in given.items():
        p[P[name]] = value
    return p


# Edge probabilities of a 2-node cell, with the genotype the paper's rule gives (worked by hand:
# per node the two inputs whose best non-`none` candidate is most probable, strongest first).
NORMAL = {
    (2, 0): probs(none=0.5, sep_conv_3x3=0.2),  # best non-none: sep_conv_3x3 0.2
    (2, 1): probs(none=0.05, max_pool_3x3=0.3),  # max_pool_3x3 0.3
    (3, 0): probs(none=0.9, skip_connect=0.04),  # the most probable op is none: weakest edge
    (3, 1): probs(dil_conv_5x5=0.25),
    (3, 2): probs(sep_conv_5x5=0.35),
}
REDUCE = {
    (2, 0): probs(avg_pool_3x3=0.4),
    (2, 1): probs(skip_connect=0.3),
    (3, 0): probs(max_pool_3x3=0.5),
    (3, 1): probs(sep_conv_3x3=0.45),
    (3, 2): probs(dil_conv_3x3=0.6, none=0.3),
}
EXPECTED = {
    "normal": [["max_pool_3x3", 1], ["sep_conv_3x3", 0], ["sep_conv_5x5", 2], ["dil_conv_5x5", 1]],
    "normal_concat": [2, 3],
    "reduce": [["avg_pool_3x3", 0], ["skip_connect", 1], ["dil_conv_3x3", 2], ["max_pool_3x3", 0]],
    "reduce_concat": [2, 3],
}


def tiny(**kw) -> DartsConfig:
    base = dict(in_channels=1, init_channels=4, num_cells=3, num_choices=2, multiplier=2)
    base.update(kw)
    return DartsConfig(**base)


def set_logits(model, normal=NORMAL, reduce=REDUCE):
    """Logits of a shared search whose probabilities are the tables (as a searcher holds them)."""
    values = {}
    for kind, table in (("normal", normal), ("reduce", reduce)):
        for (i, j), p in table.items():
            values[f"{kind}/edge_{i}_{j}"] = np.log(p)
    return logits_of(model, values)


def test_derive_nodes_by_hand():
    assert derive_nodes(NORMAL, 2) == [
        [("max_pool_3x3", 1), ("sep_conv_3x3", 0)],
        [("sep_conv_5x5", 2), ("dil_conv_5x5", 1)],
    ]
    with pytest.raises(GenotypeError, match=r"\['edge_3_2'\]"):
        derive_nodes({k: v for k, v in NORMAL.items() if k != (3, 2)}, 2)


def test_arch_json_of_a_search_matches_the_hand_computed_genotype(tmp_path):
    model = DartsSpace(tiny(), rng=np.random.RandomState(0))
    logits = set_logits(model)
    written = model.export_files(tmp_path, logits.argmax(), logits.probabilities())
    data = json.loads((tmp_path / "arch.json").read_text())
    assert data == {**EXPECTED, "search_space": "darts"}
    assert model.cell_genotype(logits.argmax(), logits.probabilities()).to_dict() == EXPECTED
    if shutil.which("dot"):
        assert [p.name for p in written] == ["arch.json", "normal.png", "reduce.png"]
        for name in ("normal.png", "reduce.png"):
            assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # read back through the one loading entry point
    geno = load_genotype(tmp_path / "arch.json", "darts", key="network.genotype")
    assert geno.space == "darts" and CellGenotype.from_dict(geno.cell).to_dict() == EXPECTED


def test_cell_genotype_json_round_trip(tmp_path):
    path = DARTS_V2.save(tmp_path / "v2.json")
    geno = load_genotype(path, "DARTS")
    assert CellGenotype.from_dict(geno.cell, geno.source) == DARTS_V2
    assert geno.source == str(path) and not geno.choices


@pytest.mark.parametrize(
    "content, expected, words",
    [
        (None, "darts", "does not exist"),
        ("{not json", "darts", "is not valid JSON"),
        ("[1, 2]", "darts", "is not a cell genotype"),
        (json.dumps(DARTS_V2.to_dict()), "mobilenet", "belongs to search space 'darts'"),
        (json.dumps({**DARTS_V2.to_dict(), "search_space": "darts"}), "pnas", "'darts'"),
    ],
)
def test_cell_genotype_file_errors(tmp_path, content, expected, words):
    path = tmp_path / "arch.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(GenotypeError) as err:
        load_genotype(path, expected, key="network.genotype")
    assert words in str(err.value) and str(path) in str(err.value)
    assert err.value.key == "network.genotype"


@pytest.mark.parametrize(
    "change, words",
    [
        (dict(normal=[["conv_9x9", 0], ["sep_conv_3x3", 1]]), "unknown candidate 'conv_9x9'"),
        (dict(normal=[["sep_conv_3x3", 2], ["sep_conv_3x3", 1]]), "inputs 0..1"),
        (dict(normal=[["sep_conv_3x3", 0]]), "two per node"),
        (dict(normal_concat=[2, 7]), "normal_concat"),
        (dict(reduce_concat=[0, 2]), "input node"),
        (dict(extra=1), "unknown keys ['extra']"),
    ],
)
def test_bad_cell_genotype_contents_name_the_file(tmp_path, change, words):
    data = {**DARTS_V2.to_dict(), **change}
    if "normal" in change:
        data["normal_concat"] = [2]
    path = tmp_path / "arch.json"
    path.write_text(json.dumps(data))
    geno = load_genotype(path, "darts")
    with pytest.raises(GenotypeError) as err:
        DartsSpace(tiny(), genotype=geno)
    assert words in str(err.value) and str(path) in str(err.value)


def test_darts_v2_has_the_papers_parameter_count():
    cfg = DartsConfig(in_channels=3, init_channels=36, num_cells=20, num_classes=10,
                      auxiliary=True, drop_path=0.2)  # fmt: skip
    model = DartsSpace(cfg, genotype=DARTS_V2)  # graph construction only
    params = model.get_net_parameters(grad_only=True)
    aux = sum(p.size for k, p in params.items() if k.startswith("aux_head/"))
    # DARTS' count_parameters_in_MB leaves the auxiliary head out: 3.35M ("3.3M" in the paper)
    assert model.num_params() - aux == 3_349_342
    # the head sits on cell 13 (2 * 20 // 3), 4 * 144 = 576 channels:
    # conv 1x1 576->128, BN 128, conv 2x2 128->768, BN 768, linear 768->10
    assert aux == 576 * 128 + 2 * 128 + 128 * 768 * 4 + 2 * 768 + 768 * 10 + 10
    assert not model.choices() and not model.get_arch_parameters()


def test_fixed_darts_cells_follow_the_genotype():
    model = DartsSpace(tiny(num_cells=4), genotype=DARTS_V2, rng=np.random.RandomState(0))
    normal, reduce = model.cells[0], model.cells[1]
    assert [c.reduction for c in model.cells] == [False, True, True, False]
    assert isinstance(model.cells[2].pre0, FactorizedReduce)  # after a reduction cell
    assert isinstance(model.cells[3].pre0, FactorizedReduce)
    kinds = {k: type(m) for k, m in normal.modules.items() if k.startswith("edge")}
    assert kinds == {
        "edge_2_0": SepConv, "edge_2_1": SepConv, "edge_3_0": SepConv, "edge_3_1": SepConv,
        "edge_4_1": SepConv, "edge_4_0": Identity, "edge_5_0": Identity, "edge_5_2": DilConv,
    }  # fmt: skip
    # reduction cell: skip_connect from node 2 is an identity, from an input a factorized reduce
    assert isinstance(reduce.edge_3_2, Identity) and isinstance(reduce.edge_2_0, Pool)
    assert not reduce.edge_2_0.get_parameters()  # no BN after pooling when retraining
    assert reduce.edge_2_0.pool._stride == (2, 2) and reduce.edge_3_1.pool._stride == (2, 2)
    assert [c.out_channels for c in model.cells] == [16, 32, 64, 64]


def _loss_numpy(logits, target):
    logp = logits - logits.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    return -np.mean(logp[np.arange(len(target)), target])


def test_fixed_network_with_auxiliary_and_drop_path_trains():
    cfg = tiny(num_cells=3, auxiliary=True, drop_path=0.3)
    model = DartsSpace(cfg, genotype=DARTS_V2, rng=np.random.RandomState(1))
    assert model.drop_path_prob == pytest.approx(0.3)
    rng = np.random.RandomState(2)
    xn = rng.normal(size=(4, 1, 12, 12)).astype(np.float32)
    target = np.array([1, 5, 0, 9])
    x = nn.Variable.from_numpy_array(xn)
    t = nn.Variable.from_numpy_array(target.reshape(4, 1).astype(np.int32))
    out = model(x)
    assert isinstance(out, tuple) and out[0].shape == out[1].shape == (4, 10)
    loss = model.loss(out, t, aux_weight=0.4)
    params = model.get_net_parameters(grad_only=True)
    for p in params.values():
        p.grad.zero()
    loss.forward()
    expected = _loss_numpy(out[0].d, target) + 0.4 * _loss_numpy(out[1].d, target)
    loss.backward()
    assert loss.d == pytest.approx(expected, rel=1e-5)
    assert np.abs(params["aux_head/conv2/_W"].g).sum() > 0
    assert np.abs(params["cells/0/edge_2_0/op1/dw/_W"].g).sum() > 0

    # Inference: logits only, no drop-path: the same numbers as the network without drop-path.
    plain = DartsSpace(tiny(num_cells=3, auxiliary=True), genotype=DARTS_V2)
    plain.set_parameters({k: v.d for k, v in model.get_parameters().items()})
    model.apply(training=False)
    plain.apply(training=False)
    a, b = model(x), plain(x)
    assert not isinstance(a, tuple)
    nn.forward_all([a, b])
    np.testing.assert_allclose(a.d, b.d, rtol=1e-6)
    model.drop_path_prob = 0.1
    assert model.drop_path_prob == pytest.approx(0.1)


def test_drop_path_zeroes_a_dropped_samples_edge_output():
    """Node 2 = sep_conv_3x3(c_{k-2}) + skip(c_{k-1}): per sample, out - skip is either zero or
    the convolution's output divided by the keep probability."""
    geno = CellGenotype([("sep_conv_3x3", 0), ("skip_connect", 1)], [2],
                        [("max_pool_3x3", 0), ("sep_conv_3x3", 1)], [2])  # fmt: skip
    model = DartsSpace(
        tiny(num_cells=3, drop_path=0.5), genotype=geno, rng=np.random.RandomState(3)
    )
    cell = model.cells[0]
    rng = np.random.RandomState(4)
    s0, s1 = (nn.Variable.from_numpy_array(rng.normal(size=(16, 12, 6, 6)).astype("f4"))
              for _ in range(2))  # fmt: skip
    y = cell(s0, s1)  # training mode (batch statistics)
    conv = cell.edge_2_0(cell.pre0(s0))
    skip = cell.pre1(s1)
    nn.forward_all([y, conv, skip])
    diff = (y.d - skip.d).reshape(16, -1)
    scaled = conv.d.reshape(16, -1) / 0.5
    dropped = np.abs(diff).max(1) < 1e-6
    kept = np.all(np.isclose(diff, scaled, rtol=1e-4, atol=1e-5), axis=1)
    assert np.all(dropped ^ kept) and dropped.any() and kept.any()
    cell.training = False  # inference: no drop, no scaling
    y = cell(s0, s1)
    conv = cell.edge_2_0(cell.pre0(s0))
    nn.forward_all([y, conv, cell.pre1(s1)])
    y_inf = y.d.copy()
    ref = cell.pre1(s1) + conv
    ref.forward()
    np.testing.assert_allclose(y_inf, ref.d, rtol=1e-5, atol=1e-6)


def test_pnas_fixed_network_keeps_every_edges_argmax(tmp_path):
    cfg = PnasConfig(in_channels=1, init_channels=4, num_cells=3, num_choices=2, multiplier=2)
    search = PnasSpace(cfg, rng=np.random.RandomState(5))
    rng = np.random.RandomState(6)
    chosen, values = {}, {}
    for label in search.choices():
        idx = int(rng.randint(len(PRIMITIVES)))
        if label.startswith("cells/0/edge_2_"):
            idx = P["none"]  # node 2 of cell 0 loses both edges
        if label == "cells/1/edge_3_2":
            idx = P["skip_connect"]
        values[label] = np.eye(len(PRIMITIVES))[idx] * 3.0
        chosen[label] = PRIMITIVES[idx]
    save_genotype(tmp_path / "arch.h5", genotype_of(search, logits_of(search, values)))
    geno = load_genotype(tmp_path / "arch.h5", "pnas")
    assert dict(geno.choices) == chosen
    fixed = PnasSpace(cfg, genotype=geno, rng=np.random.RandomState(7))
    assert not fixed.choices()
    for label, op in chosen.items():
        _, k, edge = label.split("/")
        cell = fixed.cells[int(k)]
        if op == "none":
            assert edge not in cell.modules
        else:
            node, j = (int(v) for v in edge.split("_")[1:])
            assert (op, j) in cell.spec.nodes[node - 2]
            stride = 2 if cell.reduction and j < 2 else 1
            expected = {
                "skip_connect": Identity if stride == 1 else FactorizedReduce,
                "max_pool_3x3": Pool,
                "avg_pool_3x3": Pool,
                "sep_conv_3x3": SepConv,
                "sep_conv_5x5": SepConv,
                "dil_conv_3x3": DilConv,
                "dil_conv_5x5": DilConv,
            }
            assert type(cell.modules[edge]) is expected[op], label  # fmt: skip
    kept = sum(op != "none" for op in chosen.values())
    assert sum(len(n) for c in fixed.cells for n in c.spec.nodes) == kept
    assert fixed.cells[0].spec.nodes[0] == []  # a node without edges is zero
    x = nn.Variable.from_numpy_array(rng.normal(size=(2, 1, 8, 8)).astype(np.float32))
    out = fixed(x)
    loss = fixed.loss(out, nn.Variable.from_numpy_array(np.array([[1], [2]], dtype=np.int32)))
    loss.forward()
    loss.backward()
    assert np.isfinite(loss.d)
    with pytest.raises(GenotypeError, match="belongs to search space 'pnas'"):
        load_genotype(tmp_path / "arch.h5", "darts")


def test_darts_fixed_network_from_arch_h5(tmp_path):
    search = DartsSpace(tiny(), rng=np.random.RandomState(8))
    logits = set_logits(search)
    save_genotype(tmp_path / "arch.h5", genotype_of(search, logits))
    fixed = DartsSpace(tiny(), genotype=load_genotype(tmp_path / "arch.h5", "darts"))
    expected = CellGenotype.from_dict(EXPECTED)
    assert fixed.cells[0].spec == expected.cell("normal")
    assert fixed.cells[1].spec == fixed.cells[2].spec == expected.cell("reduce")
    assert fixed.cell_specs() == search.cell_specs(logits.argmax(), logits.probabilities())


def test_darts_fixed_network_from_an_arch_h5_written_before_the_redesign(tmp_path):
    """Genotype files of the first version keyed the shared logits ``normal/edge_2_0`` (no
    ``/alpha``): they still build the same fixed network."""
    search = DartsSpace(tiny(), rng=np.random.RandomState(8))
    logits = set_logits(search)
    old = {k.removesuffix("/alpha"): v for k, v in logits.arrays().items()}
    assert "normal/edge_2_0" in old
    save_genotype(tmp_path / "arch.h5", search.to_genotype(logits.argmax(), old))
    fixed = DartsSpace(tiny(), genotype=load_genotype(tmp_path / "arch.h5", "darts"))
    assert fixed.cells[0].spec == CellGenotype.from_dict(EXPECTED).cell("normal")
    again = set_logits(search, NORMAL, REDUCE)
    again.load(old)  # the searcher's logits load the old keys too
    assert again.argmax() == logits.argmax()


def test_darts_fixed_network_from_an_unshared_search_derives_every_cell(tmp_path):
    search = DartsSpace(tiny(shared=False), rng=np.random.RandomState(9))
    values = {}
    for (i, j), p in NORMAL.items():
        values[f"cells/0/edge_{i}_{j}"] = np.log(p)
        values[f"cells/2/edge_{i}_{j}"] = np.log(REDUCE[(i, j)])
    save_genotype(tmp_path / "arch.h5", genotype_of(search, logits_of(search, values)))
    geno = load_genotype(tmp_path / "arch.h5", "darts")
    fixed = DartsSpace(tiny(), genotype=geno)
    assert fixed.cells[0].spec.nodes == CellGenotype.from_dict(EXPECTED).cell("normal").nodes
    assert fixed.cells[2].spec.nodes == CellGenotype.from_dict(EXPECTED).cell("reduce").nodes
    with pytest.raises(GenotypeError, match="logits for 3 cells, the network has num_cells 4"):
        DartsSpace(tiny(num_cells=4), genotype=geno)


def test_cell_drawing_has_one_labelled_edge_per_genotype_edge():
    from nnabla_nas.visualize import cell_dot

    spec = DARTS_V2.cell("reduce")
    src = cell_dot(spec.nodes, spec.concat, "reduce").source
    labelled = [line for line in src.splitlines() if "->" in line and "label=" in line]
    assert len(labelled) == 8  # two edges per node
    assert sum("->" in line and "label=" not in line for line in src.splitlines()) == 4  # concat
    # drawn with arch.json's numbers: node 3 takes skip_connect from node 2 and max_pool from
    # input 1 (c_{k-1})
    assert any(line.strip().startswith("2 -> 3") and "skip_connect" in line for line in labelled)
    assert any(line.strip().startswith("1 -> 3") and "max_pool_3x3" in line for line in labelled)
    assert '1 [label="1: c_{k-1}"' in src
    assert [int(line.split()[0]) for line in src.splitlines() if "-> out" in line] == [2, 3, 4, 5]

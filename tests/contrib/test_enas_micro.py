"""The enas_micro space: shared decisions, the cell's wiring against its modules called by hand,
the fixed network counted by hand, drop-path, the reference cells, drawings, refusals."""

from __future__ import annotations

from collections import OrderedDict

import nnabla as nn
import nnabla.functions as F
import numpy as np
import pytest

from nnabla_nas.contrib import SPACES
from nnabla_nas.contrib.decisions import describe_decisions
from nnabla_nas.contrib.enas import MICRO_OPS, EnasMicroConfig, EnasMicroSpace
from nnabla_nas.contrib.enas.arc import ENAS_MICRO_FINAL, micro_genotype
from nnabla_nas.contrib.enas.micro import micro_layout
from nnabla_nas.errors import ConfigError, GenotypeError
from nnabla_nas.genotype import Genotype, load_genotype, save_genotype
from nnabla_nas.module import choice_groups, use_architecture


def tiny(**kw) -> EnasMicroConfig:
    base = dict(num_layers=3, num_nodes=2, out_filters=4, in_channels=1, auxiliary=False)
    base.update(kw)
    return EnasMicroConfig(**base)


def images(rng, n=2, size=8):
    return nn.Variable.from_numpy_array(rng.normal(size=(n, 1, size, size)).astype(np.float32))


def test_registered_with_the_paper_defaults_and_layout():
    assert SPACES.get("enas_micro") is EnasMicroSpace
    cfg = EnasMicroConfig()
    assert (cfg.num_layers, cfg.num_nodes, cfg.out_filters, cfg.auxiliary) == (6, 5, 20, True)
    kinds, aux = micro_layout(6)  # 2 normal cells per stage, reductions at cells 2 and 5
    assert kinds == ["normal"] * 2 + ["reduce"] + ["normal"] * 2 + ["reduce"] + ["normal"] * 2
    assert aux == 6
    kinds, aux = micro_layout(15)  # the paper's retraining network: 5 normal cells per stage
    assert kinds.count("normal") == 15 and [i for i, k in enumerate(kinds) if k == "reduce"] == [
        5, 11,
    ] and aux == 12  # fmt: skip


def test_every_cell_of_a_type_shares_its_decisions():
    model = EnasMicroSpace(tiny())
    decisions = describe_decisions(model)
    labels = [d.label for d in decisions]
    assert labels == list(model.choices())
    assert labels[:4] == [
        "normal/node2/input0", "normal/node2/op0", "normal/node2/input1", "normal/node2/op1",
    ]  # fmt: skip
    assert labels[8] == "reduce/node2/input0" and len(labels) == 16
    groups = choice_groups(model)
    # 3 normal cells: one input choice each; an op choice per candidate input of each
    assert len(groups["normal/node2/input0"]) == 3 and len(groups["normal/node3/op1"]) == 3 * 3
    assert len(groups["reduce/node3/input1"]) == 2
    node3 = {d.label: d for d in decisions}["normal/node3/input0"]
    assert node3.kind == "input" and node3.names == ("node0", "node1", "node2")
    assert node3.sources == ("normal/node0", "normal/node1", "normal/node2")
    size = EnasMicroSpace.search_space_size(tiny())
    assert size == ((2 * 5) ** 2 * (3 * 5) ** 2) ** 2


def test_search_cell_takes_the_chosen_inputs_and_combines_the_loose_ends():
    rng = np.random.RandomState(0)
    model = EnasMicroSpace(tiny(num_nodes=3), rng=rng).apply(training=False)
    arch = OrderedDict((d.label, int(rng.randint(len(d.names)))) for d in model.decisions())
    arch.update({"reduce/node2/input0": 1, "reduce/node2/input1": 1, "reduce/node3/input0": 2})
    arch.update({"reduce/node3/input1": 1, "reduce/node4/input0": 3, "reduce/node4/input1": 1})
    cell = model.cells[1]  # a reduction cell
    with use_architecture(model, arch):
        s0 = model.stem(images(rng))
        s1 = model.cells[0](s0, s0)
        got = cell(s0, s1)
    states = [cell.pre0(s0), cell.pre1(s1)]
    for i, node in enumerate(cell.nodes, start=2):
        out = 0
        for s in (0, 1):
            j, op = arch[f"reduce/node{i}/input{s}"], arch[f"reduce/node{i}/op{s}"]
            edge = getattr(node, f"input{s}").ops[j]
            assert edge.source == j
            out = out + edge.op.ops[op](states[j])
        states.append(out)
    # used: 1, 2, 3 -> loose ends 0 (halved by its reduction) and 4
    loose = cell.out_convs[0](F.relu(cell.out_reduce[0](states[0])))
    want = cell.out_bn(loose + cell.out_convs[4](F.relu(states[4])))
    F.sink(got, want).forward()
    assert got.shape == (2, 8, 4, 4)
    assert np.allclose(got.d, want.d, atol=1e-5)


def _conv(k, cin, cout):
    return k * k * cin * cout


def _bn(c):
    return 2 * c


def _relu_conv_bn(cin, cout):
    return _conv(1, cin, cout) + _bn(cout)


def _sep(k, c):  # (depthwise k x k, pointwise, BN) twice
    return 2 * (k * k * c + _conv(1, c, c) + _bn(c))


def _reduce(cin, cout):  # two 1x1 convs to cout / 2, BN
    return 2 * _conv(1, cin, cout // 2) + _bn(cout)


FIXED = {
    "normal/node2/input0": "node0", "normal/node2/op0": "sep_conv_3x3",
    "normal/node2/input1": "node1", "normal/node2/op1": "identity",
    "normal/node3/input0": "node2", "normal/node3/op0": "avg_pool_3x3",
    "normal/node3/input1": "node0", "normal/node3/op1": "sep_conv_5x5",
    "reduce/node2/input0": "node1", "reduce/node2/op0": "max_pool_3x3",
    "reduce/node2/input1": "node1", "reduce/node2/op1": "sep_conv_3x3",
    "reduce/node3/input0": "node2", "reduce/node3/op0": "identity",
    "reduce/node3/input1": "node2", "reduce/node3/op1": "avg_pool_3x3",
}  # fmt: skip


def test_fixed_network_weights_counted_by_hand():
    fixed = EnasMicroSpace(tiny(), genotype=FIXED)
    # cells: normal (C=4), reduce (8), normal (8), reduce (16), normal (16); the normal cell's
    # output is node 3 (C channels), the reduction cell's nodes 0 (halved) and 3 (2C channels)
    stem = _conv(3, 1, 12) + _bn(12)
    cell0 = _relu_conv_bn(12, 4) + _relu_conv_bn(12, 4) + _relu_conv_bn(4, 4)
    cell0 += _sep(3, 4) + _sep(5, 4)
    cell1 = _relu_conv_bn(12, 8) + _relu_conv_bn(4, 8) + _relu_conv_bn(8, 8)
    cell1 += _sep(3, 8) + _reduce(8, 8)  # stride-2 sep conv; loose node 0 halved
    cell2 = _reduce(4, 8) + _relu_conv_bn(16, 8) + _relu_conv_bn(8, 8)  # input 0 is larger
    cell2 += _sep(3, 8) + _sep(5, 8)
    cell3 = 0 + _relu_conv_bn(8, 16) + _relu_conv_bn(16, 16)  # input 0 has 16 channels already
    cell3 += _sep(3, 16) + _reduce(16, 16)
    cell4 = _reduce(8, 16) + _relu_conv_bn(32, 16) + _relu_conv_bn(16, 16)
    cell4 += _sep(3, 16) + _sep(5, 16)
    classifier = 16 * 10 + 10
    total = stem + cell0 + cell1 + cell2 + cell3 + cell4 + classifier
    assert total == 7398
    assert fixed.num_params() == total
    assert [c.out_channels for c in fixed.cells] == [4, 16, 8, 32, 16]
    assert not fixed.choices() and fixed.genotype({}) == {}


def test_fixed_network_with_aux_head_and_drop_path_trains(tmp_path):
    rng = np.random.RandomState(1)
    cfg = tiny(auxiliary=True, drop_path=0.3)
    fixed = EnasMicroSpace(cfg, genotype=Genotype("enas_micro", FIXED), rng=rng)
    n = len(fixed.cells)
    probs = [float(c.drop_path.prob.d.reshape(-1)[0]) for c in fixed.cells]
    assert np.allclose(probs, [0.3 * (i + 1) / n for i in range(n)])  # full rate, deeper more
    fixed.set_progress(0.5)
    probs = [float(c.drop_path.prob.d.reshape(-1)[0]) for c in fixed.cells]
    assert np.allclose(probs, [0.15 * (i + 1) / n for i in range(n)])
    x, t = images(rng), nn.Variable.from_numpy_array(np.array([[3], [7]], dtype=np.int32))
    logits, aux = fixed(x)
    assert logits.shape == aux.shape == (2, 10)
    loss = fixed.loss((logits, aux), t, aux_weight=0.4)
    loss.forward()
    loss.backward()
    assert np.isfinite(loss.d)
    fixed.apply(training=False)
    assert not isinstance(fixed(x), tuple)


def test_reference_cells_round_trip_through_arch_h5(tmp_path):
    genotype = micro_genotype(ENAS_MICRO_FINAL)
    assert (genotype["normal/node2/input0"], genotype["normal/node2/op0"]) == (
        "node0", "avg_pool_3x3",
    )  # fmt: skip
    assert genotype["normal/node3/op0"] == "identity" and genotype["reduce/node3/op0"] == (
        "max_pool_3x3"
    )
    cfg = tiny(num_nodes=5)
    fixed = EnasMicroSpace(cfg, genotype=genotype)
    assert fixed.cell_spec("normal").concat == [2, 3, 4, 5, 6]
    assert fixed.cell_spec("reduce").concat == [2, 4, 5, 6]
    path = save_genotype(tmp_path / "arch.h5", Genotype("enas_micro", genotype))
    back = load_genotype(path, "enas_micro")
    assert dict(back.choices) == dict(genotype)
    assert set(back.choices.values()) <= {*MICRO_OPS, *(f"node{j}" for j in range(7))}
    again = EnasMicroSpace(cfg, genotype=back)
    assert again.num_params() == fixed.num_params()
    out = again(images(np.random.RandomState(0)))
    out.forward()
    assert out.shape == (2, 10)
    with pytest.raises(GenotypeError, match="input 3"):
        micro_genotype("0 0 3 0 " + "0 0 0 0 " * 3)


def test_full_mode_supernet_combines_every_intermediate_node():
    model = EnasMicroSpace(tiny(mode="full"))
    out = model(images(np.random.RandomState(0)))
    out.forward()
    assert out.shape == (2, 10) and np.isfinite(out.d).all()


def test_drawings(tmp_path):
    fixed = EnasMicroSpace(tiny(), genotype=FIXED)
    graph = fixed.arch_graph((1, 8, 8))
    labels = {n.name: n.label for n in graph.nodes}
    assert "2: sep_conv_3x3(0) + identity(1)" in labels["cell0"]
    assert "out: concat 0, 3" in labels["cell1"]
    assert {n.name: n.shape for n in graph.nodes}["cell3"] == (32, 2, 2)
    written = fixed.export_files(tmp_path)
    assert [p.name for p in written] == ["normal.png", "reduce.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in written)
    supernet = EnasMicroSpace(tiny())  # draws a given genotype, e.g. a searcher's export
    assert supernet.summary(FIXED) == fixed.summary().replace("fixed network", "supernet")
    labels = {n.name: n.label for n in supernet.arch_graph((1, 8, 8), FIXED).nodes}
    assert labels["cell1"] == {n.name: n.label for n in graph.nodes}["cell1"]
    (tmp_path / "supernet").mkdir()
    assert len(supernet.export_files(tmp_path / "supernet", FIXED)) == 2


@pytest.mark.parametrize(
    "keys, key",
    [
        (dict(num_layers=2), "num_layers"),
        (dict(num_nodes=0), "num_nodes"),
        (dict(out_filters=3), "out_filters"),
        (dict(drop_path=1.0), "drop_path"),
    ],
)
def test_bad_configuration_names_the_key(keys, key):
    with pytest.raises(ConfigError) as err:
        EnasMicroSpace(tiny(**keys))
    assert err.value.key == key


def test_bad_genotypes_are_refused():
    with pytest.raises(GenotypeError, match="missing labels"):
        EnasMicroSpace(tiny(num_nodes=3), genotype=FIXED)
    with pytest.raises(GenotypeError, match="not one of its candidates"):
        EnasMicroSpace(tiny(), genotype={**FIXED, "normal/node2/input0": "node2"})

"""The enas_macro space: decisions, the paper's count, wiring against the same modules called by
hand, the fixed network's weights counted by hand, the reference architecture string, refusals."""

from __future__ import annotations

import math
from collections import OrderedDict

import nnabla as nn
import nnabla.functions as F
import numpy as np
import pytest

from nnabla_nas.contrib import SPACES
from nnabla_nas.contrib.decisions import describe_decisions
from nnabla_nas.contrib.enas import MACRO_OPS, EnasMacroConfig, EnasMacroSpace
from nnabla_nas.contrib.enas.arc import ENAS_MACRO_FINAL, macro_genotype
from nnabla_nas.errors import ConfigError, GenotypeError
from nnabla_nas.genotype import Genotype, load_genotype, save_genotype
from nnabla_nas.module import choice_groups, use_architecture
from nnabla_nas.visualize import architecture_dot


def tiny(**kw) -> EnasMacroConfig:
    base = dict(num_layers=4, out_filters=4, in_channels=1, num_classes=10)
    base.update(kw)
    return EnasMacroConfig(**base)


def images(rng, n=2, size=8):
    return nn.Variable.from_numpy_array(rng.normal(size=(n, 1, size, size)).astype(np.float32))


def test_registered_with_the_paper_defaults():
    assert SPACES.get("enas_macro") is EnasMacroSpace
    cfg = EnasMacroConfig()
    assert (cfg.num_layers, cfg.out_filters, cfg.drop_rate, cfg.mode) == (12, 36, 0.1, "sample")


def test_decisions_are_the_choices_with_readable_labels():
    model = EnasMacroSpace(tiny())
    decisions = describe_decisions(model)
    assert [d.label for d in decisions] == list(model.choices()) == [
        "layer1/op",
        "layer2/op", "layer2/skip0",
        "layer3/op", "layer3/skip0", "layer3/skip1",
        "layer4/op", "layer4/skip0", "layer4/skip1", "layer4/skip2",
    ]  # fmt: skip
    by_label = {d.label: d for d in decisions}
    assert by_label["layer3/skip1"].sources == ("layer1",)
    assert by_label["layer3/skip0"].sources == ("stem",)
    assert by_label["layer4/op"].names == MACRO_OPS and by_label["layer4/op"].kind == "op"
    assert {len(ops) for ops in choice_groups(model).values()} == {1}  # no shared decision


def test_search_space_size_is_the_papers():
    # the paper: 6^L * 2^(L(L-1)/2) networks, 1.6e29 for L = 12
    size = EnasMacroSpace.search_space_size(EnasMacroConfig())
    assert size == 6**12 * 2**66
    assert f"{size:.1e}" == "1.6e+29"
    assert EnasMacroSpace.search_space_size(tiny()) == math.prod(
        len(ops[0].ops) for ops in choice_groups(EnasMacroSpace(tiny())).values()
    )


def _layer_by_hand(layer, outs, arch, k):
    """Layer k of the supernet from its own candidate modules: BN(op(x) + present skips)."""
    out = layer.op.ops[arch[f"layer{k}/op"]](outs[-1])
    if k == 1:
        return out
    for j in range(k - 1):
        if arch[f"layer{k}/skip{j}"] == 1:
            out = out + outs[j]
    return layer.bn(out)


def test_supernet_runs_the_chosen_operation_and_skips():
    rng = np.random.RandomState(0)
    model = EnasMacroSpace(tiny(), rng=rng).apply(training=False)
    arch = OrderedDict((d.label, int(rng.randint(len(d.names)))) for d in model.decisions())
    arch.update({"layer4/skip0": 1, "layer4/skip1": 0, "layer4/skip2": 1, "layer3/skip1": 1})
    x = images(rng)
    with use_architecture(model, arch):
        got = model(x)
    # by hand: stem, layers, the reductions after layers 1 and 2 (4 // 3 = 1)
    outs = [model.stem(x)]
    for k, layer in enumerate(model.layers, start=1):
        outs.append(_layer_by_hand(layer, outs, arch, k))
        if k in (1, 2):
            outs = [model.reductions[f"after{k}"][f"from{j}"](o) for j, o in enumerate(outs)]
    want = model.classifier(model.pool(outs[-1]))
    F.sink(got, want).forward()
    assert np.allclose(got.d, want.d, atol=1e-6)
    assert np.abs(got.d).sum() > 0


def _conv(k, cin, cout):
    return k * k * cin * cout


def _bn(c):
    return 2 * c


def test_fixed_network_weights_counted_by_hand():
    genotype = {
        "layer1/op": "conv_3x3",
        "layer2/op": "sep_conv_5x5", "layer2/skip0": "present",
        "layer3/op": "avg_pool_3x3", "layer3/skip0": "absent", "layer3/skip1": "present",
        "layer4/op": "max_pool_3x3",
        "layer4/skip0": "absent", "layer4/skip1": "absent", "layer4/skip2": "present",
    }  # fmt: skip
    fixed = EnasMacroSpace(tiny(), genotype=genotype)
    pre = _conv(1, 4, 4) + _bn(4)  # every operation starts with 1x1 conv - BN - ReLU
    stem = _conv(3, 1, 4) + _bn(4)
    layer1 = pre + _conv(3, 4, 4) + _bn(4)  # 4 channels
    # after layer 1: outputs 0 (layer 2's skip) and 1 (layer 3's skip, layer 2's input) are
    # halved and doubled to 8 channels: two 1x1 convs to 4 channels each and a BN
    reduce1 = 2 * (2 * _conv(1, 4, 4) + _bn(8))
    pre8 = _conv(1, 8, 8) + _bn(8)
    layer2 = pre8 + 5 * 5 * 8 + _conv(1, 8, 8) + _bn(8) + _conv(1, 16, 8) + _bn(8)
    reduce2 = 2 * (2 * _conv(1, 8, 8) + _bn(16))  # outputs 1, 2 are used later, 0 is not
    pre16 = _conv(1, 16, 16) + _bn(16)
    layer3 = pre16 + _conv(1, 32, 16) + _bn(16)  # pooling; concat of skip 1 and the output
    layer4 = pre16 + _conv(1, 32, 16) + _bn(16)  # concat of skip 2 and the output
    classifier = 16 * 10 + 10
    total = stem + layer1 + reduce1 + layer2 + reduce2 + layer3 + layer4 + classifier
    assert total == 2974
    assert fixed.num_params() == total
    assert not fixed.choices() and fixed.summary().splitlines()[3].startswith("layer3: avg_pool")
    # the supernet counts the same network as its active part
    supernet = EnasMacroSpace(tiny())
    first = {label: 0 for label in supernet.choices()}
    assert (
        supernet.num_params(first)
        == EnasMacroSpace(tiny(), genotype=supernet.genotype(first)).num_params()
    )


def test_fixed_network_trains_and_its_genotype_file_reads_back(tmp_path):
    rng = np.random.RandomState(1)
    cfg = tiny()
    genotype = EnasMacroSpace(cfg).genotype_of(
        {d.label: int(rng.randint(len(d.names))) for d in EnasMacroSpace(cfg).decisions()}
    )
    path = save_genotype(tmp_path / "arch.h5", Genotype("enas_macro", genotype))
    back = load_genotype(path, "enas_macro")
    assert dict(back.choices) == dict(genotype) and set(back.choices.values()) <= {
        *MACRO_OPS, "absent", "present",
    }  # fmt: skip
    fixed = EnasMacroSpace(cfg, genotype=back, rng=rng)
    x, t = images(rng), nn.Variable.from_numpy_array(np.array([[3], [7]], dtype=np.int32))
    loss = fixed.loss(fixed(x), t)
    loss.forward()
    loss.backward()
    assert np.isfinite(loss.d)
    assert all(np.abs(p.g).sum() > 0 for p in fixed.get_net_parameters(grad_only=True).values())


def test_reference_architecture_string():
    genotype = macro_genotype(ENAS_MACRO_FINAL)
    assert len([k for k in genotype if k.endswith("/op")]) == 24
    assert genotype["layer1/op"] == "conv_3x3"
    assert (genotype["layer2/op"], genotype["layer2/skip0"]) == ("sep_conv_5x5", "absent")
    assert [genotype[f"layer6/skip{j}"] for j in range(5)] == [
        "present", "present", "absent", "present", "absent",
    ]  # fmt: skip
    cfg = tiny(num_layers=24)
    fixed = EnasMacroSpace(cfg, genotype=genotype)
    out = fixed(images(np.random.RandomState(0)))
    out.forward()
    assert out.shape == (2, 10)
    with pytest.raises(GenotypeError, match="layer 2"):
        macro_genotype("0 3")


def test_arch_graph_draws_the_skips():
    genotype = macro_genotype("1 4 1 0 0 1 5 1 0 1")
    fixed = EnasMacroSpace(tiny(), genotype=genotype)
    graph = fixed.arch_graph((1, 8, 8))
    edges = {(e.src, e.dst) for e in graph.edges}
    assert {("l0", "l2"), ("l1", "l3"), ("l0", "l4"), ("l2", "l4")} <= edges
    assert ("l0", "l3") not in edges and ("l1", "l4") not in edges
    shapes = {n.name: n.shape for n in graph.nodes}
    assert shapes["l1"] == (4, 8, 8) and shapes["l2"] == (8, 4, 4) and shapes["l4"] == (16, 2, 2)
    assert "sep_conv_3x3" in architecture_dot(fixed, (1, 8, 8)).source
    # the supernet draws a given genotype (e.g. a searcher's export) with its own channels
    supernet = EnasMacroSpace(tiny()).arch_graph((1, 8, 8), genotype)
    assert {(e.src, e.dst) for e in supernet.edges} == edges
    assert {n.name: n.shape for n in supernet.nodes}["l4"] == (4, 2, 2)
    with pytest.raises(GenotypeError, match="missing labels"):
        EnasMacroSpace(tiny()).arch_graph((1, 8, 8), {"layer1/op": "conv_3x3"})


@pytest.mark.parametrize(
    "keys, key",
    [
        (dict(num_layers=2), "num_layers"),
        (dict(out_filters=5), "out_filters"),
        (dict(mode="argmax"), "mode"),
        (dict(drop_rate=1.0), "drop_rate"),
    ],
)
def test_bad_configuration_names_the_key(keys, key):
    with pytest.raises(ConfigError) as err:
        EnasMacroSpace(tiny(**keys))
    assert err.value.key == key


def test_bad_genotypes_are_refused():
    space = EnasMacroSpace(tiny())
    good = space.genotype({label: 0 for label in space.choices()})
    with pytest.raises(GenotypeError, match="missing labels"):
        EnasMacroSpace(tiny(num_layers=5), genotype=good)
    with pytest.raises(GenotypeError, match="not one of its candidates"):
        EnasMacroSpace(tiny(), genotype={**good, "layer2/skip0": "maybe"})
    with pytest.raises(GenotypeError, match="belongs to search space 'darts'"):
        EnasMacroSpace(tiny(), genotype=Genotype("darts", good))

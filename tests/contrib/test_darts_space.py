"""The darts / pnas supernet: structure, shared logits, the cell's numbers, config refusals."""

from __future__ import annotations

import nnabla as nn
import nnabla.functions as F
import numpy as np
import pytest

from nnabla_nas.config import ExperimentConfig, parse_network
from nnabla_nas.contrib import SPACES
from nnabla_nas.contrib.darts import PRIMITIVES, DartsConfig, DartsSpace, PnasConfig, PnasSpace
from nnabla_nas.contrib.darts.ops import FactorizedReduce, ReLUConvBN
from nnabla_nas.contrib.darts.search import SearchCell
from nnabla_nas.errors import ConfigError
from nnabla_nas.module import MixedOp, choice_groups, mixture, softmax
from nnabla_nas.runner.searcher.logits import ArchLogits
from tests.arch import logits_of, random_logits


def tiny(**kw) -> DartsConfig:
    base = dict(in_channels=1, init_channels=4, num_cells=3, num_choices=3, multiplier=2)
    base.update(kw)
    return DartsConfig(**base)


def randomize(model, rng):
    for path, p in model.get_parameters().items():
        if path.endswith("_var"):
            p.d = rng.uniform(0.5, 2.0, p.shape)
        else:
            p.d = rng.normal(0, 0.5, p.shape)


def test_registered_with_the_documented_defaults():
    assert SPACES.get("darts") is DartsSpace and SPACES.get("PNAS") is PnasSpace
    d, p = DartsConfig(), PnasConfig()
    assert (d.init_channels, d.num_cells, d.num_choices, d.multiplier) == (16, 8, 4, 4)
    assert (d.stem_multiplier, d.shared, d.mode, d.auxiliary, d.drop_path) == (
        3, True, "full", False, 0.0,
    )  # fmt: skip
    assert (p.shared, p.mode) == (False, "sample") and p.init_channels == 16


def test_shared_supernet_structure():
    model = DartsSpace(tiny(num_cells=5), rng=np.random.RandomState(0))
    edges = 2 + 3 + 4  # 3 nodes: inputs 2, 3, 4
    # reduction cells at 5 // 3 = 1 and 2 * 5 // 3 = 3
    assert [c.reduction for c in model.cells] == [False, True, False, True, False]
    assert [type(c.pre0) for c in model.cells] == [
        ReLUConvBN, ReLUConvBN, FactorizedReduce, ReLUConvBN, FactorizedReduce,
    ]  # fmt: skip
    assert not model.get_arch_parameters()  # the space declares its choices only
    groups = choice_groups(model)
    assert len(groups) == 2 * edges
    assert list(groups)[:3] == ["normal/edge_2_0", "normal/edge_2_1", "normal/edge_3_0"]
    assert list(groups)[edges] == "reduce/edge_2_0"
    # every normal cell's MixedOp of an edge is one decision, and so are reduce cells'
    for label in ("edge_2_0", "edge_4_3"):
        assert groups[f"normal/{label}"] == [getattr(model.cells[k], label) for k in (0, 2, 4)]
        assert groups[f"reduce/{label}"] == [getattr(model.cells[k], label) for k in (1, 3)]
    choices = model.choices()
    assert all(op.names == list(PRIMITIVES) and op.mode == "full" for op in choices.values())
    logits = ArchLogits(model)
    assert list(logits.parameters())[0] == "normal/edge_2_0/alpha"
    # channels: stem 3*4 = 12; C doubles at the reductions; outputs multiplier * C
    assert model.stem[0]._W.shape == (12, 1, 3, 3)
    assert [c.out_channels for c in model.cells] == [8, 16, 16, 32, 32]
    assert model.classifier._W.shape == (32, 10)
    # the genotype is keyed by decision
    geno = model.genotype(random_logits(model).argmax())
    assert list(geno) == list(groups) and set(geno.values()) <= set(PRIMITIVES)


def test_unshared_has_one_parameter_per_edge():
    model = PnasSpace(PnasConfig(in_channels=1, init_channels=4, num_cells=3, num_choices=2,
                                 multiplier=2))  # fmt: skip
    logits = ArchLogits(model)
    assert len(logits) == 3 * (2 + 3) == len(model.choices())
    assert "cells/2/edge_3_1/alpha" in logits.parameters()
    assert list(model.choices())[0] == "cells/0/edge_2_0"
    assert all(op.mode == "sample" for op in model.choices().values())
    assert not model.export_files(".", logits.argmax(), logits.probabilities())  # no arch.json


def test_search_cell_matches_a_hand_computed_mixture():
    """Inference output of one cell = concat over the last nodes of sum_j sum_i p_ij op_i(s_j)."""
    rng = np.random.RandomState(1)
    cell = SearchCell(2, 2, 6, 6, 4, reduction=True, reduction_prev=False, mode="full",
                      shared=None, rng=rng)  # fmt: skip
    randomize(cell, rng)
    cell.training = False
    logits = random_logits(cell, seed=4)
    s0 = nn.Variable.from_numpy_array(rng.normal(size=(2, 6, 6, 6)).astype(np.float32))
    s1 = nn.Variable.from_numpy_array(rng.normal(size=(2, 6, 6, 6)).astype(np.float32))
    rule_ops = [m for _, m in cell.get_modules() if isinstance(m, MixedOp)]
    for op in rule_ops:
        op.rule = lambda o, *x: mixture(o, logits.of(o), *x)
    y = cell(s0, s1)
    y.forward()
    assert y.shape == (2, 8, 3, 3)

    def value(v):
        if v.parent is not None:  # (an identity returns its input variable)
            v.forward()
        return v.d.astype(np.float64)

    states = [value(cell.pre0(s0)), value(cell.pre1(s1))]
    inputs = [cell.pre0(s0), cell.pre1(s1)]
    for node in (2, 3):
        total = 0.0
        for j in range(node):
            op = getattr(cell, f"edge_{node}_{j}")
            p = softmax(logits.of(op).d)
            for i, cand in enumerate(op.ops):
                total = total + p[i] * value(cand(inputs[j]))
        states.append(total)
        inputs.append(nn.Variable.from_numpy_array(total.astype(np.float32)))
    ref = np.concatenate(states[-2:], axis=1)
    np.testing.assert_allclose(y.d, ref, rtol=1e-4, atol=1e-5)


def test_search_cell_batch_norms_have_no_affine_parameters():
    """DARTS' search cell: the only trainable weights are the convolutions' (BN without scale
    and shift, as in the reference ``model_search.py``). Hand count at C=4, inputs 6, 2 nodes,
    reduction: pre0 and pre1 (1x1, 6->4) 24 each; an edge of stride 1 has sep_conv_3x3 2 x
    (4*9 + 4*4) = 104, sep_conv_5x5 2 x (4*25 + 16) = 232, dil_conv_3x3 52, dil_conv_5x5 116:
    504; one of stride 2 adds the factorized reduce of skip_connect, 2 x (4*2) = 16: 520. Four
    edges leave the inputs (stride 2), one does not: 48 + 4 * 520 + 504 = 2632."""
    rng = np.random.RandomState(1)
    cell = SearchCell(2, 2, 6, 6, 4, reduction=True, reduction_prev=False, mode="full",
                      shared=None, rng=rng)  # fmt: skip
    trainable = cell.get_parameters(grad_only=True)
    assert sum(p.size for p in trainable.values()) == 2632
    assert all(k.endswith("/_W") for k in trainable)
    # The running statistics are kept (not trainable): mean and variance of every BN.
    stats = [k for k in cell.get_parameters() if k not in trainable]
    assert stats and all(k.endswith(("_mean", "_var")) for k in stats)


@pytest.mark.parametrize("shared", [True, False])
def test_supernet_forward_backward(shared):
    model = DartsSpace(tiny(shared=shared, num_choices=2), rng=np.random.RandomState(2))
    rng = np.random.RandomState(0)
    x = nn.Variable.from_numpy_array(rng.normal(size=(2, 1, 16, 16)).astype(np.float32))
    t = nn.Variable.from_numpy_array(np.array([[3], [7]], dtype=np.int32))
    logits_ = random_logits(model, seed=5, scale=1e-3)
    for op in [m for _, m in model.get_modules() if isinstance(m, MixedOp)]:
        op.rule = lambda o, *v: mixture(o, logits_.of(o), *v)
    out = model(x)
    assert out.shape == (2, 10)
    loss = model.loss(out, t)
    params = model.get_parameters(grad_only=True)
    for p in logits_.params.values():
        p.grad.zero()
    for p in params.values():
        p.grad.zero()
    loss.forward()
    logits = out.d.astype(np.float64)
    loss.backward()
    logp = logits - logits.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    assert loss.d == pytest.approx(-(logp[0, 3] + logp[1, 7]) / 2, rel=1e-5)
    assert all(np.abs(p.g).sum() > 0 for p in logits_.params.values())  # every logit
    assert np.abs(params["stem/0/_W"].g).sum() > 0
    assert np.abs(params["cells/0/edge_3_2/ops/4/op1/dw/_W"].g).sum() > 0  # a sep_conv_3x3


def test_sample_mode_runs_one_candidate_per_edge():
    model = PnasSpace(PnasConfig(in_channels=1, init_channels=4, num_cells=3, num_choices=2,
                                 multiplier=1), rng=np.random.RandomState(3))  # fmt: skip
    x = nn.Variable.from_numpy_array(np.random.RandomState(0).rand(2, 1, 8, 8).astype("f4"))
    out = model(x)
    F.mean(out).forward()
    assert all(op.active_index is not None for op in model.choices().values())


def test_architecture_graph():
    model = DartsSpace(tiny(), rng=np.random.RandomState(0))
    logits = logits_of(model, {"normal/edge_2_1": np.log([0.1, 0.1, 0.1, 0.1, 0.3, 0.1, 0.1, 0.1])})
    graph = model.arch_graph((1, 16, 16), logits.argmax(), logits.probabilities())
    cells = [n for n in graph.nodes if n.name.startswith("cell")]
    assert [n.shape for n in cells] == [(8, 16, 16), (16, 8, 8), (32, 4, 4)]
    assert "sep_conv_3x3(1)" in cells[0].label and "(reduce)" in cells[1].label


@pytest.mark.parametrize(
    "kw, key, words",
    [
        (dict(multiplier=4), "multiplier", "1..num_choices"),
        (dict(multiplier=0), "multiplier", "1..num_choices"),
        (dict(num_cells=0), "num_cells", ">= 1"),
        (dict(num_cells=2), "num_cells", ">= 3"),
        (dict(init_channels=0), "init_channels", ">= 1"),
        (dict(mode="argmax"), "mode", "full, sample, max"),
        (dict(drop_path=1.0), "drop_path", "[0, 1)"),
        (dict(in_channels=0), "in_channels", ">= 1"),
    ],
)
def test_bad_config_names_the_key(kw, key, words):
    cfg = tiny(**kw)
    with pytest.raises(ConfigError) as err:
        DartsSpace(cfg)
    assert err.value.key == key and words in str(err.value)


def test_keys_through_the_experiment_parser():
    with pytest.raises(ConfigError) as err:
        parse_network({"search_space": "darts", "num_choice": 3}, "network")
    assert err.value.key == "network.num_choice" and "num_choices" in str(err.value)
    with pytest.raises(ConfigError) as err:
        parse_network({"search_space": "pnas", "drop_path": 2}, "network")
    assert err.value.key == "network.drop_path"
    keys = {"init_channels": 8, "num_cells": 5, "num_classes": 10, "num_choices": 3,
            "multiplier": 3, "stem_multiplier": 2, "shared": False, "mode": "max",
            "auxiliary": True, "drop_path": 0.1, "genotype": None}  # fmt: skip
    cfg = ExperimentConfig.from_dict(
        {"input_shape": [1, 16, 16], "network": {"search_space": "darts", **keys}}
    )
    assert cfg.network.space.in_channels == 1  # filled from input_shape
    assert all(getattr(cfg.network.space, k) == v for k, v in keys.items())
    with pytest.raises(ConfigError, match="genotype file 'arch.json' must be loaded"):
        DartsSpace(tiny(genotype="arch.json"))


def test_input_channels_mismatch_is_a_clear_error():
    model = DartsSpace(tiny(in_channels=3))
    with pytest.raises(ConfigError, match="set network.in_channels"):
        model(nn.Variable((2, 1, 16, 16)))


def test_mixed_ops_are_the_choices():
    model = DartsSpace(tiny())
    assert all(isinstance(op, MixedOp) for op in model.choices().values())
    assert not model.get_arch_parameters()

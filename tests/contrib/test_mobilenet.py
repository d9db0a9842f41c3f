"""The mobilenet search space: structure, numbers against plain nnabla.functions, refusals."""

from __future__ import annotations

import nnabla as nn
import nnabla.functions as F
import numpy as np
import pytest

from nnabla_nas.contrib import SPACES
from nnabla_nas.contrib.mobilenet import (
    SKIP,
    InvertedResidual,
    MobileNetConfig,
    MobileNetSpace,
    make_divisible,
    parse_candidate,
)
from nnabla_nas.errors import ConfigError, GenotypeError
from nnabla_nas.genotype import Genotype
from nnabla_nas.module import Identity, use_architecture

# The standard MobileNetV2 table after the fixed MB1 block (t=6 rows of Sandler et al., 2018).
IMAGENET_SETTINGS = [[24, 2, 2], [32, 3, 2], [64, 4, 2], [96, 3, 1], [160, 3, 2], [320, 1, 1]]
# torchvision.models.mobilenet_v2(): learnable parameters (conv weights, BN gamma/beta,
# classifier weight and bias; no running statistics).
TORCHVISION_MOBILENET_V2_PARAMS = 3_504_872


def small_cfg(**kw) -> MobileNetConfig:
    base = dict(
        num_classes=10,
        settings=[[16, 2, 2], [24, 2, 2]],
        candidates=["MB3 3x3", "MB6 5x5"],
        width_mult=0.25,
        in_channels=1,
    )
    base.update(kw)
    return MobileNetConfig(**base)


def randomize(model, rng: np.random.RandomState) -> None:
    """Random weights and BN statistics (so equalities are not trivial)."""
    for path, p in model.get_parameters().items():
        if path.endswith("_var"):
            p.d = rng.uniform(0.5, 2.0, p.shape)
        else:
            p.d = rng.normal(0, 0.5, p.shape)


def test_registered():
    assert SPACES.get("MobileNet") is MobileNetSpace
    assert MobileNetSpace.Config is MobileNetConfig


def test_make_divisible_and_parse():
    assert make_divisible(32 * 0.25) == 8
    assert make_divisible(24 * 0.5) == 16  # 12 rounds up to 16
    assert make_divisible(1280 * 1.4) == 1792
    assert make_divisible(96 * 0.35) == 32  # 33.6 -> 32 (within 10%)
    assert make_divisible(10) == 16  # 8 < 0.9 * 10, so one more step
    assert parse_candidate("MB6 5x5") == (6, 5)
    assert parse_candidate("MB1 7x7") == (1, 7)


def test_default_config_is_the_seed_table():
    cfg = MobileNetConfig()
    assert cfg.settings == [
        [24, 4, 1],
        [32, 4, 1],
        [64, 4, 2],
        [96, 4, 1],
        [160, 4, 2],
        [320, 1, 1],
    ]
    assert cfg.candidates == ["MB3 3x3", "MB6 3x3", "MB3 5x5", "MB6 5x5", "MB3 7x7", "MB6 7x7"]
    assert (cfg.skip_connect, cfg.mode, cfg.num_classes) == (True, "sample", 1000)


@pytest.mark.parametrize(
    "kw, key, words",
    [
        (dict(candidates=["MB6 3x5"]), "candidates[0]", "MB{e} {k}x{k}"),
        (dict(candidates=["mb6 3x3"]), "candidates[0]", "MB{e} {k}x{k}"),
        (dict(candidates=["MB6 4x4"]), "candidates[0]", "odd kernel"),
        (dict(candidates=["MB6 3x3", SKIP]), "candidates[1]", "skip_connect: true"),
        (dict(candidates=[]), "candidates", "at least one"),
        (dict(candidates=["MB6 3x3", "MB6 3x3"]), "candidates", "duplicate"),
        (dict(settings=[[16, 2]]), "settings[0]", "[channels, max blocks, stride]"),
        (dict(settings=[[16, 2, 2], [24, 0, 1]]), "settings[1]", ">= 1"),
        (dict(settings=[]), "settings", "at least one row"),
        (dict(width_mult=0.0), "width_mult", "> 0"),
        (dict(width_mult=-1.0), "width_mult", "> 0"),
        (dict(mode="argmax"), "mode", "full, sample, max"),
        (dict(drop_rate=1.0), "drop_rate", "[0, 1)"),
        (dict(num_classes=0), "num_classes", ">= 1"),
    ],
)
def test_bad_config_names_the_key(kw, key, words):
    cfg = small_cfg(**kw)
    with pytest.raises(ConfigError) as err:
        cfg.check()
    assert err.value.key == key
    assert words in str(err.value)
    with pytest.raises(ConfigError):  # the constructor checks too
        MobileNetSpace(cfg)


def test_bad_config_through_the_experiment_parser():
    from nnabla_nas.config import parse_network

    with pytest.raises(ConfigError) as err:
        parse_network({"search_space": "mobilenet", "width_mult": 0}, "network")
    assert err.value.key == "network.width_mult"
    with pytest.raises(ConfigError) as err:
        parse_network({"search_space": "mobilenet", "candidates": ["MB6 3x3", "MB9"]}, "network")
    assert err.value.key == "network.candidates[1]"
    ok = parse_network({"search_space": "mobilenet", "num_classes": 10, "mode": "max"}, "network")
    assert ok.space.num_classes == 10 and ok.space.mode == "max"


def test_input_channels_mismatch_is_a_clear_error():
    model = MobileNetSpace(small_cfg(in_channels=3))
    with pytest.raises(ConfigError, match="set network.in_channels") as err:
        model(nn.Variable((2, 1, 28, 28)))
    assert err.value.key == "in_channels"


def test_genotype_path_without_loaded_genotype_is_refused():
    with pytest.raises(ConfigError) as err:
        MobileNetSpace(small_cfg(genotype="arch.h5"))
    assert err.value.key == "genotype" and "load_genotype" in str(err.value)


def test_supernet_structure():
    model = MobileNetSpace(small_cfg(), rng=np.random.RandomState(1))
    choices = model.choices()
    # 2 rows of 2 blocks; the second block of each row keeps its shape and may be skipped.
    assert list(choices) == ["blocks/0", "blocks/1", "blocks/2", "blocks/3"]
    assert [op.names for op in choices.values()] == [
        ["MB3 3x3", "MB6 5x5"],
        ["MB3 3x3", "MB6 5x5", SKIP],
        ["MB3 3x3", "MB6 5x5"],
        ["MB3 3x3", "MB6 5x5", SKIP],
    ]
    assert not model.get_arch_parameters()  # the searcher owns the logits
    assert list(model.get_net_parameters()) == list(model.get_parameters())
    # width 0.25: stem 8, first block 8, rows 16*0.25 -> 8 and 24*0.25 -> 8, head 1280.
    assert model.stem.conv._W.shape == (8, 1, 3, 3)
    assert model.first.project._W.shape == (8, 8, 1, 1)
    mb6 = choices["blocks/1"].ops[1]
    assert mb6.expand.conv._W.shape == (48, 8, 1, 1)
    assert mb6.depthwise.conv._W.shape == (48, 5, 5)
    assert model.head.conv._W.shape == (1280, 8, 1, 1)
    assert model.classifier._W.shape == (1280, 10)


def test_supernet_forward_backward():
    model = MobileNetSpace(small_cfg(mode="sample"), rng=np.random.RandomState(2))
    rng = np.random.RandomState(0)
    x = nn.Variable.from_numpy_array(rng.normal(size=(2, 1, 28, 28)).astype(np.float32))
    t = nn.Variable.from_numpy_array(np.array([[3], [7]], dtype=np.int32))
    out = model(x)
    assert out.shape == (2, 10)
    loss = model.loss(out, t)
    err = model.error(out, t)
    params = model.get_net_parameters(grad_only=True)
    for p in params.values():
        p.grad.zero()
    F.sink(loss, err).forward()
    logits = out.d.astype(np.float64)  # copied before backward clears the buffers
    loss.backward(clear_buffer=True)
    # The numbers: mean cross-entropy and top-1 error recomputed with numpy from the logits.
    logp = logits - logits.max(1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
    assert loss.d == pytest.approx(-(logp[0, 3] + logp[1, 7]) / 2, rel=1e-5)
    assert err.d == pytest.approx(np.mean(logits.argmax(1) != np.array([3, 7])))
    # Gradients reach the stem and the sampled path of every block, not the other paths.
    assert np.abs(params["stem/conv/_W"].g).sum() > 0
    for label, op in model.choices().items():
        j = op.active_index
        assert j is not None
        for k, cand in enumerate(op.ops):
            grads = [np.abs(p.g).sum() for p in cand.get_parameters(grad_only=True).values()]
            if k == j and grads:
                assert sum(grads) > 0, label
            elif k != j:
                assert sum(grads) == 0, label


def test_loss_with_aux_head():
    model = MobileNetSpace(small_cfg(), rng=np.random.RandomState(0))
    rng = np.random.RandomState(1)
    a = nn.Variable.from_numpy_array(rng.normal(size=(4, 5)).astype(np.float32))
    b = nn.Variable.from_numpy_array(rng.normal(size=(4, 5)).astype(np.float32))
    t = nn.Variable.from_numpy_array(np.array([[0], [1], [2], [4]], dtype=np.int32))
    plain = model.loss(a, t)
    both = model.loss((a, b), t, aux_weight=0.4)
    aux = model.loss(b, t)
    F.sink(plain, both, aux).forward()
    assert both.d == pytest.approx(plain.d + 0.4 * aux.d, rel=1e-6)


def test_inverted_residual_matches_plain_functions():
    rng = np.random.RandomState(3)
    block = InvertedResidual(8, 8, stride=1, expand=3, kernel=3, rng=rng)
    randomize(block, rng)
    block.training = False
    x = nn.Variable.from_numpy_array(rng.normal(size=(2, 8, 6, 6)).astype(np.float32))
    y = block(x)
    y.forward()

    def bn(h, m):
        return F.batch_normalization(
            h, m._beta, m._gamma, m._mean, m._var, batch_stat=False, eps=1e-5
        )

    e, d = block.expand, block.depthwise
    h = F.clip_by_value(bn(F.convolution(x, e.conv._W), e.bn), 0.0, 6.0)
    h = F.depthwise_convolution(h, d.conv._W, pad=(1, 1))
    h = F.clip_by_value(bn(h, d.bn), 0.0, 6.0)
    ref = x + bn(F.convolution(h, block.project._W), block.bn)
    ref.forward()
    np.testing.assert_allclose(y.d, ref.d, rtol=1e-4, atol=1e-5)
    assert block.use_residual
    assert not InvertedResidual(8, 16, 1, 3, 3).use_residual
    assert not InvertedResidual(8, 8, 2, 3, 3).use_residual
    assert isinstance(InvertedResidual(8, 8, 1, 1, 3).expand, Identity)


def test_max_mode_equals_fixed_network_from_genotype():
    cfg = small_cfg(mode="max", drop_rate=0.2)
    model = MobileNetSpace(cfg, rng=np.random.RandomState(4))
    rng = np.random.RandomState(5)
    randomize(model, rng)
    # Block 3 chooses skip_connect and block 1 MB6 5x5.
    arch = {"blocks/0": 0, "blocks/1": 1, "blocks/2": 1, "blocks/3": 2}
    geno = model.genotype(arch)
    assert geno["blocks/3"] == SKIP and geno["blocks/1"] == "MB6 5x5"

    fixed = MobileNetSpace(cfg, genotype=geno, rng=np.random.RandomState(9))
    assert fixed.is_fixed and not fixed.choices() and not fixed.get_arch_parameters()
    assert isinstance(fixed.blocks[3], Identity)
    assert fixed.block_names({}) == list(geno.values())
    assert fixed.num_params() == model.num_params(arch)
    assert fixed.num_params() < model.num_params()
    manual = sum(p.size for p in model.get_net_parameters(grad_only=True).values()) - sum(
        p.size
        for label, op in model.choices().items()
        for j, cand in enumerate(op.ops)
        if j != arch[label]
        for p in cand.get_parameters(grad_only=True).values()
    )
    assert fixed.num_params() == manual

    model.copy_chosen_weights(fixed, arch)
    model.training = False
    fixed.training = False
    x = nn.Variable.from_numpy_array(rng.normal(size=(3, 1, 28, 28)).astype(np.float32))
    with use_architecture(model, arch):
        a = model(x)
    b = fixed(x)
    F.sink(a, b).forward()
    assert np.abs(a.d).max() > 0
    np.testing.assert_allclose(a.d, b.d, rtol=1e-5, atol=1e-6)
    # Every fixed weight (running statistics included) has its supernet counterpart's value.
    src = model.get_parameters()
    assert np.array_equal(
        fixed.get_parameters()["blocks/1/depthwise/bn/_var"].d,
        src["blocks/1/ops/1/depthwise/bn/_var"].d,
    )


def test_genotype_validation():
    cfg = small_cfg()
    model = MobileNetSpace(cfg)
    good = model.genotype({label: 0 for label in model.choices()})
    with pytest.raises(GenotypeError, match=r"unknown labels \['blocks/9'\]"):
        MobileNetSpace(cfg, genotype={**good, "blocks/9": "MB3 3x3"})
    missing = dict(good)
    del missing["blocks/2"]
    with pytest.raises(GenotypeError, match=r"missing labels \['blocks/2'\]"):
        MobileNetSpace(cfg, genotype=missing)
    with pytest.raises(GenotypeError, match="'MB6 7x7' for 'blocks/0'"):
        MobileNetSpace(cfg, genotype={**good, "blocks/0": "MB6 7x7"})
    with pytest.raises(GenotypeError, match="'skip_connect' for 'blocks/0'"):
        MobileNetSpace(cfg, genotype={**good, "blocks/0": SKIP})
    with pytest.raises(GenotypeError, match="'darts'"):
        MobileNetSpace(cfg, genotype=Genotype("darts", good))
    fixed = MobileNetSpace(cfg, genotype=Genotype("mobilenet", good))
    assert fixed.block_names({}) == list(good.values())


def test_single_candidate_is_not_a_choice():
    model = MobileNetSpace(small_cfg(candidates=["MB6 3x3"], skip_connect=False))
    assert not model.choices() and not model.get_arch_parameters()
    assert model.genotype({}) == {}
    assert model.block_names({}) == ["MB6 3x3"] * 4
    # With skip_connect, the shape-keeping blocks still choose between MB6 3x3 and skipping.
    cfg = small_cfg(candidates=["MB6 3x3"], skip_connect=True)
    model = MobileNetSpace(cfg)
    assert list(model.choices()) == ["blocks/1", "blocks/3"]
    fixed = MobileNetSpace(cfg, genotype={"blocks/1": SKIP, "blocks/3": "MB6 3x3"})
    assert fixed.block_names({}) == ["MB6 3x3", SKIP, "MB6 3x3", "MB6 3x3"]
    assert isinstance(fixed.blocks[1], Identity) and isinstance(fixed.blocks[0], InvertedResidual)


def test_mobilenet_v2_reference_parameter_count():
    cfg = MobileNetConfig(
        num_classes=1000, settings=IMAGENET_SETTINGS, candidates=["MB6 3x3"], skip_connect=False
    )
    model = MobileNetSpace(cfg)  # graph construction only
    assert model.num_params() == TORCHVISION_MOBILENET_V2_PARAMS
    assert model.num_params({}) == TORCHVISION_MOBILENET_V2_PARAMS
    # Running statistics (2 per BN channel) are saved with the weights but are not learnable.
    bn_channels = sum(p.size for k, p in model.get_net_parameters().items() if k.endswith("_mean"))
    assert len(model.get_net_parameters()) > len(model.get_net_parameters(grad_only=True))
    assert sum(p.size for p in model.get_net_parameters().values()) == (
        TORCHVISION_MOBILENET_V2_PARAMS + 2 * bn_channels
    )
    # 10 classes: the classifier shrinks from 1280*1000+1000 to 1280*10+10.
    cfg10 = MobileNetConfig(
        num_classes=10, settings=IMAGENET_SETTINGS, candidates=["MB6 3x3"], skip_connect=False
    )
    assert MobileNetSpace(cfg10).num_params() == 2_236_682


def test_cifar_reference_forward_and_shapes():
    cfg = MobileNetConfig(num_classes=10, candidates=["MB6 3x3"], skip_connect=False)
    model = MobileNetSpace(cfg, rng=np.random.RandomState(0))
    model.training = False
    x = nn.Variable.from_numpy_array(np.random.RandomState(0).rand(1, 3, 32, 32).astype("f4"))
    feats = model.first(model.stem(x))
    shapes = [feats.shape[1:]]
    for block in model.blocks:
        feats = block(feats)
        shapes.append(feats.shape[1:])
    # The seed's CIFAR table: stem /2, then strides 1, 1, 2, 1, 2, 1 -> 4x4 at the end.
    assert shapes[0] == (16, 16, 16) and shapes[-1] == (320, 4, 4)
    graph = model.arch_graph((3, 32, 32), {})
    block_nodes = [n for n in graph.nodes if n.name.startswith("b")]
    assert [n.shape for n in block_nodes] == shapes[1:]
    out = model(x)
    out.forward()
    assert out.shape == (1, 10) and np.isfinite(out.d).all()

"""The search-space base class on a toy space with nested choices."""

from __future__ import annotations

import nnabla as nn
import nnabla.functions as F
import numpy as np
import pytest

from nnabla_nas.contrib.model import Model
from nnabla_nas.errors import GenotypeError
from nnabla_nas.module import Identity, Linear, MixedOp, Module, use_architecture


class Inner(Module):
    """A candidate that holds a choice of its own."""

    def __init__(self, rng):
        self.lin = Linear(4, 4, rng=rng)
        self.choice = MixedOp([Linear(4, 4, rng=rng), Identity()], mode="max", names=["lin", "id"])

    def call(self, x):
        return self.choice(self.lin(x))


class FixedInner(Module):
    """``Inner`` with its choice fixed to ``lin``."""

    def __init__(self, rng):
        self.lin = Linear(4, 4, rng=rng)
        self.choice = Linear(4, 4, rng=rng)

    def call(self, x):
        return self.choice(self.lin(x))


class Toy(Model):
    space_name = "toy"

    def __init__(self, rng, fixed=None):
        self.stem = Linear(3, 4, rng=rng)
        if fixed is None:
            self.block = MixedOp(
                [Linear(4, 4, rng=rng), Inner(rng), Identity()],
                mode="max",
                names=["lin", "inner", "skip_connect"],
            )
        else:
            self.block = fixed
        self.out = Linear(4, 2, rng=rng)

    def call(self, x):
        return self.out(self.block(self.stem(x)))


def test_choices_genotype_and_parameter_split():
    rng = np.random.RandomState(0)
    toy = Toy(rng)
    assert list(toy.choices()) == ["block", "block/ops/1/choice"]
    assert not toy.get_arch_parameters()  # the space only declares its choices
    assert list(toy.get_net_parameters()) == list(toy.get_parameters())
    arch = {"block": 1, "block/ops/1/choice": 1}
    assert toy.genotype(arch) == {"block": "inner", "block/ops/1/choice": "id"}
    assert toy.architecture_of({"block": "inner", "block/ops/1/choice": "id"}) == arch
    logits = {"block/alpha": np.array([0.0, 3.0, 1.0])}
    g = toy.to_genotype(arch, logits, extra={"epoch": 3})
    assert g.space == "toy" and g.extra == {"epoch": 3}
    assert g.choices == {"block": "inner", "block/ops/1/choice": "id"}
    np.testing.assert_array_equal(g.logits["block/alpha"], [0.0, 3.0, 1.0])
    with pytest.raises(GenotypeError, match="'lin2'"):
        toy.architecture_of({"block": "lin2", "block/ops/1/choice": "id"})
    with pytest.raises(GenotypeError, match="missing choices \\['block/ops/1/choice'\\]"):
        toy.check_architecture({"block": 0})
    with pytest.raises(GenotypeError, match="out of range"):
        toy.check_architecture({"block": 3, "block/ops/1/choice": 0})
    toy.check_architecture(arch)


def test_fixed_parameters_follow_the_architecture_through_nested_choices():
    rng = np.random.RandomState(1)
    toy = Toy(rng)
    inner = toy.block.ops[1]
    arch = {"block": 1, "block/ops/1/choice": 0}
    fixed = toy.fixed_parameters(arch)
    assert list(fixed) == [
        "stem/_W",
        "stem/_b",
        "block/lin/_W",
        "block/lin/_b",
        "block/choice/_W",
        "block/choice/_b",
        "out/_W",
        "out/_b",
    ]
    assert fixed["block/choice/_W"] is inner.choice.ops[0]._W
    # 3*4+4 + 2*(4*4+4) + 4*2+2 learnable weights on the chosen path; the unchosen Linear of
    # the outer choice (20) is left out.
    assert toy.num_params(arch) == 16 + 40 + 10
    assert toy.num_params() == 16 + 20 + 40 + 10
    # an outer choice that skips the inner one: the inner choice's candidates are all dead
    assert toy.num_params({"block": 2, "block/ops/1/choice": 0}) == 16 + 10

    # A fixed network with the chosen ops at the choices' paths receives the weights and
    # computes the same function.
    frng = np.random.RandomState(7)
    net = Toy(frng, fixed=FixedInner(frng))
    toy.copy_chosen_weights(net, arch)
    x = nn.Variable.from_numpy_array(np.random.RandomState(2).rand(5, 3).astype("f4"))
    with use_architecture(toy, arch):
        a = toy(x)
    b = net(x)
    F.sink(a, b).forward()
    np.testing.assert_allclose(a.d, b.d, rtol=1e-6)
    with pytest.raises(ValueError, match="does not match"):
        toy.copy_chosen_weights(Toy(frng, fixed=Identity()), arch)


def test_error_rate_is_top1():
    toy = Toy(np.random.RandomState(0))
    logits = nn.Variable.from_numpy_array(
        np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]], dtype=np.float32)
    )
    target = nn.Variable.from_numpy_array(np.array([[1], [1], [1], [0]], dtype=np.int32))
    err = toy.error((logits, None), target)
    err.forward()
    assert err.d == pytest.approx(0.25)


def test_default_arch_graph_is_a_chain_of_choices():
    toy = Toy(np.random.RandomState(0))
    graph = toy.arch_graph((3,), {"block": 2, "block/ops/1/choice": 0})
    kinds = [n.kind for n in graph.nodes]
    assert kinds == ["input", "skip", "op", "output"]
    assert [(e.src, e.dst) for e in graph.edges] == [
        ("input", "c0"),
        ("c0", "c1"),
        ("c1", "output"),
    ]

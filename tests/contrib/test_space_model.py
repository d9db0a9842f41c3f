"""The search-space base class on a toy space with nested choices."""

from __future__ import annotations

import nnabla as nn
import nnabla.functions as F
import numpy as np
import pytest

from nnabla_nas.contrib.model import Model
from nnabla_nas.errors import GenotypeError
from nnabla_nas.module import Identity, Linear, MixedOp, Module


class Inner(Module):
    """A candidate that holds a choice of its own."""

    def __init__(self, rng):
        self.lin = Linear(4, 4, rng=rng)
        self.choice = MixedOp(
            [Linear(4, 4, rng=rng), Identity()], mode="max", rng=rng, names=["lin", "id"]
        )

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
                rng=rng,
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
    assert list(toy.get_arch_parameters()) == ["block/alpha", "block/ops/1/choice/alpha"]
    assert all("alpha" not in k for k in toy.get_net_parameters())
    toy.block.alpha.d = np.array([0.0, 3.0, 1.0]).reshape(3, 1, 1, 1, 1)
    toy.block.ops[1].choice.alpha.d = np.array([0.0, 1.0]).reshape(2, 1, 1, 1, 1)
    assert toy.genotype() == {"block": "inner", "block/ops/1/choice": "id"}
    g = toy.to_genotype(extra={"epoch": 3})
    assert g.space == "toy" and g.extra == {"epoch": 3}
    np.testing.assert_array_equal(g.logits["block/alpha"].ravel(), [0.0, 3.0, 1.0])
    # The logits are a copy, not a view of the live parameter.
    toy.block.alpha.d = np.zeros((3, 1, 1, 1, 1))
    assert g.logits["block/alpha"].ravel()[1] == 3.0


def test_fixed_parameters_follow_the_argmax_path_through_nested_choices():
    rng = np.random.RandomState(1)
    toy = Toy(rng)
    toy.block.alpha.d = np.array([0.0, 3.0, 1.0]).reshape(3, 1, 1, 1, 1)
    inner = toy.block.ops[1]
    inner.choice.alpha.d = np.array([2.0, 0.0]).reshape(2, 1, 1, 1, 1)
    fixed = toy.fixed_parameters()
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
    # 3*4+4 + 2*(4*4+4) + 4*2+2 learnable weights on the argmax path; the unchosen Linear of the
    # outer choice (20) is left out.
    assert toy.num_params(only_active=True) == 16 + 40 + 10
    assert toy.num_params() == 16 + 20 + 40 + 10

    # A fixed network with the chosen ops at the choices' paths receives the weights and
    # computes the same function.
    frng = np.random.RandomState(7)
    net = Toy(frng, fixed=FixedInner(frng))
    toy.copy_chosen_weights(net)
    x = nn.Variable.from_numpy_array(np.random.RandomState(2).rand(5, 3).astype("f4"))
    a, b = toy(x), net(x)
    F.sink(a, b).forward()
    np.testing.assert_allclose(a.d, b.d, rtol=1e-6)
    with pytest.raises(ValueError, match="does not match"):
        toy.copy_chosen_weights(Toy(frng, fixed=Identity()))


def test_set_arch_logits():
    toy = Toy(np.random.RandomState(0))
    toy.set_arch_logits({"block/alpha": np.arange(3.0).reshape(3, 1, 1, 1, 1)})
    assert toy.genotype()["block"] == "skip_connect"
    with pytest.raises(GenotypeError, match="'block/beta' does not exist"):
        toy.set_arch_logits({"block/beta": np.zeros((3, 1, 1, 1, 1))})
    with pytest.raises(GenotypeError, match="shape"):
        toy.set_arch_logits({"block/alpha": np.zeros((2, 1, 1, 1, 1))})


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
    toy.block.alpha.d = np.array([0.0, 0.0, 1.0]).reshape(3, 1, 1, 1, 1)
    graph = toy.arch_graph((3,))
    kinds = [n.kind for n in graph.nodes]
    assert kinds == ["input", "skip", "op", "output"]
    assert [(e.src, e.dst) for e in graph.edges] == [
        ("input", "c0"),
        ("c0", "c1"),
        ("c1", "output"),
    ]

"""SearchSpace: from a model (shared labels as one decision), from a table, architectures."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

from nnabla_nas.errors import ConfigError
from nnabla_nas.module import Conv, Identity, MixedOp, Module
from nnabla_nas.trials import SearchSpace

from .toy import toy_table


class Cells(Module):
    """Two MixedOps sharing label ``cell`` and one of its own (label = module path)."""

    def __init__(self) -> None:
        names = ["conv3", "conv5"]
        self.a = MixedOp([Conv(4, 4, (3, 3), pad=(1, 1)), Conv(4, 4, (5, 5), pad=(2, 2))],
                         names=names, label="cell")  # fmt: skip
        self.b = MixedOp([Conv(4, 4, (3, 3), pad=(1, 1)), Conv(4, 4, (5, 5), pad=(2, 2))],
                         names=names, label="cell")  # fmt: skip
        self.c = MixedOp([Identity(), Conv(4, 4, (1, 1)), Identity()], names=["id", "pw", "id2"])

    def call(self, x):
        return self.c(self.b(self.a(x)))


def test_from_model_shared_label_is_one_decision():
    space = SearchSpace.from_model(Cells(), name="cells")
    assert space.choices == OrderedDict([("cell", ("conv3", "conv5")), ("c", ("id", "pw", "id2"))])
    assert space.size == 6 and len(list(space)) == 6
    assert len({space.key(a) for a in space}) == 6


def test_shared_label_with_different_candidates_is_refused():
    model = Cells()
    model.c.label = "cell"
    with pytest.raises(ConfigError, match="'cell' are one decision"):
        SearchSpace.from_model(model)


def test_table_space_and_genotype_roundtrip():
    space = toy_table(3, 3).space()
    assert space.labels == ["c0", "c1", "c2"] and space.size == 27
    arch = {"c0": 2, "c1": 0, "c2": 1}
    genotype = space.genotype(arch)
    assert genotype == OrderedDict([("c0", "k2"), ("c1", "k0"), ("c2", "k1")])
    assert space.from_genotype(genotype) == arch
    assert SearchSpace.from_dict(space.to_dict()) == space


@pytest.mark.parametrize(
    "arch, match",
    [
        ({"c0": 0, "c1": 0}, r"missing \['c2'\]"),
        ({"c0": 0, "c1": 0, "c2": 0, "x": 1}, r"unknown labels \['x'\]"),
        ({"c0": 3, "c1": 0, "c2": 0}, "index 3 is not in 0..2"),
        ({"c0": True, "c1": 0, "c2": 0}, "index True"),
    ],
)
def test_check_refuses_bad_architectures(arch, match):
    with pytest.raises(ConfigError, match=match):
        toy_table(3, 3).space().check(arch)


def test_random_is_uniform_and_seeded():
    space = toy_table(2, 3).space()
    draws = [space.key(space.random(np.random.default_rng(s))) for s in range(900)]
    counts = np.array([draws.count(space.key(a)) for a in space])
    assert counts.sum() == 900 and counts.min() > 60  # 100 expected per architecture
    rng1, rng2 = np.random.default_rng(5), np.random.default_rng(5)
    assert [space.random(rng1) for _ in range(5)] == [space.random(rng2) for _ in range(5)]


def test_empty_space_is_refused():
    with pytest.raises(ConfigError, match="no choices"):
        SearchSpace({})
    with pytest.raises(ConfigError, match="repeats a candidate"):
        SearchSpace({"a": ["x", "x"]})


def test_architecture_index_follows_iteration_order():
    space = SearchSpace({"a": ["x", "y"], "b": ["p", "q", "r"]})
    assert [space.architecture(i) for i in range(space.size)] == list(space)
    with pytest.raises(IndexError):
        space.architecture(6)

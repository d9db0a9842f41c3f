"""Registry-driven: every registered space builds at a tiny size, runs forward and backward,
exports its genotype (arch.h5 and the space's own files) and rebuilds its fixed network from it.

A new space adds its tiny configuration to TINY (the test fails until it does).
"""

from __future__ import annotations

import nnabla as nn
import numpy as np
import pytest

from nnabla_nas.contrib import SPACES
from nnabla_nas.genotype import load_genotype, save_genotype
from tests.arch import genotype_of, random_logits

#: name -> (the space's network keys at a tiny size, input shape)
TINY = {
    "mobilenet": (
        dict(num_classes=10, settings=[[16, 1, 2], [24, 2, 2]], candidates=["MB3 3x3", "MB6 5x5"],
             width_mult=0.25, in_channels=1, mode="sample"),
        (1, 16, 16),
    ),
    "darts": (
        dict(in_channels=1, init_channels=4, num_cells=3, num_choices=2, multiplier=2,
             auxiliary=True),
        (1, 12, 12),
    ),
    "pnas": (
        dict(in_channels=1, init_channels=4, num_cells=3, num_choices=2, multiplier=2),
        (1, 12, 12),
    ),
    "zoph": (
        dict(stem_channels=4, cell_depth=2, cell_channels=[4, 8, 8], in_channels=1, mode="sample",
             drop_path=0.2),
        (1, 12, 12),
    ),
    "random_wired": (
        dict(n_classes=10, n_vertices=6, min_channels=4, max_channels=8, k=2, p=0.5, seed=3,
             head_channels=16, in_channels=1),
        (1, 12, 12),
    ),
    "enas_macro": (
        dict(in_channels=1, num_layers=4, out_filters=4, num_classes=10),
        (1, 12, 12),
    ),
    "enas_micro": (
        dict(in_channels=1, num_layers=3, num_nodes=2, out_filters=4, num_classes=10,
             drop_path=0.2),
        (1, 12, 12),
    ),
}  # fmt: skip


def _train_once(model, shape, rng):
    x = nn.Variable.from_numpy_array(rng.normal(size=(2, *shape)).astype(np.float32))
    t = nn.Variable.from_numpy_array(np.array([[1], [4]], dtype=np.int32))
    params = model.get_net_parameters(grad_only=True)
    for p in params.values():
        p.grad.zero()
    loss = model.loss(model(x), t, aux_weight=0.4)
    loss.forward()
    loss.backward()
    assert np.isfinite(loss.d)
    with_grad = [k for k, p in params.items() if np.abs(p.g).sum() > 0]
    assert with_grad, "no weight received a gradient"
    return loss


@pytest.mark.parametrize("name", SPACES.names())
def test_every_space_builds_runs_exports_and_rebuilds(name, tmp_path):
    if name not in TINY:
        pytest.fail(f"add a tiny configuration of the {name!r} space to TINY in {__file__}")
    keys, shape = TINY[name]
    space = SPACES.get(name)
    cfg = space.Config(**keys)
    model = space(cfg, rng=np.random.RandomState(0))
    # a space that is a fixed network (searchable False: random_wired) has no choices
    assert bool(model.choices()) == space.searchable, "a supernet without choices"
    assert not model.get_arch_parameters(), "a space declares choices; logits are the searcher's"
    rng = np.random.RandomState(1)
    logits = random_logits(model, seed=1)  # a non-trivial architecture, as a searcher holds it
    arch = logits.argmax()
    _train_once(model, shape, rng)

    save_genotype(tmp_path / "arch.h5", genotype_of(model, logits, {"epoch": 1}))
    written = model.export_files(tmp_path, arch, logits.probabilities())
    assert all(p.is_file() and p.parent == tmp_path for p in written)
    geno = load_genotype(tmp_path / "arch.h5", name)
    assert geno.space == name and dict(geno.choices) == dict(model.genotype(arch))

    fixed = space(cfg, genotype=geno, rng=np.random.RandomState(2))
    assert not fixed.choices() and not fixed.get_arch_parameters()
    assert fixed.genotype({}) == {}
    _train_once(fixed, shape, rng)
    if not space.searchable:  # the genotype rebuilds the same network
        assert fixed.num_params() == model.num_params()
    # a written cell genotype (arch.json) rebuilds the same fixed network as the arch.h5
    json_files = [p for p in written if p.suffix == ".json"]
    for path in json_files:
        again = space(cfg, genotype=load_genotype(path, name), rng=np.random.RandomState(2))
        assert again.num_params() == fixed.num_params()

"""The ``nas-bench-macro`` preset of the mobilenet space against the published NAS-Bench-Macro
table (Su et al., CVPR 2021; ``tests/data/nas_bench_macro``): the parameters of every one of the
6,561 architectures, and the FLOPs.

The table's ``flops`` are the multiply-accumulates of the convolutions and of the classifier
(biases, batch normalisations, poolings and additions not counted: ``00000000`` has exactly
7,713,280 of them). Our :class:`FlopsEstimator` counts the same for those layers, and in
addition one MAC per batch-normalised value and per pooled value: the estimator's conv/affine
part equals the table exactly, its total exceeds it by 0.61 % to 1.95 % (measured).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nnabla_nas.config import parse_network
from nnabla_nas.contrib.mobilenet import MobileNetConfig, MobileNetSpace
from nnabla_nas.contrib.presets import preset_config
from nnabla_nas.errors import ConfigError
from nnabla_nas.estimator.flops import FlopsEstimator, ParamsEstimator, layer_macs

TABLE = Path(__file__).resolve().parents[1] / "data" / "nas_bench_macro"
DIGITS = {"0": "skip_connect", "1": "MB3 3x3", "2": "MB6 5x5"}
COUNTED = ("Convolution", "DepthwiseConvolution", "Affine")  # what the table's flops count


@pytest.fixture(scope="module")
def table():
    return json.loads((TABLE / "nas-bench-macro_cifar10.json").read_text())


@pytest.fixture(scope="module")
def supernet():
    return MobileNetSpace(preset_config(MobileNetConfig, "nas-bench-macro", in_channels=3))


def _architecture(model, key: str) -> dict[str, int]:
    choices = model.choices()
    return {label: op.names.index(DIGITS[d]) for (label, op), d in zip(choices.items(), key)}


def test_the_preset_is_the_table_space(table, supernet):
    assert len(table) == 3**8 == 6561
    choices = supernet.choices()
    assert list(choices) == [f"blocks/{i}" for i in range(8)]
    assert all(set(op.names) == set(DIGITS.values()) for op in choices.values())
    assert table["00000000"]["params"] == 387_882 and table["00000000"]["flops"] == 7_713_280


def test_parameters_of_every_architecture_equal_the_table(table, supernet):
    """One trace of the supernet (every candidate of every layer built once from our modules);
    each architecture's count is the sum over the layers it runs."""
    estimator = ParamsEstimator((3, 32, 32))
    wrong = {}
    for key, row in table.items():
        ours = int(estimator.predict(supernet, _architecture(supernet, key)))
        if ours != row["params"]:
            wrong[key] = (ours, row["params"])
    assert not wrong, f"{len(wrong)} architectures differ, e.g. {list(wrong.items())[:3]}"


@pytest.mark.parametrize("key", ["00000000", "22222222", "22212220", "10201021", "01120210"])
def test_fixed_networks_have_the_table_parameters(table, key):
    """The fixed network of a genotype, counted on its parameters (no estimator)."""
    cfg = preset_config(MobileNetConfig, "nas-bench-macro", in_channels=3)
    genotype = {f"blocks/{i}": DIGITS[d] for i, d in enumerate(key)}
    model = MobileNetSpace(cfg, genotype=genotype)
    assert model.num_params() == table[key]["params"]


def test_flops_agree_with_the_table(table, supernet):
    estimator = FlopsEstimator((3, 32, 32))
    seg = estimator.trace(supernet)
    # the table's part of every candidate's layers, summed once per candidate
    fixed = sum(layer_macs(x) for x in seg.layers if x.type in COUNTED)
    per_choice = [[sum(layer_macs(x) for x in cand.all_layers() if x.type in COUNTED)
                   for cand in choice.candidates] for choice in seg.choices]  # fmt: skip
    excess = []
    for key, row in table.items():
        arch = _architecture(supernet, key)
        counted = fixed + sum(c[i] for c, i in zip(per_choice, arch.values()))
        assert counted == row["flops"], key
        excess.append(estimator.predict(supernet, arch) / row["flops"] - 1.0)
    assert 0.0 < min(excess) and max(excess) < 0.02  # + BN and pooling MACs


def test_preset_through_the_experiment_parser():
    net = parse_network({"search_space": "mobilenet", "preset": "nas-bench-macro"})
    assert net.space.settings == [[64, 2, 2], [128, 3, 2], [256, 3, 2]]
    space = net.space
    assert (space.stem_stride, space.first_block, space.activation) == (1, False, "relu")
    # keys the file gives win; the resolved form has no preset but every key
    net = parse_network({"search_space": "mobilenet", "preset": "NAS-Bench-Macro",
                         "num_classes": 100})  # fmt: skip
    assert net.space.num_classes == 100 and "preset" not in net.to_dict()
    assert parse_network(net.to_dict()).space == net.space
    with pytest.raises(ConfigError) as err:
        parse_network({"search_space": "mobilenet", "preset": "nas-bench-201"})
    assert err.value.key == "network.preset" and "nas-bench-macro" in str(err.value)
    with pytest.raises(ConfigError) as err:
        parse_network({"search_space": "mobilenet", "preset": "nas-bench-macro",
                       "skip_connect": False})  # fmt: skip
    assert err.value.key == "network.skip_projection"


def test_relu_and_projection_skip_are_built(supernet):
    from nnabla_nas.contrib.mobilenet import SkipProjection
    from nnabla_nas.module import ReLU, ReLU6

    modules = [m for _, m in supernet.get_modules()]
    assert not any(isinstance(m, ReLU6) for m in modules)
    assert any(isinstance(m, ReLU) for m in modules)
    first = supernet.choices()["blocks/0"]
    assert isinstance(first.ops[first.names.index("skip_connect")], SkipProjection)
    assert np.prod(supernet.blocks[0].ops[2].conv._W.shape) == 32 * 64


@pytest.mark.parametrize(
    "keys, key",
    [({"activation": "gelu"}, "network.activation"), ({"stem_stride": 0}, "network.stem_stride")],
)
def test_bad_new_keys_name_the_key(keys, key):
    with pytest.raises(ConfigError) as err:
        parse_network({"search_space": "mobilenet", **keys})
    assert err.value.key == key

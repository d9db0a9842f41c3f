"""The genotype file: nnabla's parameter layout + the chosen ops, atomic, strict on reading."""

from __future__ import annotations

import json
import os
from collections import OrderedDict

import h5py
import nnabla as nn
import numpy as np
import pytest

from nnabla_nas.contrib.mobilenet import MobileNetConfig, MobileNetSpace
from nnabla_nas.errors import GenotypeError
from nnabla_nas.genotype import FORMAT, Genotype, load_genotype, save_genotype
from tests.arch import genotype_of, random_logits


def small_cfg() -> MobileNetConfig:
    return MobileNetConfig(
        num_classes=10,
        settings=[[16, 2, 2], [24, 2, 1]],
        candidates=["MB3 3x3", "MB6 5x5", "MB3 7x7"],
        width_mult=0.25,
        in_channels=1,
    )


@pytest.fixture
def searched():
    """A supernet and random logits of its decisions (as a searcher holds them)."""
    model = MobileNetSpace(small_cfg(), rng=np.random.RandomState(0))
    return model, random_logits(model, seed=3)


@pytest.fixture
def clean_nnabla_scope():
    nn.clear_parameters()
    yield
    nn.clear_parameters()


def test_round_trip(tmp_path, searched, clean_nnabla_scope):
    model, logits = searched
    path = tmp_path / "arch.h5"
    save_genotype(path, genotype_of(model, logits), extra={"epoch": 4, "latency": np.float32(1.5)})
    assert not [p for p in os.listdir(tmp_path) if p != "arch.h5"]  # no temp file left

    # nnabla itself reads the logits.
    nn.load_parameters(str(path))
    loaded = nn.get_parameters(grad_only=False)
    arch = logits.parameters()
    assert list(loaded) == list(arch) == [f"blocks/{i}/alpha" for i in range(4)]
    for key, p in arch.items():
        np.testing.assert_array_equal(loaded[key].d, p.d)
        assert loaded[key].need_grad

    g = load_genotype(path, expected_space="mobilenet")
    assert g.space == "mobilenet"
    names = model.genotype(logits.argmax())
    assert g.choices == names and list(g.choices) == list(model.choices())
    assert g.extra == {"epoch": 4, "latency": 1.5}
    for key, p in arch.items():
        np.testing.assert_array_equal(g.logits[key], p.d)
    # argmax of the stored logits is the stored choice.
    for label, op in model.choices().items():
        assert g.choices[label] == op.names[int(np.argmax(g.logits[f"{label}/alpha"]))]

    fixed = MobileNetSpace(small_cfg(), genotype=g)
    assert fixed.block_names({}) == list(g.choices.values())
    fresh = random_logits(MobileNetSpace(small_cfg(), rng=np.random.RandomState(9)), seed=5)
    fresh.load(g.logits)
    assert fresh.argmax() == logits.argmax()


def test_choices_readable_without_the_code(tmp_path, searched):
    model, logits = searched
    path = tmp_path / "arch.h5"
    save_genotype(path, genotype_of(model, logits))
    names = dict(model.genotype(logits.argmax()))
    with h5py.File(path, "r") as f:
        assert f.attrs["nnabla_nas_format"] == FORMAT
        assert f.attrs["nnabla_nas_space"] == "mobilenet"
        assert json.loads(f.attrs["nnabla_nas_genotype"]) == names
        assert dict(f["nnabla_nas_choices"].attrs) == names
        assert f["blocks/1/alpha"].attrs["index"] == 1


def test_save_a_genotype_object_and_extra_merge(tmp_path):
    g = Genotype("toy", OrderedDict([("b", "x"), ("a", "y")]), extra={"epoch": 1})
    save_genotype(tmp_path / "g.h5", g, extra={"latency": 2.0})
    back = load_genotype(tmp_path / "g.h5")
    assert list(back.choices.items()) == [("b", "x"), ("a", "y")]  # order kept
    assert back.extra == {"epoch": 1, "latency": 2.0} and not back.logits
    assert g.extra == {"epoch": 1}  # the caller's object is not modified


def test_failed_write_leaves_the_old_file(tmp_path):
    path = tmp_path / "arch.h5"
    save_genotype(path, Genotype("toy", {"a": "x"}))
    before = path.read_bytes()
    with pytest.raises(TypeError):
        save_genotype(path, Genotype("toy", {"a": "z"}), extra={"bad": object()})
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["arch.h5"]


def test_missing_file(tmp_path):
    with pytest.raises(GenotypeError) as err:
        load_genotype(tmp_path / "nope.h5", key="network.genotype")
    assert "nope.h5" in str(err.value) and "does not exist" in str(err.value)
    assert err.value.key == "network.genotype" and err.value.exit_code == 2


def test_garbage_file(tmp_path):
    path = tmp_path / "arch.h5"
    path.write_text("this is not hdf5")
    with pytest.raises(GenotypeError, match="arch.h5.*not an HDF5 file"):
        load_genotype(path)


def test_plain_parameter_file_is_not_a_genotype(tmp_path, clean_nnabla_scope):
    path = str(tmp_path / "weights.h5")
    nn.parameter.get_parameter_or_create("w", (2, 2))
    nn.save_parameters(path)
    with pytest.raises(GenotypeError, match="weights.h5.*not an nnabla_nas genotype"):
        load_genotype(path)


def test_other_space(tmp_path, searched):
    path = tmp_path / "arch.h5"
    save_genotype(path, genotype_of(*searched))
    with pytest.raises(GenotypeError) as err:
        load_genotype(path, expected_space="darts")
    msg = str(err.value)
    assert "arch.h5" in msg and "'mobilenet'" in msg and "'darts'" in msg


def test_corrupt_choices(tmp_path):
    path = tmp_path / "arch.h5"
    save_genotype(path, Genotype("toy", {"a": "x"}))
    with h5py.File(path, "a") as f:
        f.attrs["nnabla_nas_genotype"] = "{not json"
    with pytest.raises(GenotypeError, match="arch.h5.*corrupt"):
        load_genotype(path)


def test_genotype_of_another_configuration_is_refused(tmp_path, searched):
    path = tmp_path / "arch.h5"
    save_genotype(path, genotype_of(*searched))
    g = load_genotype(path, "mobilenet")
    other = small_cfg()
    other.settings = [[16, 1, 2], [24, 2, 1]]  # one block fewer
    with pytest.raises(GenotypeError, match="arch.h5.*unknown labels") as err:
        MobileNetSpace(other, genotype=g)
    assert err.value.key == "genotype"

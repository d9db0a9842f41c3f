"""The Python API: the documented example (examples/custom_space.py, docs/python_api.rst) runs
and leaves the same outputs as the command line; registered spaces are built from their keys."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys

import numpy as np
import pytest

import nnabla_nas as nas
from nnabla_nas.errors import ConfigError
from nnabla_nas.genotype import load_genotype
from tests.conftest import ROOT
from tests.events import read_scalars


def _example():
    spec = importlib.util.spec_from_file_location("custom_space", ROOT / "examples/custom_space.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["custom_space"] = module
    spec.loader.exec_module(module)
    return module


def test_import_is_light_and_names_resolve():
    import subprocess

    code = "import sys, nnabla_nas; assert 'nnabla' not in sys.modules; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "ok", out.stderr
    assert nas.ProxylessNasSearcher.search and not nas.Trainer.search
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        nas.Nope  # noqa: B018


def test_create_space_parses_the_keys_strictly():
    model = nas.create_space("mobilenet", num_classes=10, in_channels=1,
                             settings=[[8, 1, 2]], width_mult=0.25)  # fmt: skip
    assert list(model.choices()) == ["blocks/0"]
    with pytest.raises(ConfigError) as err:
        nas.create_space("mobilenet", num_clases=10)
    assert err.value.key == "network.num_clases" and "num_classes" in str(err.value)


def test_the_documented_custom_space_searches_and_retrains(tmp_path, capsys):
    example = _example()
    out = example.main(str(tmp_path), epochs=1, limit=2)
    search, train = tmp_path / "search", tmp_path / "train"
    for folder in (search, train):
        for name in ("config.json", "log.txt", "results.json", "weights.h5"):
            assert (folder / name).is_file(), f"{folder.name}/{name}"
        assert read_scalars(folder / "tensorboard")["epoch/valid_error"]
    config = json.loads((search / "config.json").read_text())
    assert config["network"]["search_space"] == "tiny_custom" and config["dataset"] == "mnist"
    assert config["algorithm"] == "ProxylessNasSearcher" and config["warmup"] == 1
    assert config["searcher"] == {"estimator": "gradient", "num_samples": 8, "baseline_decay": 0.9,
                                  "arch_update_frequency": 1, "arch_update_delay": 0,
                                  "logit_init_std": 0.0}  # fmt: skip
    geno = load_genotype(search / "arch.h5", expected_space="tiny_custom")
    assert dict(geno.choices) == out["search"]["architecture"]
    assert set(geno.choices) == {"blocks/0", "blocks/1", "blocks/2"}
    if shutil.which("dot"):
        assert (search / "arch.png").read_bytes()[:4] == b"\x89PNG"
    assert "found:" in capsys.readouterr().out
    # the retrained network is the searched architecture: its weights are the supernet's
    # chosen path, name for name
    supernet = example.TinySpace()
    fixed = example.TinySpace(genotype=geno)
    arch = supernet.architecture_of(geno.choices)
    supernet.copy_chosen_weights(fixed, arch)
    assert fixed.num_params() == supernet.num_params(arch) == out["train"]["num_parameters"]
    assert 0.0 <= out["train"]["best"]["test_error"] <= 1.0
    assert np.isfinite(out["train"]["final"]["train_loss"])

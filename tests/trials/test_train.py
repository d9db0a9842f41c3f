"""The ``train`` evaluator: a trial equals a direct Trainer run of its architecture and seed, a
finished trial is not trained again, and what it refuses."""

from __future__ import annotations

import json

import nnabla as nn
import numpy as np
import pytest

import nnabla_nas as nas
from nnabla_nas.cli.trials import _setting
from nnabla_nas.config import ExperimentConfig
from nnabla_nas.errors import ConfigError
from nnabla_nas.genotype import Genotype
from nnabla_nas.trials import SearchSpace, TrainEvaluator
from nnabla_nas.trials.record import TrialRequest

from .tiny_mnist import trials_config, write_tiny_mnist


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_tiny_mnist(tmp_path_factory.mktemp("mnist"))


def _evaluator(data_dir, tmp_path, **network):
    raw = trials_config(data_dir, trial_epochs=1)
    raw["network"].update(network)
    cfg = ExperimentConfig.from_dict(raw)
    evaluator = cfg.trials.evaluator.build(_setting(cfg))
    evaluator.use_output(tmp_path)
    return cfg, evaluator


def _network(data_dir, **keys) -> dict:
    """The space's keys of the tiny experiment (for ``nas.create_space``)."""
    network = {**trials_config(data_dir)["network"], "in_channels": 1, **keys}
    del network["search_space"]
    return network


def _weights(path) -> dict[str, np.ndarray]:
    nn.clear_parameters()
    nn.load_parameters(str(path))
    out = {k: v.d.copy() for k, v in nn.get_parameters(grad_only=False).items()}
    nn.clear_parameters()
    return out


def test_a_trial_is_the_direct_trainer_run_of_its_architecture_and_seed(data_dir, tmp_path):
    cfg, evaluator = _evaluator(data_dir, tmp_path / "exp")
    model = nas.create_space("mobilenet", **_network(data_dir))
    space = SearchSpace.from_model(model, "mobilenet")
    nn.clear_parameters()
    arch = {label: len(names) - 1 for label, names in space.choices.items()}
    genotype = space.genotype(arch)
    assert len(set(genotype.values())) == 2  # MB3 5x5 and a skip
    request = TrialRequest(3, arch, genotype, seed=1234)
    scores = evaluator.evaluate(request, evaluator.load())

    # the same through the Python API, written out here
    nn.clear_parameters()
    nn.random.seed(1234)
    child = nas.create_space("mobilenet", genotype=Genotype("mobilenet", genotype), seed=1234,
                             **_network(data_dir))  # fmt: skip
    data = nas.make_loaders("mnist", True, data_dir=str(data_dir), input_shape=(1, 14, 14),
                            batch_size_train=20, mini_batch_train=20, batch_size_valid=100,
                            mini_batch_valid=100, train_portion=0.5, seed=cfg.seed)  # fmt: skip
    loop = nas.LoopOptions(epochs=1, input_shape=(1, 14, 14), print_frequency=5,
                           mini_batch_train=20, mini_batch_valid=100)  # fmt: skip
    optimizers = trials_config(data_dir)["optimizer"]
    direct = nas.Trainer(child, data, tmp_path / "direct", loop=loop, optimizers=optimizers,
                         seed=1234).run()  # fmt: skip
    nn.clear_parameters()

    folder = tmp_path / "exp" / "trials" / "0003"
    assert scores["valid_acc"] == 1.0 - direct["best"]["valid_error"]
    assert scores["valid_loss"] == direct["best"]["valid_loss"]
    assert scores["params"] == direct["num_parameters"] and scores["epochs"] == 1
    mine, theirs = _weights(folder / "weights.h5"), _weights(tmp_path / "direct" / "weights.h5")
    assert mine.keys() == theirs.keys() and all(np.array_equal(mine[k], theirs[k]) for k in mine)
    trial = json.loads((folder / "trial.json").read_text())
    assert trial["seed"] == 1234 and trial["genotype"] == genotype and trial["attempt"] == 1
    assert not (folder / "checkpoint").exists()  # removed once the trial is done

    # a finished trial (a retry, a resumed driver) is read back, not trained again
    (folder / "log.txt").unlink()
    assert evaluator.evaluate(request, None) == scores and not (folder / "log.txt").exists()
    # its test figures are reported at the end
    report = evaluator.report(type("Best", (), {"trial": 3})())
    assert report["test_error"] == direct["best"]["test_error"]


def test_bad_evaluator_input_names_the_key(data_dir, tmp_path):
    cfg, evaluator = _evaluator(data_dir, tmp_path, num_classes=5)
    model = nas.create_space("mobilenet", **_network(data_dir, num_classes=5))
    space = SearchSpace.from_model(model, "mobilenet")
    nn.clear_parameters()
    with pytest.raises(ConfigError) as err:
        evaluator.check(space)
    assert err.value.key == "network.num_classes" and "10 classes" in str(err.value)
    with pytest.raises(ConfigError) as err:
        TrainEvaluator("mobilenet", cfg.network.space, _setting(cfg).data, trial_epochs=0)
    assert err.value.key == "trial_epochs"
    raw = trials_config(data_dir)
    raw["trials"]["evaluator"] = {"name": "train", "trial_epoch": 2}
    with pytest.raises(ConfigError) as err:
        ExperimentConfig.from_dict(raw)
    assert err.value.key == "trials.evaluator.trial_epoch"
    raw["trials"]["evaluator"] = {"name": "supernet"}
    with pytest.raises(ConfigError) as err:
        ExperimentConfig.from_dict(raw)
    assert err.value.key == "trials.evaluator.name"

"""Saving and loading parameters in nnabla's h5 format."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import nnabla as nn
import numpy as np
import pytest

from nnabla_nas.errors import ConfigError
from nnabla_nas.module import read_parameter_file

# Run in this process and in a fresh one, so both build the same architecture.
BUILD = textwrap.dedent(
    """
    import numpy as np
    from nnabla_nas.module import (
        BatchNormalization, Conv, GlobalAvgPool, Linear, MixedOp, Identity, MaxPool, Module,
        Parameter, ReLU, Sequential,
    )

    class Net(Module):
        def __init__(self, seed):
            rng = np.random.RandomState(seed)
            self.stem = Sequential(Conv(3, 4, (3, 3), pad=(1, 1), rng=rng),
                                   BatchNormalization(4, 4), ReLU())
            self.choice = MixedOp([Identity(), MaxPool((3, 3), (1, 1), (1, 1))],
                                  alpha=Parameter((2, 1, 1, 1, 1)))  # declared (ported style)
            self.pool = GlobalAvgPool()
            self.fc = Linear(4, 3, rng=rng)

        def call(self, x):
            return self.fc(self.pool(self.choice(self.stem(x))))

    def build(seed):
        net = Net(seed)
        net.training = False  # BatchNormalization uses the (loaded) running statistics
        return net
    """
)


def _build(seed: int):
    scope: dict = {}
    exec(BUILD, scope)
    return scope["build"](seed)


def _randomise(net, seed: int) -> None:
    rng = np.random.RandomState(seed)
    for p in net.get_parameters().values():
        p.d = rng.randn(*p.shape) * 0.5 + (1.5 if p.shape == (1, 4, 1, 1) else 0)


def _output(net, x: np.ndarray) -> np.ndarray:
    y = net(nn.Variable.from_numpy_array(x))
    y.forward()
    return y.d.copy()


def test_saved_parameters_load_in_a_new_process(tmp_path):
    net = _build(seed=0)
    _randomise(net, seed=1)
    x = np.random.RandomState(2).randn(2, 3, 8, 8).astype(np.float32)
    expected = _output(net, x)
    net.save_parameters(tmp_path / "weights.h5")
    np.save(tmp_path / "x.npy", x)
    script = BUILD + textwrap.dedent(
        f"""
        import nnabla as nn
        net = build(seed=99)
        x = np.load({str(tmp_path / "x.npy")!r})
        before = net(nn.Variable.from_numpy_array(x)); before.forward()
        np.save({str(tmp_path / "fresh.npy")!r}, before.d)
        net.load_parameters({str(tmp_path / "weights.h5")!r})
        y = net(nn.Variable.from_numpy_array(x)); y.forward()
        np.save({str(tmp_path / "y.npy")!r}, y.d)
        """
    )
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert not np.allclose(np.load(tmp_path / "fresh.npy"), expected)  # another init differs
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), expected)


def test_file_opens_with_nnabla_load_parameters(tmp_path):
    net = _build(seed=0)
    _randomise(net, seed=3)
    path = tmp_path / "weights.h5"
    net.save_parameters(path)
    nn.clear_parameters()
    nn.load_parameters(str(path))
    loaded = nn.get_parameters(grad_only=False)
    ours = net.get_parameters()
    assert list(loaded) == list(ours)
    for key, p in ours.items():
        np.testing.assert_array_equal(loaded[key].d, p.d)
        assert loaded[key].need_grad == p.need_grad
    assert not loaded["stem/1/_mean"].need_grad and loaded["choice/alpha"].need_grad
    assert sorted(os.listdir(tmp_path)) == ["weights.h5"]  # no temporary left behind


def test_loads_a_file_written_by_nnabla_save_parameters(tmp_path):
    source = _build(seed=0)
    _randomise(source, seed=4)
    path = str(tmp_path / "nnabla.h5")
    nn.save_parameters(path, source.get_parameters())
    target = _build(seed=5)
    target.load_parameters(path)
    for key, p in target.get_parameters().items():
        np.testing.assert_array_equal(p.d, source.get_parameters()[key].d)


def test_grad_only_and_explicit_params(tmp_path):
    net = _build(seed=0)
    net.save_parameters(tmp_path / "g.h5", grad_only=True)
    keys = list(read_parameter_file(tmp_path / "g.h5"))
    assert keys == list(net.get_parameters(grad_only=True))
    assert "stem/1/_mean" not in keys
    net.save_parameters(tmp_path / "a.h5", params={"choice/alpha": net.choice.alpha})
    with h5py.File(tmp_path / "a.h5", "r") as f:
        assert list(f) == ["choice"] and f["choice/alpha"].attrs["index"] == 0


def test_load_keeps_parameters_absent_from_the_file(tmp_path):
    net = _build(seed=0)
    net.choice.alpha.d = [[[[[1.0]]]], [[[[2.0]]]]]
    net.save_parameters(tmp_path / "alpha.h5", params={"choice/alpha": net.choice.alpha})
    other = _build(seed=1)
    w_before = other.fc._W.d.copy()
    other.load_parameters(tmp_path / "alpha.h5")
    np.testing.assert_array_equal(other.choice.alpha.d.ravel(), [1.0, 2.0])
    np.testing.assert_array_equal(other.fc._W.d, w_before)


def test_set_parameters_refuses_unknown_paths_and_shapes():
    net = _build(seed=0)
    w_before = net.fc._W.d.copy()
    good = {"fc/_W": np.zeros((4, 3))}
    with pytest.raises(ConfigError, match="fc/_X: unknown parameter path"):
        net.set_parameters({**good, "fc/_X": np.zeros(3)})
    with pytest.raises(ConfigError, match=r"fc/_b: shape \(4,\) does not match .*\(3,\)"):
        net.set_parameters({**good, "fc/_b": np.zeros(4)})
    np.testing.assert_array_equal(net.fc._W.d, w_before)  # nothing assigned on error
    net.set_parameters({**good, "fc/_b": nn.Variable.from_numpy_array(np.ones(3))})
    np.testing.assert_array_equal(net.fc._W.d, 0.0)
    np.testing.assert_array_equal(net.fc._b.d, 1.0)


def test_load_refuses_missing_or_foreign_files(tmp_path):
    net = _build(seed=0)
    missing = tmp_path / "nope.h5"
    with pytest.raises(ConfigError, match="nope.h5: parameter file not found"):
        net.load_parameters(missing)
    (tmp_path / "bad.h5").write_text("not h5")
    with pytest.raises(ConfigError, match="bad.h5: not a readable h5"):
        net.load_parameters(tmp_path / "bad.h5")
    other = _build(seed=0)
    other.fc = None
    other.head = _build(seed=0).fc
    other.save_parameters(tmp_path / "other.h5")
    with pytest.raises(ConfigError, match="head/_W: unknown parameter path"):
        net.load_parameters(tmp_path / "other.h5")


def test_failed_save_leaves_the_previous_file(tmp_path):
    net = _build(seed=0)
    path = tmp_path / "weights.h5"
    net.save_parameters(path)
    content = path.read_bytes()
    with pytest.raises(TypeError):
        net.save_parameters(path, params={"x": object()})
    assert path.read_bytes() == content
    assert sorted(os.listdir(tmp_path)) == ["weights.h5"]

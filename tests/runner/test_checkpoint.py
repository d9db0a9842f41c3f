"""Checkpoint files (``runner/checkpoint.py``) and the runner's state hooks, in-process."""

from __future__ import annotations

import json

import nnabla as nn
import numpy as np
import pytest
from searcher_toy import ToySpace, make_searcher

from nnabla_nas.errors import CheckpointError
from nnabla_nas.runner.checkpoint import (
    CheckpointStore,
    decode_state,
    encode_state,
    rng_state,
    set_rng_state,
)


def test_state_encoding_round_trip():
    state = {
        "a": np.arange(6, dtype=np.float32).reshape(2, 3),
        "nested": {"t": 3, "x": [np.int64(4), 2.5, None, "s", (1, np.zeros(2, np.uint32))]},
        "flag": True,
    }
    doc, arrays = encode_state(state)
    json.dumps(doc)  # JSON only
    assert len(arrays) == 2
    back = decode_state(json.loads(json.dumps(doc)), arrays)
    np.testing.assert_array_equal(back["a"], state["a"])
    assert back["a"].dtype == np.float32
    assert back["nested"]["t"] == 3 and back["nested"]["x"][:4] == [4, 2.5, None, "s"]
    np.testing.assert_array_equal(back["nested"]["x"][4][1], np.zeros(2, np.uint32))
    with pytest.raises(TypeError, match="string"):
        encode_state({1: 2})
    with pytest.raises(TypeError, match="cannot store"):
        encode_state({"f": object()})


def test_rng_state_round_trip():
    rng = np.random.RandomState(7)
    rng.randn(3)  # a cached Gaussian too
    state = rng_state(rng)
    expected = [rng.randn(), rng.randint(100), rng.random_sample()]
    doc, arrays = encode_state(state)
    other = np.random.RandomState(0)
    set_rng_state(other, decode_state(json.loads(json.dumps(doc)), arrays))
    assert [other.randn(), other.randint(100), other.random_sample()] == expected


def test_store_keeps_the_previous_checkpoint_until_the_new_one_is_complete(tmp_path):
    store = CheckpointStore(tmp_path / "checkpoint")
    assert store.latest() is None
    params = {"w": np.ones((2, 2), np.float32)}
    first = store.save({"v": 1}, params, {"iteration": 3, "epoch": 1, "step": 0})
    assert first.name == "ckpt-00000003-0001"
    info = store.latest()
    assert info["iteration"] == 3 and info["path"] == str(first)

    # A save that dies after its files but before the pointer: the first stays the latest.
    def die(info):
        raise KeyboardInterrupt

    store._publish = die
    with pytest.raises(KeyboardInterrupt):
        store.save({"v": 2}, {"w": np.zeros((2, 2), np.float32)}, {"iteration": 6})
    del store._publish
    assert store.latest()["name"] == first.name
    state, loaded = store.load()
    assert state == {"v": 1}
    np.testing.assert_array_equal(loaded["w"], params["w"])
    assert (tmp_path / "checkpoint" / "ckpt-00000006-0002").is_dir()  # the unfinished one
    (tmp_path / "checkpoint" / ".latest.json.abc.tmp.json").write_text("{")
    store.cleanup()
    assert sorted(p.name for p in store.folder.iterdir()) == [first.name, "latest.json"]

    second = store.save({"v": 3}, params, {"iteration": 9})
    assert second.name == "ckpt-00000009-0002" and not first.exists()


def test_store_reports_a_broken_checkpoint(tmp_path):
    store = CheckpointStore(tmp_path)
    (tmp_path / "latest.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="cannot read the checkpoint pointer"):
        store.latest()
    (tmp_path / "latest.json").write_text(json.dumps({"name": "ckpt-00000001-0001"}))
    with pytest.raises(CheckpointError, match="not a checkpoint folder"):
        store.latest()
    (tmp_path / "ckpt-00000001-0001").mkdir()
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        store.load()


class _Stop(Exception):
    pass


@pytest.mark.parametrize("estimator", ["gradient", "reinforce"])
def test_state_hooks_resume_a_searcher_exactly(tmp_path, monkeypatch, estimator):
    """A searcher stopped after its first checkpoint, rebuilt and resumed through the Python API
    (``resume()`` then ``run()``), ends as the uninterrupted one: weights, logits, Adam and
    Momentum states, the RNG, the data position and (REINFORCE) the baseline are restored."""

    def searcher(out):
        nn.clear_parameters()
        return make_searcher(ToySpace(0), str(out), estimator=estimator, seed=5, epoch=3)

    def everything(s):
        return {**{k: v.d.copy() for k, v in s.model.get_parameters().items()},
                **{k: v.d.copy() for k, v in s.parameters().items()}}  # fmt: skip

    full = searcher(tmp_path / "full")
    full.run()
    expected = everything(full)
    baseline = full.baseline.value

    stopped = searcher(tmp_path / "stopped")
    loop = stopped.loop()
    save = type(loop).save_checkpoint

    def save_then_stop(self):
        path = save(self)
        raise _Stop(path)

    monkeypatch.setattr(type(loop), "save_checkpoint", save_then_stop)
    with pytest.raises(_Stop):
        stopped.run()
    monkeypatch.undo()
    assert loop.state.epoch == 1
    stopped.rng.randn(5)  # state that must not leak into the resumed run

    resumed = searcher(tmp_path / "stopped")
    assert resumed.resume()
    state = resumed.loop().state
    assert state.epoch == 1 and state.iteration == loop.state.iteration
    assert resumed.baseline.value == stopped.baseline.value
    if estimator == "reinforce":
        assert resumed.baseline.value is not None
    resumed.run()
    got = everything(resumed)
    assert got.keys() == expected.keys() and "choice/alpha" in got
    for k, v in got.items():
        np.testing.assert_array_equal(v, expected[k], err_msg=k)
    assert resumed.baseline.value == baseline
    assert [h["train_loss"] for h in state.history] == [
        h["train_loss"] for h in full.loop().state.history
    ]

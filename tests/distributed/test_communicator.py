"""The communicator seam in one process: picking the backend, the batch split, sharded data."""

from __future__ import annotations

import logging

import nnabla as nn
import numpy as np
import pytest

from nnabla_nas.data import Augment, DataLoader
from nnabla_nas.distributed import (
    SingleProcess,
    check_batch_split,
    launched_world_size,
    make_communicator,
    process_mini_batch,
)
from nnabla_nas.errors import ConfigError
from tests.distributed.scenarios import ArrayData


@pytest.mark.parametrize(
    "environ, size",
    [
        ({}, None),
        ({"OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_RANK": "1"}, 4),  # Open MPI
        ({"PMI_SIZE": "2", "PMI_RANK": "0"}, 2),  # MPICH / Hydra, Intel MPI, Slurm PMI2
        ({"MV2_COMM_WORLD_SIZE": "3"}, 3),  # MVAPICH2
        ({"PMIX_RANK": "0"}, 0),  # PMIx: launched, size unknown until MPI starts
        ({"PMI_SIZE": "1", "PMI_RANK": "0"}, 1),
    ],
)
def test_launched_world_size_reads_the_launchers_variables(environ, size):
    assert launched_world_size(environ) == size


@pytest.mark.parametrize("environ", [{}, {"PMI_SIZE": "1", "PMI_RANK": "0"}])
def test_one_process_gets_the_free_single_process_communicator(environ):
    comm = make_communicator("cpu", environ=environ)
    assert isinstance(comm, SingleProcess)
    assert (comm.rank, comm.size, comm.is_main) == (0, 1, True)


def test_single_process_collectives_are_the_identity():
    comm = SingleProcess()
    p = nn.Variable((3,), need_grad=True)
    p.d = np.array([1.0, 2.0, 3.0])
    p.grad.zero()
    comm.all_reduce_grads([p])
    comm.broadcast_parameters([p])
    comm.average_parameters([p])
    assert p.grad.zeroing  # nothing read, nothing written
    np.testing.assert_array_equal(p.d, [1.0, 2.0, 3.0])
    assert comm.all_reduce(2.5) == 2.5
    np.testing.assert_array_equal(comm.all_reduce(np.array([1, 2]), "sum"), [1.0, 2.0])
    assert comm.all_reduce_dict({"b": 1.0, "a": 2.0}) == {"b": 1.0, "a": 2.0}
    assert comm.all_gather("x") == ["x"] and comm.broadcast({"k": 1}) == {"k": 1}
    assert comm.comm_calls == 0
    with pytest.raises(ValueError, match="unknown reduction 'avg'"):
        comm.all_reduce(1.0, "avg")


def test_batch_split_names_the_keys_and_the_number_of_processes():
    assert check_batch_split(64, 8, 4, "batch_size_train", "mini_batch_train") == 16
    # 24 over 2 processes: 12 each, in mini-batches of 6 (8 does not divide 12): accepted.
    assert check_batch_split(24, 8, 2, "batch_size_train", "mini_batch_train") == 12
    with pytest.raises(ConfigError) as err:
        check_batch_split(25, 8, 2, "batch_size_train", "mini_batch_train")
    text = str(err.value)
    assert err.value.key == "batch_size_train"
    assert "2 processes" in text and "mini_batch_train" in text and "multiple of 2" in text
    assert "(e.g. 24 or 26" in text


# (batch, mini, processes) -> the mini-batch of each process
@pytest.mark.parametrize(
    "batch, mini, size, own",
    [
        (64, 8, 4, 8),  # 16 each: 8 divides it
        (24, 8, 2, 6),  # 12 each: 6 is the largest divisor <= 8
        (16, 16, 2, 8),  # the case: mini_batch_valid * ranks > batch_size_valid
        (32, 16, 1, 16),
        (2 * 97, 50, 2, 1),  # 97 each, a prime: one example at a time
        (2 * 10**6, 999, 2, 800),  # 10**6 each: its divisors up to 999, found in 1000 steps
    ],
)
def test_process_mini_batch_is_the_largest_divisor_of_the_share(batch, mini, size, own):
    assert process_mini_batch(batch, mini, size) == own
    share = batch // size
    assert share % own == 0 and own <= mini
    assert not any(share % d == 0 for d in range(own + 1, min(mini, share) + 1))


def _loader(n, shards, shard, **kw):
    x = np.arange(n, dtype=np.float32).reshape(n, 1, 1, 1)
    return DataLoader(ArrayData(x, np.zeros(n)), None, num_shards=shards, shard=shard, **kw)


def test_shards_of_a_batch_together_are_the_whole_batch():
    whole = [x.ravel() for x, _ in _loader(40, 1, 0, batch_size=8, shuffle=True, seed=3)]
    parts = [[x.ravel() for x, _ in _loader(40, 2, r, batch_size=4, shuffle=True, seed=3)]
             for r in range(2)]  # fmt: skip
    assert len(parts[0]) == len(parts[1]) == len(whole) == 5
    for k, batch in enumerate(whole):
        merged = np.empty(8, np.float32)
        merged[0::2], merged[1::2] = parts[0][k], parts[1][k]  # rank r holds positions r::2
        np.testing.assert_array_equal(merged, batch)


def test_evaluation_shards_use_every_example_once():
    seen = [x.ravel() for r in range(2) for x, _ in _loader(21, 2, r, batch_size=4,
                                                            equal_shards=False)]  # fmt: skip
    np.testing.assert_array_equal(np.sort(np.concatenate(seen)), np.arange(21))
    assert len(_loader(21, 2, 0, batch_size=4, equal_shards=False)) == 3  # 11 examples
    assert len(_loader(21, 2, 0, batch_size=4)) == 3  # 10 examples (truncated to 20)


def test_each_shard_augments_with_its_own_random_stream():
    x = np.tile(np.arange(64, dtype=np.uint8).reshape(1, 1, 8, 8), (8, 1, 1, 1))
    data = ArrayData(x, np.zeros(8))
    aug = Augment(pad=2, crop=(8, 8), mean=(0.0,), std=(1.0,))
    a, b = (next(iter(DataLoader(data, None, 4, transform=aug, num_shards=2, shard=r)))[0]
            for r in range(2))  # fmt: skip
    # the same images on both shards: only the crops can make them differ
    assert not np.array_equal(a, b)


def test_mpirun_without_mpi4py_is_a_config_error(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mpi4py" else real(name, *a)
    )
    with pytest.raises(ConfigError, match=r"pip install 'nnabla_nas\[mpi\]'") as err:
        make_communicator("cpu", environ={"PMI_SIZE": "2", "PMI_RANK": "0"})
    assert "2 processes" in str(err.value)


def test_a_reduced_mini_batch_is_logged(caplog):
    from nnabla_nas.data.bundle import _batch_split

    with caplog.at_level(logging.INFO, logger="nnabla_nas"):
        assert _batch_split(16, 16, 2, "batch_size_valid", "mini_batch_valid") == 8
    assert "batch_size_valid 16 over 2 processes: 8 examples each, in mini-batches of 8" in (
        caplog.text
    )
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="nnabla_nas"):
        _batch_split(32, 8, 2, "batch_size_train", "mini_batch_train")
    assert caplog.text == ""  # nothing changed, nothing said

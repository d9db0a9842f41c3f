"""Two MPI processes against one: the same updates, identical ranks, rank 0 alone writes.

One ``mpirun -n 2`` runs every scenario of :mod:`tests.distributed.scenarios` (each rank on its
shard of every batch); the tests run the same scenarios in this process with the whole batch and
compare. The BN-free runs must agree to float tolerance (the order of the sums differs); the
run with batch normalisation cannot (each process normalises its shard by its own statistics),
so there only the ranks are compared with each other.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from nnabla_nas.distributed import SingleProcess
from tests.distributed import scenarios
from tests.distributed.launch import mpirun

NAMES = list(scenarios.SCENARIOS)
RTOL, ATOL = 2e-5, 2e-6


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """The folder with every rank's outcome of every scenario, run on 2 processes."""
    out = tmp_path_factory.mktemp("mpi2")
    proc = mpirun(2, ["-m", "tests.distributed.mpi_worker", out, *NAMES])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    """name -> the outcome of the scenario in one process (whole batches)."""
    out = tmp_path_factory.mktemp("single")
    return {name: scenarios.run(name, SingleProcess(), out / name) for name in NAMES}


def _ranks(folder, name):
    return [scenarios.load(folder / f"{name}-rank{r}") for r in range(2)]


def test_collectives_compute_the_documented_numbers(two_ranks):
    results = [json.loads((two_ranks / f"collectives-rank{r}.json").read_text()) for r in (0, 1)]
    for r, res in enumerate(results):
        assert (res["rank"], res["size"]) == (r, 2)
        # gradients averaged: (a_0 + a_1) / 2 with a_r = [0, 1, 2] + 10 r
        assert res["a"] == [5.0, 6.0, 7.0]
        assert res["b"] == [[1.5, 1.5], [1.5, 1.5]]
        # zero on every rank: left lazily zero, so solvers keep skipping it
        assert res["untouched_zeroing"] is True
        # computed on one rank only: the others contribute zeros
        assert res["half"] == [2.0, 4.0]
        assert res["broadcast"] == [6.0, 6.0, 6.0]  # root = rank 1 (value 1 + 5)
        assert res["average"] == [0.5, 1.0]
        assert res["mean"] == 1.5 and res["sum"] == [1.0, 2.0] and res["max"] == 1.0
        assert res["dict"] == {"x": 0.5, "y": 2.0}
        assert res["gather"] == [{"rank": 0}, {"rank": 1}]
        assert res["object"] == {"from": 0}


@pytest.mark.parametrize(
    "name", ["trainer", "gradient", "gradient_flops", "reinforce", "darts2", "enas", "random"]
)
def test_two_processes_equal_one_process_with_the_whole_batch(two_ranks, one_process, name):
    ranks = _ranks(two_ranks, name)
    single = one_process[name]
    assert set(ranks[0]["params"]) == set(single["params"])
    moved = False
    for key, value in single["params"].items():
        for rank in ranks:
            np.testing.assert_allclose(rank["params"][key], value, rtol=RTOL, atol=ATOL,
                                       err_msg=f"{name}: {key}")  # fmt: skip
        moved |= not np.allclose(value, single["initial"][key])
    assert moved, "the run changed no parameter: the comparison would prove nothing"
    # metrics (reduced over the ranks) and evaluation (sharded, then summed) as one process
    for rank in ranks:
        for key in ("train_loss", "train_error", "valid_loss", "valid_error", "test_error"):
            assert rank["results"]["final"][key] == pytest.approx(
                single["results"]["final"][key], rel=1e-5, abs=1e-6
            ), key
        assert rank["results"]["steps"] == single["results"]["steps"]


@pytest.mark.parametrize("name", NAMES)
def test_ranks_hold_identical_weights_and_architecture(two_ranks, name):
    first, second = _ranks(two_ranks, name)
    for key, value in first["params"].items():
        np.testing.assert_array_equal(second["params"][key], value, err_msg=f"{name}: {key}")


def test_batch_norm_statistics_are_averaged_and_differ_from_one_process(two_ranks, one_process):
    """Each rank normalises its shard by the shard's statistics (documented): the running
    statistics are averaged over the ranks before evaluating and saving, so the ranks agree,
    but they are not one process's."""
    ranks = _ranks(two_ranks, "trainer_bn")
    single = one_process["trainer_bn"]["params"]
    mean = [k for k in single if k.endswith("_mean")]
    assert mean
    for key in mean:
        np.testing.assert_array_equal(ranks[0]["params"][key], ranks[1]["params"][key])
        assert not np.allclose(ranks[0]["params"][key], 0.0)  # updated by the training step


def _listing(folder):
    # event file names hold the time, host and pid: compared by count
    names = (p.relative_to(folder).as_posix() for p in folder.rglob("*"))
    return sorted("tensorboard/events" if "tfevents" in n else n for n in names)


@pytest.mark.parametrize("name", NAMES)
def test_only_rank_zero_writes_the_outputs(two_ranks, one_process, name):
    """The output folder of 2 processes holds what one process writes: no file twice."""
    files = _listing(two_ranks / name)
    assert files == _listing(one_process[name]["output"])
    assert "results.json" in files and "weights.h5" in files and "config.json" in files
    results = json.loads((two_ranks / name / "results.json").read_text())
    assert results["final"] == _ranks(two_ranks, name)[0]["results"]["final"]


@pytest.mark.parametrize("mode", ["--fail", "--fail-stalled"])
def test_a_failure_on_one_rank_ends_every_process(mode):
    """Rank 1 fails while rank 0 waits for it in a collective: MPI_Abort ends both (no hang),
    and rank 1's message reaches stderr, also when the launcher is stopped while rank 1 writes
    and aborts (--fail-stalled: a loaded machine). Hydra dropped such a message in about one run
    of nine before the abort waited for the launcher to read it (benchmarks/abort_delivery.py;
    tests/utils/test_stdio.py checks that ordering deterministically)."""
    proc = mpirun(2, ["-m", "tests.distributed.mpi_worker", mode], timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "[rank 1] error: rank 1 failed alone" in proc.stderr


@pytest.mark.parametrize("name, key", [("enas", "final_candidates"), ("random", "candidates")])
def test_one_shot_candidates_split_across_the_ranks_are_one_process_records(
    two_ranks, one_process, name, key
):
    """The candidates (and ENAS's controller samples) are split across the ranks and gathered:
    every rank holds every record, the same architectures as one process, the same scores."""
    single = one_process[name]["results"]
    assert len(single[key]) >= 2  # (ENAS: the distinct final samples) both ranks score some
    for rank in _ranks(two_ranks, name):
        records = rank["results"][key]
        assert [r["architecture"] for r in records] == [r["architecture"] for r in single[key]]
        for got, want in zip(records, single[key]):
            assert got["score"] == pytest.approx(want["score"], rel=1e-5)
            assert got["flops_macs"] == want["flops_macs"]
        assert rank["results"]["architecture"] == single["architecture"]
    if name == "enas":
        phases = [r["results"]["controller_phases"] for r in _ranks(two_ranks, name)]
        assert phases[0] == phases[1] and len(phases[0]) == 2

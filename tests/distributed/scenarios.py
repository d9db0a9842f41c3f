"""Runs built the same way by the MPI worker (each rank on its shard) and by the tests (one
process with the whole batch), so that their parameters can be compared.

Every model here is free of batch statistics unless named ``bn``: with batch normalisation in
training mode each process normalises its shard by the shard's own mean and variance, which is
not the whole batch's, so only the BN-free runs can equal one process to float tolerance.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import nnabla as nn
import nnabla.functions as F
import numpy as np

from nnabla_nas.contrib.model import Model
from nnabla_nas.data import DataLoader
from nnabla_nas.distributed import Communicator
from nnabla_nas.estimator import FlopsEstimator
from nnabla_nas.estimator.regularizer import Regularizer
from nnabla_nas.module import BatchNormalization, Conv, GlobalAvgPool, Linear, ReLU
from nnabla_nas.runner import DataBundle, LoopOptions, Trainer
from nnabla_nas.runner.searcher.darts import DartsSearcher, DartsSearcherConfig
from nnabla_nas.runner.searcher.enas import EnasSearcher
from nnabla_nas.runner.searcher.proxyless import ProxylessNasConfig, ProxylessNasSearcher
from nnabla_nas.runner.searcher.random_search import RandomSearcher
from tests.runner.searcher_toy import ToySpace, toy_data

BATCH, MINI = 16, 4  # the global batch; every process takes BATCH / size in passes of MINI


class TinyConvNet(Model):
    """conv 3x3 (1 -> 4) [-> batch norm] -> ReLU -> global average -> linear (4 -> 3)."""

    space_name = "tiny"

    def __init__(self, bn: bool = False, seed: int = 0) -> None:
        rng = np.random.RandomState(seed)
        self.conv = Conv(1, 4, (3, 3), pad=(1, 1), rng=rng)
        self.bn = BatchNormalization(4, 4) if bn else None
        self.relu = ReLU()
        self.pool = GlobalAvgPool()
        self.fc = Linear(4, 3, rng=rng)

    def call(self, x: nn.Variable) -> nn.Variable:
        h = self.conv(x)
        if self.bn is not None:
            h = self.bn(h)
        return self.fc(F.reshape(self.pool(self.relu(h)), (x.shape[0], 4)))


class ArrayData:
    """A dataset (the DataLoader's protocol) over float arrays, returned as they are."""

    in_memory = True

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x = np.asarray(x, np.float32)
        self.labels = np.asarray(y, np.int64).reshape(-1)

    def __len__(self) -> int:
        return len(self.x)

    def get(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.x[indices], self.labels[indices]


def images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` 6x6 one-channel images whose class is the brightest third of the image."""
    rng = np.random.RandomState(seed)
    x = rng.rand(n, 1, 6, 6).astype(np.float32)
    y = np.argmax(np.stack([x[:, 0, :2].sum((1, 2)), x[:, 0, 2:4].sum((1, 2)),
                            x[:, 0, 4:].sum((1, 2))], axis=1), axis=1)  # fmt: skip
    return x, y.astype(np.int64)


def sharded_data(
    train: tuple[np.ndarray, np.ndarray], held_out: tuple[np.ndarray, np.ndarray], comm: Any
) -> DataBundle:
    """The loaders as the CLI builds them for ``comm``: training and architecture batches of
    ``BATCH / size`` from equal shards, evaluation over every example (unequal shards)."""
    size, rank = comm.size, comm.rank
    per = BATCH // size
    shard = {"num_shards": size, "shard": rank}
    return DataBundle(
        train=DataLoader(ArrayData(*train), None, per, shuffle=True, seed=3, drop_last=True,
                         **shard),
        arch=DataLoader(ArrayData(*held_out), None, per, shuffle=True, seed=4, drop_last=True,
                        **shard),
        valid=DataLoader(ArrayData(*held_out), None, per, equal_shards=False, **shard),
        test=DataLoader(ArrayData(*train), None, per, equal_shards=False, **shard),
    )  # fmt: skip


def config(input_shape: list[int], epoch: int = 1) -> dict[str, Any]:
    """The loop's options and the optimizers (keyword arguments of an algorithm)."""
    loop = LoopOptions(epochs=epoch, input_shape=tuple(input_shape), mini_batch_train=MINI,
                       mini_batch_valid=MINI, print_frequency=1000)  # fmt: skip
    optimizers = {
        # clipping on (and active): the global norm must be the averaged gradient's
        "train": {"solver": {"name": "Momentum", "lr": 0.2, "momentum": 0.9},
                  "weight_decay": 1e-3, "grad_clip": 0.5},
        "valid": {"solver": {"name": "Adam", "alpha": 0.05}},
    }  # fmt: skip
    return {"loop": loop, "optimizers": optimizers}


def trainer(comm: Communicator, output: Path, bn: bool = False) -> Any:
    nn.clear_parameters()
    model = TinyConvNet(bn=bn, seed=1)
    # 20 training examples: one step of 16 (the other 4 dropped; on 2 processes shards of 10,
    # one step of 8 each); 21 held out for evaluation (shards of 11 and 10)
    data = sharded_data(images(20, seed=5), images(21, seed=6), comm)
    return Trainer(model, data, output, seed=7 - 1, comm=comm, **config([1, 6, 6]))


def proxyless(comm: Communicator, output: Path, estimator: str, hardware: bool = False) -> Any:
    """ProxylessNAS on the toy space; ``hardware``: with a FLOPs term of type ``mul#log`` (its
    gradient is linear in the loss and in the gate gradient, so averaging the architecture
    gradient at the update is exact)."""
    nn.clear_parameters()
    model = ToySpace(seed=2)
    x, y = toy_data(64, seed=0)
    xa, ya = toy_data(33, seed=1)
    data = sharded_data((x, y.ravel()), (xa, ya.ravel()), comm)
    # 3 samples on 2 processes: one rank evaluates two of them, the other one
    options = ProxylessNasConfig(estimator=estimator, num_samples=3, baseline_decay=0.5)
    regs = {}
    if hardware:
        flops = FlopsEstimator((8,))
        regs["flops"] = Regularizer("flops", flops, bound=50.0, loss_type="mul#log")
    return ProxylessNasSearcher(model, data, output, options=options, seed=11 - 1,
                                regularizers=regs, comm=comm, **config([8], epoch=2))  # fmt: skip


def darts(comm: Communicator, output: Path) -> Any:
    """Second-order DARTS: its virtual step needs the whole batch's weight gradient."""
    nn.clear_parameters()
    model = ToySpace(seed=3)
    x, y = toy_data(32, seed=0)
    xa, ya = toy_data(32, seed=1)
    data = sharded_data((x, y.ravel()), (xa, ya.ravel()), comm)
    options = DartsSearcherConfig(order=2, unrolled_lr=0.1)
    return DartsSearcher(model, data, output, options=options, seed=13 - 1, comm=comm,
                         **config([8]))  # fmt: skip


def one_shot(comm: Communicator, output: Path, name: str) -> Any:
    """ENAS (3 samples per controller update and 3 final samples: split 2 + 1) or random search
    (3 candidates: split 2 + 1) on the toy space, the FLOPs in the reward."""
    nn.clear_parameters()
    model = ToySpace(seed=4)
    x, y = toy_data(64, seed=0)
    xa, ya = toy_data(32, seed=1)
    data = sharded_data((x, y.ravel()), (xa, ya.ravel()), comm)
    regs = {"flops": Regularizer("flops", FlopsEstimator((8,)), bound=50.0, weight=0.5)}
    if name == "enas":
        cls, options = EnasSearcher, {"lstm_size": 8, "controller_steps": 2, "num_samples": 3,
                                      "num_final_samples": 3, "marginal_samples": 4,
                                      "bn_recalibration_batches": 1}  # fmt: skip
    else:
        cls, options = RandomSearcher, {"num_candidates": 3, "bn_recalibration_batches": 1,
                                        "sampling": "fair"}  # fmt: skip
    return cls(model, data, output, options=options, seed=17, regularizers=regs, comm=comm,
               **config([8], epoch=2))  # fmt: skip


SCENARIOS: dict[str, Callable[[Communicator, Path], Any]] = {
    "trainer": lambda comm, out: trainer(comm, out),
    "trainer_bn": lambda comm, out: trainer(comm, out, bn=True),
    "gradient": lambda comm, out: proxyless(comm, out, "gradient"),
    "reinforce": lambda comm, out: proxyless(comm, out, "reinforce"),
    "gradient_flops": lambda comm, out: proxyless(comm, out, "gradient", hardware=True),
    "darts2": darts,
    "enas": lambda comm, out: one_shot(comm, out, "enas"),
    "random": lambda comm, out: one_shot(comm, out, "random"),
}


def run(name: str, comm: Communicator, output: Path) -> dict[str, Any]:
    """Runs scenario ``name`` into ``output``; returns its parameters (before and after) and
    results."""
    runner = SCENARIOS[name](comm, output)
    runner.loop()  # set up (rank 0's network broadcast)

    def everything() -> dict[str, np.ndarray]:
        params = {**runner.model.get_parameters(), **runner.parameters()}
        return {k: np.array(v.d, copy=True) for k, v in params.items()}

    initial = everything()
    results = runner.run()
    params = everything()
    return {"params": params, "results": results, "initial": initial, "output": output}


def save(path: Path, outcome: dict[str, Any]) -> None:
    """Writes a :func:`run` outcome (``path.npz`` and ``path.json``)."""
    np.savez(path.with_suffix(".npz"), **outcome["params"])
    path.with_suffix(".json").write_text(json.dumps(outcome["results"], default=float))


def load(path: Path) -> dict[str, Any]:
    with np.load(path.with_suffix(".npz")) as z:
        params = {k: z[k] for k in z.files}
    return {"params": params, "results": json.loads(path.with_suffix(".json").read_text())}

"""Bring your own search space: a small space written with nnabla_nas.module, searched with
ProxylessNAS on the embedded MNIST digits, then its found architecture retrained -- all from
Python, with the same outputs as the command line.

    python examples/custom_space.py -o log/custom            # about a minute on a CPU

See docs/python_api.rst.
"""

from __future__ import annotations

import argparse
from typing import Any

import nnabla.functions as F
import numpy as np

import nnabla_nas as nas
from nnabla_nas.module import (
    BatchNormalization,
    Conv,
    DwConv,
    GlobalAvgPool,
    Identity,
    Linear,
    MixedOp,
    Module,
    ReLU,
    Sequential,
)


def sep_conv(channels: int, kernel: int, rng: np.random.RandomState) -> Module:
    """Depthwise ``kernel x kernel``, pointwise 1x1, batch norm, ReLU."""
    pad = kernel // 2
    return Sequential(
        DwConv(channels, (kernel, kernel), pad=(pad, pad), with_bias=False, rng=rng),
        Conv(channels, channels, (1, 1), with_bias=False, rng=rng),
        BatchNormalization(channels, 4),
        ReLU(),
    )


class TinySpace(nas.Model):
    """A stem, then ``depth`` blocks each choosing a 3x3 or 5x5 separable convolution or
    nothing (``skip``), then pooling and a classifier. Only the choices are declared: the
    searcher owns the architecture parameters. A space built from a genotype puts the chosen
    candidate at the choice's path (``blocks/<i>``), so a searched architecture retrains as a
    fixed network with the same parameter names."""

    space_name = "tiny_custom"
    NAMES = ["sep3", "sep5", "skip"]

    def __init__(self, channels: int = 8, depth: int = 3, genotype: Any = None,
                 seed: int = 0) -> None:  # fmt: skip
        rng = np.random.RandomState(seed)
        self.stem = Sequential(Conv(1, channels, (3, 3), pad=(1, 1), stride=(2, 2), rng=rng),
                               BatchNormalization(channels, 4), ReLU())  # fmt: skip
        blocks = []
        for i in range(depth):
            ops = [sep_conv(channels, 3, rng), sep_conv(channels, 5, rng), Identity()]
            if genotype is None:
                blocks.append(MixedOp(ops, mode="sample", names=self.NAMES))
            else:  # the fixed network of a searched architecture
                blocks.append(ops[self.NAMES.index(genotype.choices[f"blocks/{i}"])])
        self.blocks = Sequential(*blocks)
        self.pool = GlobalAvgPool()
        self.classifier = Linear(channels, 10, rng=rng)

    def call(self, x):
        h = self.pool(self.blocks(self.stem(x)))
        return self.classifier(F.reshape(h, (x.shape[0], -1)))


def main(output: str, epochs: int = 2, batch: int = 32, limit: int | None = None) -> dict:
    """Searches TinySpace, then retrains its architecture; returns both results."""
    data = nas.make_loaders(
        "mnist",
        search=True,
        input_shape=(1, 28, 28),
        batch_size_train=batch,
        batch_size_valid=100,
        train_portion=0.5,
    )
    if limit is not None:  # fewer steps (tests)
        data.train.indices = data.train.indices[: limit * batch]
    searcher = nas.ProxylessNasSearcher(
        TinySpace(), data, f"{output}/search",
        options={"estimator": "gradient"},
        loop=nas.LoopOptions(epochs=epochs, warmup=1, mini_batch_valid=100),
        optimizers={"train": {"solver": {"name": "Momentum", "lr": 0.05, "momentum": 0.9}},
                    "valid": {"solver": {"name": "Adam", "alpha": 0.01, "beta1": 0.5}}},
    )  # fmt: skip
    searched = searcher.run()
    print("found:", searched["architecture"])

    genotype = nas.load_genotype(f"{output}/search/arch.h5", expected_space="tiny_custom")
    train_data = nas.make_loaders("mnist", search=False, input_shape=(1, 28, 28),
                                  batch_size_train=batch, batch_size_valid=100)  # fmt: skip
    if limit is not None:
        train_data.train.indices = train_data.train.indices[: limit * batch]
    trainer = nas.Trainer(TinySpace(genotype=genotype), train_data, f"{output}/train",
                          loop=nas.LoopOptions(epochs=epochs, mini_batch_valid=100))  # fmt: skip
    trained = trainer.run()
    print(f"retrained: test error {trained['best']['test_error']:.3f}")
    return {"search": searched, "train": trained}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-o", "--output", default="log/custom")
    p.add_argument("--epochs", type=int, default=2)
    args = p.parse_args()
    main(args.output, args.epochs)

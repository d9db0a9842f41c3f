"""A small network with two choices (and repeated layers) for the estimator tests."""

from __future__ import annotations

import json
import sys

import numpy as np

from nnabla_nas.module import (
    Conv,
    GlobalAvgPool,
    Identity,
    Linear,
    MixedOp,
    Module,
    Parameter,
    ReLU,
    Sequential,
)
from nnabla_nas.runner.searcher.logits import ArchLogits

SHAPE = (2, 8, 8)  # one example (C, H, W)


def _logits(n: int) -> Parameter:
    return Parameter((n, 1, 1, 1, 1))


def distribution(model):
    """``label -> softmax(logits)`` (nn.Variables) of a model's decisions, as a searcher hands
    it to the estimators (the toys declare their logits as ``alpha``, so tests can set them)."""
    return ArchLogits(model).distribution()


def argmax(model):
    """``label -> index`` of the largest logit of every decision."""
    return ArchLogits(model).argmax()


class Toy(Module):
    """conv 3x3 2->4, choice A {conv 3x3 4->4, conv 1x1 + ReLU, identity}, choice B {conv 3x3
    4->4, identity}, global pooling, linear 4->3. The two 3x3 4->4 convs are the same layer.
    Its choices declare their logits (``alpha``), as a ported space would."""

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.RandomState(seed)
        self.stem = Conv(2, 4, 3, pad=1, rng=rng)
        self.a = MixedOp(
            [Conv(4, 4, 3, pad=1, rng=rng), Sequential(Conv(4, 4, 1, rng=rng), ReLU()), Identity()],
            names=["conv3", "conv1_relu", "skip"],
            alpha=_logits(3),
        )
        self.b = MixedOp(
            [Conv(4, 4, 3, pad=1, rng=rng), Identity()], names=["conv3", "skip"], alpha=_logits(2)
        )
        self.pool = GlobalAvgPool()
        self.fc = Linear(4, 3, rng=rng)

    def call(self, x):
        return self.fc(self.pool(self.b(self.a(self.stem(x)))))


class Nested(Module):
    """A choice whose first candidate holds a choice of its own."""

    def __init__(self) -> None:
        inner = MixedOp([Conv(4, 4, 3, pad=1), Identity()], names=["conv3", "skip"],
                        alpha=_logits(2))  # fmt: skip
        self.stem = Conv(2, 4, 1)
        self.outer = MixedOp(
            [Sequential(Conv(4, 4, 1), inner), Identity()], names=["inner", "skip"],
            alpha=_logits(2),
        )  # fmt: skip

    def call(self, x):
        return self.outer(self.stem(x))


def layer_ms(layer) -> float:
    """Hand-chosen latencies: 3x3 conv 1.5, 1x1 conv 0.25, ReLU 0.1, pooling 0.05, affine 0.2."""
    if layer.type == "Convolution":
        return 1.5 if layer.inputs[1][-1] == 3 else 0.25
    return {"ReLU": 0.1, "GlobalAveragePooling": 0.05, "Affine": 0.2}[layer.type]


def write_table(path, layers) -> None:
    """A lookup table file holding ``layer_ms`` of ``layers`` for the current runtime."""
    from nnabla_nas.estimator.latency import FORMAT, runtime_key, section_name

    context, device = runtime_key()
    entries = {layer.key: {"ms": layer_ms(layer), "runs": 1} for layer in layers}
    section = {"context": context, "device": device, "layers": entries}
    data = {"format": FORMAT, "unit": "ms", "runtimes": {section_name(context, device): section}}
    path.write_text(json.dumps(data))


class StubClock:
    """A clock that advances ``step`` seconds per reading and counts its readings."""

    def __init__(self, step: float = 0.002) -> None:
        self.step, self.calls, self.now = step, 0, 0.0

    def __call__(self) -> float:
        self.calls += 1
        self.now += self.step
        return self.now


def no_clock() -> float:
    raise AssertionError("nothing should be measured")


if __name__ == "__main__":  # prints the layer keys of Toy (key stability across processes)
    from nnabla_nas.estimator import trace

    print(json.dumps(sorted(layer.key for layer in trace(Toy(), SHAPE).all_layers())))
    sys.exit(0)

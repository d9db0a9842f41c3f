"""A user-defined module, written as SPEC section 6 shows, trains with an nnabla solver."""

from __future__ import annotations

import nnabla as nn
import nnabla.functions as F
import nnabla.solvers as S
import numpy as np

from nnabla_nas import module as Mo


class TinyNet(Mo.Module):
    # no super().__init__(): assigning the layers registers them
    def __init__(self, rng: np.random.RandomState):
        self.conv = Mo.Conv(1, 4, (3, 3), pad=(1, 1), rng=rng)
        self.bn = Mo.BatchNormalization(4, 4)
        self.choice = Mo.MixedOp(
            [Mo.ReLU(), Mo.LeakyReLU(0.1)],
            names=["relu", "leaky"],
            alpha=Mo.Parameter((2, 1, 1, 1, 1)),
        )  # a ported space's logits
        self.fc = Mo.Linear(4 * 6 * 6, 2, rng=rng)

    def call(self, x):
        return self.fc(self.choice(self.bn(self.conv(x))))


def test_user_module_trains_with_a_solver():
    rng = np.random.RandomState(0)
    x_np = rng.randn(16, 1, 6, 6).astype(np.float32)
    # label: is the top half brighter than the bottom half
    y_np = x_np[:, :, :3].mean(axis=(1, 2, 3)) > x_np[:, :, 3:].mean(axis=(1, 2, 3))
    net = TinyNet(rng)
    x = nn.Variable.from_numpy_array(x_np)
    t = nn.Variable.from_numpy_array(y_np.astype(np.int32).reshape(-1, 1))
    loss = F.mean(F.softmax_cross_entropy(net(x), t))

    params = net.get_parameters(grad_only=True)
    assert "bn/_mean" not in params and "choice/alpha" in params
    before = {k: p.d.copy() for k, p in params.items()}
    solver = S.Adam(alpha=0.01)
    solver.set_parameters(params)
    losses = []
    for _ in range(60):
        loss.forward()
        losses.append(float(loss.d))
        solver.zero_grad()
        loss.backward()
        solver.update()
    assert losses[-1] < 0.5 * losses[0], losses
    assert all(not np.array_equal(before[k], p.d) for k, p in params.items())
    assert not np.array_equal(net.bn._mean.d, 0.0)  # running statistics were updated

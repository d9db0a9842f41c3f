"""Module registration, paths, flags, containers and printing."""

from __future__ import annotations

import nnabla as nn
import numpy as np
import pytest

from nnabla_nas.module import (
    BatchNormalization,
    Conv,
    Identity,
    Linear,
    Module,
    ModuleDict,
    ModuleList,
    Parameter,
    ParameterList,
    ReLU,
    Sequential,
)


class Block(Module):
    def __init__(self, channels: int):
        self.conv = Conv(channels, channels, (3, 3), pad=(1, 1), rng=np.random.RandomState(0))
        self.bn = BatchNormalization(channels, 4)

    def call(self, x):
        return self.bn(self.conv(x))


class Net(Module):
    def __init__(self):
        self.features = Sequential(Block(4), ReLU(), Block(4))
        self.heads = ModuleDict({"main": Linear(4, 2, rng=np.random.RandomState(1))})
        self.scale = Parameter((1,), initializer=np.ones(1))
        self.buffer = nn.Variable((1,))  # a plain Variable is not a parameter

    def call(self, x):
        return self.heads["main"](self.features(x))


# a module's own parameters come before its children's
NET_PATHS = [
    "scale",
    "features/0/conv/_W",
    "features/0/conv/_b",
    "features/0/bn/_beta",
    "features/0/bn/_gamma",
    "features/0/bn/_mean",
    "features/0/bn/_var",
    "features/2/conv/_W",
    "features/2/conv/_b",
    "features/2/bn/_beta",
    "features/2/bn/_gamma",
    "features/2/bn/_mean",
    "features/2/bn/_var",
    "heads/main/_W",
    "heads/main/_b",
]


def test_parameter_paths_are_slash_joined_attribute_names():
    net = Net()
    params = net.get_parameters()
    assert list(params) == NET_PATHS
    assert params["features/2/conv/_W"] is net.features[2].conv._W
    assert params["scale"] is net.scale
    assert all(isinstance(p, Parameter) for p in params.values())


def test_get_modules_depth_first_from_self():
    net = Net()
    paths = [path for path, _ in net.get_modules()]
    assert paths == [
        "",
        "features",
        "features/0",
        "features/0/conv",
        "features/0/bn",
        "features/1",
        "features/2",
        "features/2/conv",
        "features/2/bn",
        "heads",
        "heads/main",
    ]
    modules = dict(net.get_modules())
    assert modules[""] is net and modules["features/2/bn"] is net.features[2].bn
    assert [p for p, _ in net.features.get_modules("x")][:2] == ["x", "x/0"]


def test_grad_only_keeps_need_grad_parameters():
    net = Net()
    net.scale.need_grad = False
    grad = net.get_parameters(grad_only=True)
    assert list(grad) == [
        p for p in NET_PATHS if not p.endswith(("_mean", "_var")) and p != "scale"
    ]


def test_shared_module_and_parameter_are_listed_once_at_first_path():
    shared = Conv(2, 2, 1, rng=np.random.RandomState(0))

    class Twice(Module):
        def __init__(self):
            self.a = shared
            self.b = Sequential(shared, Identity())
            self.w = Parameter((2,))
            self.w_again = self.w

    net = Twice()
    assert [p for p, _ in net.get_modules()] == ["", "a", "b", "b/1"]
    assert list(net.get_parameters()) == ["w", "a/_W", "a/_b"]


def test_reassign_and_delete_update_the_registration():
    net = Net()
    net.heads = Linear(4, 3, rng=np.random.RandomState(0))  # a module replaces a module
    assert [p for p in net.get_parameters() if p.startswith("heads")] == ["heads/_W", "heads/_b"]
    net.heads = None  # a plain value removes the registration
    assert net.heads is None
    assert not any(p.startswith("heads") for p in net.get_parameters())
    assert "heads" not in net.modules
    net.scale = nn.Variable((1,))  # a plain Variable replaces a Parameter
    assert "scale" not in net.get_parameters()
    net.scale = Parameter((3,))
    assert net.get_parameters()["scale"].shape == (3,)
    del net.scale
    assert "scale" not in net.get_parameters()
    with pytest.raises(AttributeError):
        net.scale  # noqa: B018
    del net.features
    assert net.get_parameters() == {}
    assert [p for p, _ in net.get_modules()] == [""]


def test_no_super_init_needed_and_calling_it_keeps_registrations():
    class Late(Module):
        def __init__(self):
            self.fc = Linear(2, 2)
            super().__init__()

    assert list(Late().get_parameters()) == ["fc/_W", "fc/_b"]
    assert Module().get_parameters() == {}
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        Module().missing  # noqa: B018


def test_class_attribute_does_not_shadow_registered_module():
    class WithDefault(Module):
        stem = None

        def __init__(self):
            self.stem = Identity()

    m = WithDefault()
    assert isinstance(m.stem, Identity) and list(m.modules) == ["stem"]


def test_call_must_be_implemented():
    with pytest.raises(NotImplementedError, match="Module does not implement call"):
        Module()(nn.Variable((1,)))


def test_training_propagates_to_children():
    net = Net()
    assert all(m.training for _, m in net.get_modules())
    net.training = False
    assert not any(m.training for _, m in net.get_modules())
    net.features.training = True
    assert net.features[2].bn.training and not net.training and not net.heads.training


def test_need_grad_propagates_to_parameters_but_not_statistics():
    net = Net()
    net.need_grad = False
    assert not net.features[0].need_grad
    assert not any(p.need_grad for p in net.get_parameters().values())
    assert net.get_parameters(grad_only=True) == {}
    net.features.need_grad = True
    grad = net.get_parameters(grad_only=True)
    assert list(grad) == [
        p for p in NET_PATHS if p.startswith("features") and not p.endswith(("_mean", "_var"))
    ]
    assert not net.features[0].bn._mean.need_grad


def test_fixed_layers_are_untouched_by_need_grad():
    conv = Conv(2, 2, 1, fix_parameters=True)
    conv.need_grad = True
    assert not conv._W.need_grad and conv.get_parameters() == {}


def test_apply_sets_attributes_everywhere_and_returns_self():
    net = Net()
    assert net.apply(training=False, tag="x") is net
    assert all(m.tag == "x" and not m.training for _, m in net.get_modules())


def test_module_list_operations():
    a, b, c, d = (Identity() for _ in range(4))
    ml = ModuleList([a, b])
    assert len(ml) == 2 and ml[0] is a and ml[-1] is b and list(ml) == [a, b]
    assert ml.append(c) is ml and ml.extend([d]) is ml
    assert list(ml) == [a, b, c, d]
    sliced = ml[1:3]
    assert type(sliced) is ModuleList and list(sliced) == [b, c]
    ml.insert(0, Linear(1, 1))
    assert list(ml.modules) == ["0", "1", "2", "3", "4"]
    assert list(ml.get_parameters()) == ["0/_W", "0/_b"]
    ml[0] = c
    del ml[1]
    assert list(ml) == [c, b, c, d] and list(ml.modules) == ["0", "1", "2", "3"]
    with pytest.raises(TypeError, match="ModuleList holds Modules only, got int"):
        ml.append(3)
    with pytest.raises(NotImplementedError):
        ml(nn.Variable((1,)))


def test_sequential_chains_and_slices():
    double = Linear(1, 1, w_init=np.full((1, 1), 2.0))
    plus = Linear(1, 1, w_init=np.ones((1, 1)), b_init=np.full((1,), 3.0))
    seq = Sequential(double, plus)
    x = nn.Variable.from_numpy_array(np.array([[5.0]]))
    y = seq(x)
    y.forward()
    assert y.d[0, 0] == pytest.approx(13.0)
    head = seq[:1]
    assert type(head) is Sequential and list(head) == [double]
    assert list(Sequential([double, plus])) == [double, plus]
    assert Sequential()(x) is x


def test_parameter_list_and_module_dict():
    p0, p1 = Parameter((2,)), Parameter((3,), need_grad=False)
    pl = ParameterList([p0])
    pl.append(p1)
    assert len(pl) == 2 and pl[1] is p1 and list(pl) == [p0, p1]
    assert list(pl.get_parameters()) == ["0", "1"]
    assert list(pl.get_parameters(grad_only=True)) == ["0"]
    with pytest.raises(TypeError, match="Parameters only"):
        pl.append(nn.Variable((1,)))

    md = ModuleDict([("x", Identity())])
    md["fc"] = Linear(2, 2)
    assert "fc" in md and len(md) == 2 and md.keys() == ["x", "fc"] and list(md) == ["x", "fc"]
    assert list(md.get_parameters()) == ["fc/_W", "fc/_b"]
    md["call"] = Identity()  # a key never shadows a method
    assert callable(md.call) and md["call"] is not md.call
    del md["x"]
    assert md.keys() == ["fc", "call"]
    with pytest.raises(KeyError, match="without '/'"):
        md["a/b"] = Identity()


def test_parameter_initializers():
    assert np.array_equal(Parameter((2, 2)).d, np.zeros((2, 2)))
    assert np.array_equal(Parameter((2,), initializer=np.array([1.0, 2.0])).d, [1.0, 2.0])
    from nnabla.initializer import UniformInitializer

    p = Parameter((50,), initializer=UniformInitializer((-1, 1), rng=np.random.RandomState(0)))
    expected = np.random.RandomState(0).uniform(-1, 1, size=(50,))
    np.testing.assert_allclose(p.d, expected, rtol=1e-6)
    assert Parameter((1,), need_grad=False).need_grad is False
    assert isinstance(p, nn.Variable)
    with pytest.raises(ValueError, match=r"shape \(3,\), expected \(2,\)"):
        Parameter((2,), initializer=np.zeros(3))
    with pytest.raises(TypeError, match="initializer must be"):
        Parameter((2,), initializer="ones")


def test_repr_is_a_readable_tree():
    net = Sequential(Conv(3, 8, (3, 3), pad=(1, 1), stride=(2, 2)), ReLU(), Linear(8, 2))
    assert repr(net) == (
        "Sequential(\n"
        "  (0): Conv(3, 8, kernel=(3, 3), stride=(2, 2), pad=(1, 1), dilation=(1, 1), group=1, "
        "with_bias=True)\n"
        "  (1): ReLU()\n"
        "  (2): Linear(8, 2, base_axis=1, bias=True)\n"
        ")"
    )
    nested = str(Net())
    assert "  (features): Sequential(\n    (0): Block(\n      (conv): Conv(4, 4," in nested
    assert "BatchNormalization(4, n_dims=4, axes=[1], decay_rate=0.9, eps=1e-05)" in nested

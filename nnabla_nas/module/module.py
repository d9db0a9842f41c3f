"""``Module``: the base of every layer, container, search space and network.

Registration
    Assigning a :class:`Module` or a :class:`~nnabla_nas.module.Parameter` to an attribute
    registers it under the attribute's name; no ``super().__init__()`` is needed (the internal
    registries are created on first use). Any other value (including a plain ``nn.Variable``,
    a list of modules, or ``None``) is an ordinary attribute, and assigning one to a registered
    name removes the registration. ``del module.name`` removes it too.

Paths
    A parameter's path is the ``/``-joined attribute names from the module it is read from,
    e.g. ``features/0/_W``. The layers name their weights ``_W`` and ``_b`` (Conv, DwConv,
    Linear) and ``_beta``, ``_gamma``, ``_mean``, ``_var`` (BatchNormalization); containers
    name their children ``0``, ``1``, ... (lists) or by key (``ModuleDict``); a ``MixedOp``'s
    architecture parameter is ``alpha``. Saved files use the same paths as their keys.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from typing import Any, Iterator, Mapping

import h5py
import nnabla as nn
import numpy as np

from nnabla_nas.errors import ConfigError
from nnabla_nas.module.parameter import Parameter
from nnabla_nas.utils.io import atomic_h5

logger = logging.getLogger(__name__)

_REGISTRIES = ("_modules", "_parameters")


class Module:
    """Base class of all building blocks.

    Subclasses implement :meth:`call`; calling the module calls it::

        class Block(Module):
            def __init__(self, channels):
                self.conv = Conv(channels, channels, (3, 3), pad=(1, 1))
                self.bn = BatchNormalization(channels, 4)

            def call(self, x):
                return F.relu(self.bn(self.conv(x)))

    ``Block(8).get_parameters()`` then has the keys ``conv/_W``, ``conv/_b``, ``bn/_beta``,
    ``bn/_gamma``, ``bn/_mean``, ``bn/_var``. After a call, ``input_shapes`` holds the shapes
    of the inputs it was given (as in the original NNabla NAS, e.g. for a latency table).

    Flags (both default True and propagate to every module below when set):

    - ``training``: layers that behave differently in training read it (BatchNormalization
      uses batch statistics, Dropout drops).
    - ``need_grad``: sets ``need_grad`` of every :class:`Parameter` under the module, the
      ``alpha`` of any ``MixedOp`` included, except statistics that never get a gradient
      (BatchNormalization's ``_mean``/``_var`` stay ``need_grad=False``). Fixed weights
      (``fix_parameters=True``) are not Parameters and are not touched. To freeze only the
      weights or only the architecture, set ``need_grad`` on the parameters returned by
      :func:`~nnabla_nas.module.net_parameters` or :func:`~nnabla_nas.module.arch_parameters`.
    """

    #: Names of a module's own Parameters that are running statistics: they never need a
    #: gradient and ``need_grad`` propagation leaves them at False.
    _stat_parameters: tuple[str, ...] = ()

    def __init__(self) -> None:
        # Optional: subclasses need not call it. It never clears existing registrations.
        for name in _REGISTRIES:
            self.__dict__.setdefault(name, OrderedDict())

    # -- registration ------------------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        # Only called when ordinary lookup fails: creates the registries lazily.
        if name in _REGISTRIES:
            registry: OrderedDict = OrderedDict()
            self.__dict__[name] = registry
            return registry
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __setattr__(self, name: str, value: Any) -> None:
        if value is not None and (
            self._modules.get(name) is value or self._parameters.get(name) is value
        ):
            # Re-assigning the registered object (``self.layers += [...]``) keeps its place.
            object.__setattr__(self, name, value)
            return
        self._unregister(name)
        if isinstance(value, Module):
            self._modules[name] = value
        elif isinstance(value, Parameter):
            self._parameters[name] = value
        # Registered values also live in __dict__ so that class attributes never shadow them.
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        self._unregister(name)
        object.__delattr__(self, name)

    def _unregister(self, name: str) -> None:
        self._modules.pop(name, None)
        self._parameters.pop(name, None)

    @property
    def modules(self) -> OrderedDict[str, Module]:
        """The direct child modules by attribute name (a live view; do not modify)."""
        return self._modules

    @property
    def parameters(self) -> OrderedDict[str, Parameter]:
        """The module's own Parameters by attribute name (a live view; do not modify)."""
        return self._parameters

    # -- traversal ---------------------------------------------------------------------------

    def get_modules(
        self, prefix: str = "", memo: set[int] | None = None
    ) -> Iterator[tuple[str, Module]]:
        """Yields ``(path, module)`` depth-first, starting with ``(prefix, self)``.

        Args:
            prefix: the path of this module (``''`` for the root).
            memo: ``id()`` of the modules already yielded; a module reachable twice (shared)
                is yielded once, at its first path.
        """
        if memo is None:
            memo = set()
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, module in self._modules.items():
            yield from module.get_modules(_join(prefix, name), memo)

    def get_parameters(self, grad_only: bool = False) -> OrderedDict[str, Parameter]:
        """Returns every Parameter under this module by path (see the module docstring).

        The order is that of :meth:`get_modules`, each module's own parameters (in assignment
        order) before its children's. A Parameter reachable by several paths (shared) appears
        once, at its first path in that order.

        Args:
            grad_only: keep only the parameters with ``need_grad=True``.
        """
        params: OrderedDict[str, Parameter] = OrderedDict()
        seen: set[int] = set()
        for prefix, module in self.get_modules():
            for name, param in module._parameters.items():
                if id(param) in seen or (grad_only and not param.need_grad):
                    continue
                seen.add(id(param))
                params[_join(prefix, name)] = param
        return params

    def apply(self, **attrs: Any) -> Module:
        """Sets each attribute on this module and every module below it; returns ``self``.

        Example: ``net.apply(training=False)`` or ``net.apply(mode="max")``.
        """
        for _, module in list(self.get_modules()):
            for name, value in attrs.items():
                setattr(module, name, value)
        return self

    # -- flags -------------------------------------------------------------------------------

    @property
    def training(self) -> bool:
        """Training mode (default True); setting it sets every module below."""
        return self.__dict__.get("_training", True)

    @training.setter
    def training(self, mode: bool) -> None:
        for _, module in self.get_modules():
            module.__dict__["_training"] = bool(mode)

    @property
    def need_grad(self) -> bool:
        """The last ``need_grad`` set on this module (default True); see the class docstring."""
        return self.__dict__.get("_need_grad", True)

    @need_grad.setter
    def need_grad(self, mode: bool) -> None:
        for _, module in self.get_modules():
            module.__dict__["_need_grad"] = bool(mode)
            for name, param in module._parameters.items():
                param.need_grad = bool(mode) and name not in module._stat_parameters

    # -- parameters I/O ----------------------------------------------------------------------

    def set_parameters(self, params: Mapping[str, Any]) -> None:
        """Assigns parameter values by path; paths absent from ``params`` are left as they are.

        Args:
            params: path -> numpy array or ``nn.Variable`` (its ``.d`` is copied).

        Raises:
            ConfigError: a path is not a parameter of this module, or a shape differs (nothing
                is assigned then).
        """
        own = self.get_parameters()
        unknown = [k for k in params if k not in own]
        if unknown:
            raise ConfigError(
                f"unknown parameter path(s) {unknown[:5]}{' ...' if len(unknown) > 5 else ''}; "
                f"this {type(self).__name__} has {list(own)[:8]}"
                f"{' ...' if len(own) > 8 else ''}: the values come from a different network",
                key=unknown[0],
            )
        values = {k: _as_array(v) for k, v in params.items()}
        for key, value in values.items():
            if tuple(value.shape) != tuple(own[key].shape):
                raise ConfigError(
                    f"shape {tuple(value.shape)} does not match the parameter's shape "
                    f"{tuple(own[key].shape)}: the values come from a different network "
                    f"(or another configuration of it)",
                    key=key,
                )
        for key, value in values.items():
            own[key].d = value

    def save_parameters(
        self,
        path: str | os.PathLike,
        params: Mapping[str, nn.Variable] | None = None,
        grad_only: bool = False,
    ) -> None:
        """Saves parameters to an h5 file in nnabla's parameter format, atomically.

        The file is what ``nnabla.save_parameters`` writes (one dataset per path, with the
        attributes ``need_grad`` and ``index``), so ``nnabla.load_parameters`` reads it.

        Args:
            path: the ``.h5`` file.
            params: path -> ``nn.Variable`` (or array) to save; by default
                ``get_parameters(grad_only)``.
            grad_only: with ``params=None``, save only parameters with ``need_grad=True``.
        """
        if params is None:
            params = self.get_parameters(grad_only=grad_only)
        with atomic_h5(path) as hd:  # built in memory: a full disk cannot crash HDF5
            for index, (key, var) in enumerate(params.items()):
                hd[key] = _as_array(var)
                hd[key].attrs["need_grad"] = bool(getattr(var, "need_grad", False))
                hd[key].attrs["index"] = index
        logger.debug("saved %d parameters to %s", len(params), path)

    def load_parameters(self, path: str | os.PathLike) -> None:
        """Loads values saved by :meth:`save_parameters` or ``nnabla.save_parameters``.

        Only values are loaded; each Parameter keeps its own ``need_grad``. Parameters absent
        from the file keep their values.

        Raises:
            ConfigError: the file is missing or unreadable, or does not match this module
                (see :meth:`set_parameters`).
        """
        self.set_parameters(read_parameter_file(path))
        logger.debug("loaded parameters from %s", path)

    # -- forward -----------------------------------------------------------------------------

    def call(self, *inputs: Any) -> Any:
        """The forward computation; subclasses implement it."""
        raise NotImplementedError(f"{type(self).__name__} does not implement call()")

    def __call__(self, *inputs: Any, **kwargs: Any) -> Any:
        self.__dict__["_input_shapes"] = [_shape_of(x) for x in inputs]
        return self.call(*inputs, **kwargs)

    @property
    def input_shapes(self) -> list[tuple[int, ...] | None]:
        """The shapes of the positional inputs of the module's last call, in order (None for
        an input without a shape), e.g. ``[(2, 3, 32, 32)]``.

        Raises:
            RuntimeError: the module has not been called yet.
        """
        shapes = self.__dict__.get("_input_shapes")
        if shapes is None:
            raise RuntimeError(
                f"{type(self).__name__}.input_shapes is set by a call: call the module first"
            )
        return list(shapes)

    # -- printing ----------------------------------------------------------------------------

    def extra_repr(self) -> str:
        """The key arguments shown inside the parentheses by ``repr``; layers override it."""
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        children = [f"({name}): {module!r}" for name, module in self._modules.items()]
        if not children:
            return f"{type(self).__name__}({extra})"
        lines = ([extra] if extra else []) + children
        body = "\n".join("  " + line.replace("\n", "\n  ") for line in lines)
        return f"{type(self).__name__}(\n{body}\n)"

    __str__ = __repr__


def read_parameter_file(path: str | os.PathLike) -> OrderedDict[str, np.ndarray]:
    """Reads an nnabla h5 parameter file into ``path -> array`` in the saved order.

    Raises:
        ConfigError: the file is missing or is not an h5 parameter file.
    """
    if not os.path.isfile(path):
        raise ConfigError("parameter file not found; check the path", key=str(path))
    entries = []
    try:
        with h5py.File(path, "r") as hd:

            def visit(name: str, obj: Any) -> None:
                if isinstance(obj, h5py.Dataset):
                    entries.append((int(obj.attrs.get("index", len(entries))), name, obj[...]))

            hd.visititems(visit)
    except OSError as err:
        raise ConfigError(f"not a readable h5 parameter file ({err})", key=str(path)) from err
    return OrderedDict((name, value) for _, name, value in sorted(entries, key=lambda e: e[0]))


def _join(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name


def _shape_of(value: Any) -> tuple[int, ...] | None:
    shape = getattr(value, "shape", None)
    return tuple(int(d) for d in shape) if shape is not None else None


def _as_array(value: Any) -> np.ndarray:
    return np.asarray(value.d if isinstance(value, nn.Variable) else value)

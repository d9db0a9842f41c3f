"""Containers: ``ModuleList``, ``Sequential``, ``ParameterList``, ``ModuleDict``.

List containers register their items under the names ``'0'``, ``'1'``, ... (renumbered after
an insertion or a deletion), so parameter paths look like ``features/0/_W``. Items are kept in
the registries only (not as attributes), so keys never shadow methods.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable, Iterator, Mapping

from nnabla_nas.module.module import Module
from nnabla_nas.module.parameter import Parameter

logger = logging.getLogger(__name__)


def _check_module(value: Any, where: str) -> Module:
    if not isinstance(value, Module):
        raise TypeError(f"{where} holds Modules only, got {type(value).__name__}")
    return value


class ModuleList(Module):
    """A list of modules: indexing, ``len``, iteration, ``append``, ``extend`` (also
    ``modules += [...]``), ``insert``.

    Slicing returns a new container of the same kind holding the same module objects.
    A ModuleList has no forward of its own (``Sequential`` chains its items).

    Args:
        modules: the initial modules.
    """

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        self._set_items(list(modules) if modules is not None else [])

    def _set_items(self, items: list[Module]) -> None:
        for item in items:
            _check_module(item, type(self).__name__)
        self._modules.clear()
        self._modules.update((str(i), item) for i, item in enumerate(items))

    def _items(self) -> list[Module]:
        return list(self._modules.values())

    def _new_like(self, items: list[Module]) -> ModuleList:
        return ModuleList(items)

    def __getitem__(self, index: int | slice) -> Any:
        items = self._items()
        if isinstance(index, slice):
            return self._new_like(items[index])
        return items[index]

    def __setitem__(self, index: int, module: Module) -> None:
        items = self._items()
        items[index] = module
        self._set_items(items)

    def __delitem__(self, index: int | slice) -> None:
        items = self._items()
        del items[index]
        self._set_items(items)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._items())

    def append(self, module: Module) -> ModuleList:
        """Adds ``module`` at the end; returns ``self``."""
        self._modules[str(len(self))] = _check_module(module, type(self).__name__)
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        """Adds ``modules`` at the end; returns ``self``."""
        for module in modules:
            self.append(module)
        return self

    def __iadd__(self, modules: Iterable[Module]) -> ModuleList:
        # ``self.layers += [...]`` extends in place; the attribute keeps the same container.
        return self.extend(modules)

    def insert(self, index: int, module: Module) -> None:
        """Inserts ``module`` before ``index`` (as ``list.insert``)."""
        items = self._items()
        items.insert(index, module)
        self._set_items(items)


class Sequential(ModuleList):
    """Chains modules: ``Sequential(a, b, c)(x) == c(b(a(x)))``.

    Args:
        *modules: the modules in order (a single list or tuple of modules is accepted too).
    """

    def __init__(self, *modules: Module) -> None:
        if len(modules) == 1 and isinstance(modules[0], (list, tuple)):
            modules = tuple(modules[0])
        super().__init__(modules)

    def _new_like(self, items: list[Module]) -> Sequential:
        return Sequential(*items)

    def call(self, *inputs: Any) -> Any:
        items = self._items()
        if not items:
            return inputs[0] if len(inputs) == 1 else inputs
        out = items[0](*inputs)
        for module in items[1:]:
            out = module(out)
        return out


class ParameterList(Module):
    """A list of :class:`Parameter` registered as ``'0'``, ``'1'``, ...: indexing, ``len``,
    iteration, ``append``, ``extend`` (also ``params += [...]``).

    Args:
        parameters: the initial parameters.
    """

    def __init__(self, parameters: Iterable[Parameter] | None = None) -> None:
        self._set_items(list(parameters) if parameters is not None else [])

    def _set_items(self, items: list[Parameter]) -> None:
        for item in items:
            if not isinstance(item, Parameter):
                raise TypeError(f"ParameterList holds Parameters only, got {type(item).__name__}")
        self._parameters.clear()
        self._parameters.update((str(i), item) for i, item in enumerate(items))

    def __getitem__(self, index: int | slice) -> Any:
        items = list(self._parameters.values())
        return ParameterList(items[index]) if isinstance(index, slice) else items[index]

    def __setitem__(self, index: int, param: Parameter) -> None:
        items = list(self._parameters.values())
        items[index] = param
        self._set_items(items)

    def __len__(self) -> int:
        return len(self._parameters)

    def __iter__(self) -> Iterator[Parameter]:
        return iter(list(self._parameters.values()))

    def append(self, param: Parameter) -> ParameterList:
        """Adds ``param`` at the end; returns ``self``."""
        self._set_items([*self._parameters.values(), param])
        return self

    def extend(self, params: Iterable[Parameter]) -> ParameterList:
        """Adds ``params`` at the end; returns ``self``."""
        self._set_items([*self._parameters.values(), *params])
        return self

    def __iadd__(self, params: Iterable[Parameter]) -> ParameterList:
        return self.extend(params)

    def extra_repr(self) -> str:
        return ", ".join(f"({k}): {p!r}" for k, p in self._parameters.items())


class ModuleDict(Module):
    """An ordered mapping ``str -> Module``; keys become path components.

    Args:
        modules: a mapping or an iterable of ``(key, module)`` pairs.
    """

    def __init__(
        self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]] | None = None
    ) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        if not isinstance(key, str) or not key or "/" in key:
            raise KeyError(f"ModuleDict keys are non-empty str without '/', got {key!r}")
        self._modules[key] = _check_module(module, "ModuleDict")

    def __delitem__(self, key: str) -> None:
        del self._modules[key]

    def __contains__(self, key: object) -> bool:
        return key in self._modules

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._modules))

    def keys(self) -> list[str]:
        """The keys in insertion order."""
        return list(self._modules.keys())

    def values(self) -> list[Module]:
        """The modules in insertion order."""
        return list(self._modules.values())

    def items(self) -> list[tuple[str, Module]]:
        """The ``(key, module)`` pairs in insertion order."""
        return list(self._modules.items())

    def update(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]]) -> None:
        """Adds or replaces entries."""
        pairs = modules.items() if isinstance(modules, Mapping) else modules
        for key, module in pairs:
            self[key] = module

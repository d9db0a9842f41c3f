"""Name registries: one small registry per kind of component (spaces, algorithms, solvers, ...)."""

from __future__ import annotations

from typing import Any, Callable, Iterator

from .errors import ConfigError


class Registry:
    """Maps registry names (and case-insensitive aliases) to objects.

    Args:
        kind: what is registered, used in error messages (e.g. ``"search space"``).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, Any] = {}
        self._lookup: dict[str, str] = {}

    def register(self, name: str, *aliases: str) -> Callable[[Any], Any]:
        """Decorator registering an object under ``name`` (and ``aliases``)."""

        def deco(obj: Any) -> Any:
            self.add(name, obj, *aliases)
            return obj

        return deco

    def add(self, name: str, obj: Any, *aliases: str) -> None:
        """Registers ``obj`` under ``name`` (and ``aliases``)."""
        for key in (name, *aliases):
            low = key.lower()
            if low in self._lookup and self._items[self._lookup[low]] is not obj:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            self._lookup[low] = name
        self._items[name] = obj

    def canonical(self, name: str, key: str | None = None) -> str:
        """The registered name for ``name`` (an alias or another case); ConfigError if unknown."""
        if not isinstance(name, str) or name.lower() not in self._lookup:
            valid = ", ".join(self.names())
            raise ConfigError(f"unknown {self.kind} {name!r}; valid choices: {valid}", key=key)
        return self._lookup[name.lower()]

    def get(self, name: str, key: str | None = None) -> Any:
        """The object registered as ``name``; ConfigError listing valid names if unknown."""
        return self._items[self.canonical(name, key)]

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._lookup

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

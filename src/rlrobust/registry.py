"""Name -> factory registries, used only at the boundaries (CLI, configs, tests).

Inside the library, code calls classes and functions directly; the registries exist so that a
config can say ``model = "lenet5"`` and so that tests can parametrise over every entry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from rlrobust.errors import UnknownNameError

T = TypeVar("T", bound=Callable[..., Any])


class Registry(Generic[T]):
    """A small ordered mapping from names to factories, with helpful errors."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@MODELS.register("lenet5")`` above a factory function or class."""

        def add(factory: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = factory
            return factory

        return add

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
            ) from None

    def create(self, name: str, /, **kwargs: Any) -> Any:
        return self.get(name)(**kwargs)

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


MODELS: Registry = Registry("model")
OBJECTIVES: Registry = Registry("objective")
ATTACKS: Registry = Registry("attack")
DATASETS: Registry = Registry("dataset")

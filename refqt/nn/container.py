"""Containers: ``Sequential`` (a chain) and ``ModuleList`` (an indexable list).

Children are registered under their index, so parameter names read
``"0.weight"``, ``"3.bias"`` -- the same as PyTorch's.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from refqt.nn.module import Module


class ModuleList(Module):
    """A list of sub-modules, registered as ``"0"``, ``"1"``, ...; no ``forward``."""

    def __init__(self, modules: Iterable[Module] = ()):
        super().__init__()
        self._items: list[Module] = []
        for m in modules:
            self.append(m)

    def append(self, module: Module) -> None:
        if not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__}: expected a Module, got {type(module).__name__}")
        setattr(self, str(len(self._items)), module)
        self._items.append(module)

    def __getitem__(self, i: int) -> Module:
        return self._items[i]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._items)


class Sequential(ModuleList):
    """Apply the given modules one after another: ``Sequential(a, b, c)(x) = c(b(a(x)))``."""

    def __init__(self, *modules: Module):
        super().__init__(modules)

    def forward(self, x: Any) -> Any:
        for m in self._items:
            x = m(x)
        return x

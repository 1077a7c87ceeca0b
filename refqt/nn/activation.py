"""Activation and reshaping layers without parameters: ``ReLU``, ``GELU``, ``Tanh``, ``Flatten``."""

from __future__ import annotations

import math

from refqt import ops
from refqt.nn.module import Module
from refqt.tensor import Tensor, as_tensor


class ReLU(Module):
    """``max(x, 0)`` elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        return ops.relu(x)


class GELU(Module):
    """GELU ``x Φ(x)`` elementwise; exact by default, as PyTorch's ``nn.GELU``.

    ``approximate="tanh"`` selects ``½x(1 + tanh(√(2/π)(x + 0.044715x³)))``
    instead; see :func:`refqt.ops.gelu`. ValueError for any other value.
    """

    def __init__(self, approximate: str = "none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x: Tensor) -> Tensor:
        return ops.gelu(x, approximate=self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Tanh(Module):
    """``tanh x`` elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        return ops.tanh(x)


class Flatten(Module):
    """Merge axes ``start_dim`` to the end: (N, C, H, W) -> (N, C·H·W) by default.

    The merged size is the product of the trailing axes, not ``-1``, so an
    empty batch (0, C, H, W) flattens to (0, C·H·W).
    """

    def __init__(self, start_dim: int = 1):
        super().__init__()
        self.start_dim = start_dim

    def forward(self, x: Tensor) -> Tensor:
        x = as_tensor(x)
        return ops.reshape(x, (*x.shape[: self.start_dim], math.prod(x.shape[self.start_dim :])))

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}"

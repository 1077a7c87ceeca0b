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
    """GELU (tanh approximation) elementwise; see :class:`refqt.ops.arith.GELU`."""

    def forward(self, x: Tensor) -> Tensor:
        return ops.gelu(x)


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

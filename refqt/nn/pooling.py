"""Pooling layers over NCHW images: ``MaxPool2d``, ``AvgPool2d``, ``GlobalAvgPool2d``.

Thin wrappers of :mod:`refqt.ops` pooling ops; they hold only their settings.
"""

from __future__ import annotations

from refqt import ops
from refqt.nn.module import Module
from refqt.tensor import Tensor


class MaxPool2d(Module):
    """Maximum over ``kernel_size``² windows: (N, C, H, W) -> (N, C, H', W').

    ``stride`` defaults to ``kernel_size`` (non-overlapping windows).
    """

    def __init__(self, kernel_size: int, stride: int | None = None, padding: int = 0):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding

    def forward(self, x: Tensor) -> Tensor:
        return ops.max_pool2d(x, self.kernel_size, stride=self.stride, padding=self.padding)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2d(Module):
    """Mean over ``kernel_size``² windows: (N, C, H, W) -> (N, C, H', W')."""

    def __init__(self, kernel_size: int, stride: int | None = None, padding: int = 0):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding

    def forward(self, x: Tensor) -> Tensor:
        return ops.avg_pool2d(x, self.kernel_size, stride=self.stride, padding=self.padding)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class GlobalAvgPool2d(Module):
    """Mean over all of H and W: (N, C, H, W) -> (N, C)."""

    def forward(self, x: Tensor) -> Tensor:
        return ops.global_avg_pool2d(x)

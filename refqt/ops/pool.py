"""Pooling over 2-D windows: max, average and global average, with their VJPs.

Shapes: x (N, C, H, W) -> (N, C, Ho, Wo), ``Ho = (H + 2·ph − kh) // sh + 1``;
``stride`` defaults to the kernel size. Written with the array API only: each
of the ``kh·kw`` taps of the window is one strided slice of the padded input
(the same slices as im2col in :mod:`refqt.ops.conv`).

* max:  ``out = max_k tap_k``; ``g`` goes to the *first* tap holding the
  maximum (as in PyTorch), padding is −∞ and must be at most half the kernel.
* avg:  ``out = (1 / kh·kw) Σ_k tap_k`` with zero padding counted in the
  divisor (PyTorch's ``count_include_pad=True``); ``g_x`` gets ``g / (kh·kw)``
  on every tap.
* global average: ``out[n, c] = mean over H, W``; ``g_x = g / (H·W)`` everywhere
  (H·W = 0 is a ValueError).

Where :func:`refqt.backend.device_path` says so, max and average pooling run
as a strided window view, one reduction and col2im (:mod:`refqt.gpu.pool`).
"""

from __future__ import annotations

import math
from typing import Any

from refqt.autodiff import Context, Function
from refqt.backend import device_path, namespace
from refqt.gpu import pool as gpu_pool
from refqt.ops.conv import IntPair, output_size, pad2d, pair, window
from refqt.tensor import Tensor, as_tensor


def _check_pool(op: str, x: Any, kernel: IntPair, stride: IntPair | None, padding: IntPair) -> tuple:
    """Validate a pooling call; return ``(kernel, stride, padding, (Ho, Wo))`` as pairs."""
    kernel = pair(kernel, "kernel_size", op)
    stride = kernel if stride is None else pair(stride, "stride", op)
    padding = pair(padding, "padding", op)
    if x.ndim != 4:
        raise ValueError(f"{op}: expected x of shape (N, C, H, W), got shape {tuple(x.shape)}")
    if not namespace(x).isdtype(x.dtype, "real floating"):
        raise TypeError(f"{op}: expected a floating-point x, got dtype {x.dtype}")
    if min(kernel) < 1 or min(stride) < 1 or min(padding) < 0:
        raise ValueError(
            f"{op}: need kernel_size, stride >= 1 and padding >= 0, got {kernel}, {stride}, {padding}"
        )
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"{op}: padding {padding} must be at most half the kernel {kernel}")
    hp, wp = x.shape[2] + 2 * padding[0], x.shape[3] + 2 * padding[1]
    if kernel[0] > hp or kernel[1] > wp:
        raise ValueError(
            f"{op}: kernel {kernel[0]}×{kernel[1]} is larger than the padded input {hp}×{wp} "
            f"(x shape {tuple(x.shape)}, padding {padding})"
        )
    out_hw = (output_size(x.shape[2], kernel[0], stride[0], padding[0]),
              output_size(x.shape[3], kernel[1], stride[1], padding[1]))  # fmt: skip
    return kernel, stride, padding, out_hw


def _taps(xpad: Any, kernel: tuple[int, int], stride: tuple[int, int], out_hw: tuple[int, int]) -> list[Any]:
    """The ``kh·kw`` strided slices of ``xpad``, each (N, C, Ho, Wo)."""
    return [xpad[window(i, j, stride, out_hw)] for i in range(kernel[0]) for j in range(kernel[1])]


def _scatter_taps(parts: list[Any], x_shape: tuple[int, ...], kernel, stride, padding, out_hw) -> Any:
    """Adjoint of :func:`_taps` followed by cropping the padding: (N, C, Ho, Wo) per tap -> (N, C, H, W)."""
    xp = namespace(parts[0])
    n, c, h, w = x_shape
    (ph, pw), kw = padding, kernel[1]
    gpad = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=parts[0].dtype)
    for k, part in enumerate(parts):
        idx = window(k // kw, k % kw, stride, out_hw)
        gpad[idx] = gpad[idx] + part
    return gpad[:, :, ph : ph + h, pw : pw + w]


class MaxPool2d(Function):
    """out = max over each window;  g_x = g at the first maximum of each window, 0 elsewhere."""

    @staticmethod
    def forward(ctx: Context, x: Any, kernel_size: IntPair, stride: IntPair | None, padding: IntPair) -> Any:
        kernel, stride, padding, out_hw = _check_pool("max_pool2d", x, kernel_size, stride, padding)
        if device_path(x):
            out, which = gpu_pool.max_pool(x, kernel, stride, padding, out_hw)
            ctx.save_for_backward(which, tuple(x.shape), kernel, stride, padding, out_hw)
            return out
        xp = namespace(x)
        taps = xp.stack(_taps(pad2d(x, padding, -math.inf), kernel, stride, out_hw), axis=0)
        which = xp.argmax(taps, axis=0)  # index of the first maximum, (N, C, Ho, Wo)
        ctx.save_for_backward(which, tuple(x.shape), kernel, stride, padding, out_hw)
        return xp.max(taps, axis=0)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        which, x_shape, kernel, stride, padding, out_hw = ctx.saved
        if device_path(g):
            return (gpu_pool.max_pool_grad(g, which, x_shape, kernel, stride, padding),)
        xp = namespace(g)
        zero = xp.zeros((), dtype=g.dtype)
        parts = [xp.where(which == k, g, zero) for k in range(kernel[0] * kernel[1])]
        return (_scatter_taps(parts, x_shape, kernel, stride, padding, out_hw),)


class AvgPool2d(Function):
    """out = (1 / kh·kw) Σ over each window (zero padding counted);  g_x = Σ over windows of g / (kh·kw)."""

    @staticmethod
    def forward(ctx: Context, x: Any, kernel_size: IntPair, stride: IntPair | None, padding: IntPair) -> Any:
        kernel, stride, padding, out_hw = _check_pool("avg_pool2d", x, kernel_size, stride, padding)
        if device_path(x):
            ctx.save_for_backward(tuple(x.shape), kernel, stride, padding, out_hw)
            return gpu_pool.avg_pool(x, kernel, stride, padding, out_hw)
        taps = _taps(pad2d(x, padding), kernel, stride, out_hw)
        total = taps[0]
        for t in taps[1:]:
            total = total + t
        ctx.save_for_backward(tuple(x.shape), kernel, stride, padding, out_hw)
        return total / (kernel[0] * kernel[1])

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        x_shape, kernel, stride, padding, out_hw = ctx.saved
        if device_path(g):
            return (gpu_pool.avg_pool_grad(g, x_shape, kernel, stride, padding),)
        share = g / (kernel[0] * kernel[1])
        return (_scatter_taps([share] * (kernel[0] * kernel[1]), x_shape, kernel, stride, padding, out_hw),)


class GlobalAvgPool2d(Function):
    """out[n, c] = mean_{h,w} x[n, c, h, w];  g_x[n, c, h, w] = g[n, c] / (H·W)."""

    @staticmethod
    def forward(ctx: Context, x: Any) -> Any:
        if x.ndim != 4:
            raise ValueError(
                f"global_avg_pool2d: expected x of shape (N, C, H, W), got shape {tuple(x.shape)}"
            )
        xp = namespace(x)
        if not xp.isdtype(x.dtype, "real floating"):
            raise TypeError(f"global_avg_pool2d: expected a floating-point x, got dtype {x.dtype}")
        if x.shape[2] * x.shape[3] == 0:
            raise ValueError(
                f"global_avg_pool2d: cannot average over 0 pixels (x {tuple(x.shape)}, axes (2, 3))"
            )
        ctx.save_for_backward(tuple(x.shape))
        return xp.mean(x, axis=(2, 3))

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        (x_shape,) = ctx.saved
        xp = namespace(g)
        share = xp.reshape(g / (x_shape[2] * x_shape[3]), (*x_shape[:2], 1, 1))
        return (xp.zeros(x_shape, dtype=g.dtype) + share,)


def max_pool2d(x: Any, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0) -> Tensor:
    """Max over ``kernel_size`` windows: x (N, C, H, W) -> (N, C, Ho, Wo); stride defaults to the kernel."""
    return MaxPool2d.apply(as_tensor(x), kernel_size=kernel_size, stride=stride, padding=padding)


def avg_pool2d(x: Any, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0) -> Tensor:
    """Mean over ``kernel_size`` windows: x (N, C, H, W) -> (N, C, Ho, Wo); stride defaults to the kernel."""
    return AvgPool2d.apply(as_tensor(x), kernel_size=kernel_size, stride=stride, padding=padding)


def global_avg_pool2d(x: Any) -> Tensor:
    """Mean over all pixels: x (N, C, H, W) -> (N, C)."""
    return GlobalAvgPool2d.apply(as_tensor(x))

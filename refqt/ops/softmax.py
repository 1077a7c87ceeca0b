"""Softmax and log-softmax along one axis, computed stably.

Both subtract the maximum along the axis before exponentiating, so no
``exp`` overflows; the shift cancels in the result and does not enter the
VJP. A NaN anywhere along the axis makes the whole slice NaN (as in NumPy,
PyTorch and JAX), and so does a slice that is ``+inf`` or entirely ``-inf``:
such inputs are propagated, never silently repaired. An axis of length 0 has
no distribution to normalise: ValueError.
"""

from __future__ import annotations

from typing import Any

from refqt.autodiff import Context, Function
from refqt.backend import namespace
from refqt.tensor import Tensor, as_tensor


def _shifted(x: Any, axis: int) -> Any:
    """x − max(x) along ``axis`` (the maximum is a constant for the VJP)."""
    xp = namespace(x)
    return x - xp.max(x, axis=axis, keepdims=True)


class Softmax(Function):
    """y = eˣ / Σ eˣ along ``axis``;  g_x = y · (g − Σ(g · y)) along the same axis."""

    @staticmethod
    def forward(ctx: Context, x: Any, axis: int) -> Any:
        xp = namespace(x)
        e = xp.exp(_shifted(x, axis))
        y = e / xp.sum(e, axis=axis, keepdims=True)
        ctx.save_for_backward(y, axis)
        return y

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        y, axis = ctx.saved
        xp = namespace(g)
        return (y * (g - xp.sum(g * y, axis=axis, keepdims=True)),)


class LogSoftmax(Function):
    """out = x − log Σ eˣ along ``axis``;  g_x = g − softmax(x) · Σ g along the same axis."""

    @staticmethod
    def forward(ctx: Context, x: Any, axis: int) -> Any:
        xp = namespace(x)
        z = _shifted(x, axis)
        out = z - xp.log(xp.sum(xp.exp(z), axis=axis, keepdims=True))
        ctx.save_for_backward(out, axis)
        return out

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        out, axis = ctx.saved
        xp = namespace(g)
        return (g - xp.exp(out) * xp.sum(g, axis=axis, keepdims=True),)


def _axis(op: str, x: Tensor, axis: int) -> int:
    """``axis`` as a non-negative int; ValueError if it is out of range or has length 0."""
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"{op}: axis {axis} is out of range for shape {x.shape}")
    if x.shape[axis] == 0:
        raise ValueError(f"{op}: cannot normalise over 0 elements (x {x.shape}, axis {axis})")
    return axis % x.ndim


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """Softmax along ``axis``: positive entries summing to 1 (stable; NaN in, NaN out)."""
    x = as_tensor(x)
    return Softmax.apply(x, axis=_axis("softmax", x, axis))


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """Log of the softmax along ``axis``, without forming the softmax first (stable)."""
    x = as_tensor(x)
    return LogSoftmax.apply(x, axis=_axis("log_softmax", x, axis))

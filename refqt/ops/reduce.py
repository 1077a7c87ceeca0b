"""Reductions: ``sum``, ``mean``, ``max`` and ``var`` over any set of axes.

Every reduction maps ``x`` of shape ``(d₀, …, dₙ₋₁)`` to the shape without the
reduced axes (or with them kept as size 1, ``keepdims=True``). Its VJP first
puts the reduced axes back as size 1 and then broadcasts ``g`` over them
(:func:`expand_to`): each input element receives the cotangent of the output
element it was reduced into, times the local derivative.

A mean or maximum over 0 elements has no value: ValueError naming the op, the
shape and the axis (a sum over 0 elements is 0; an empty *result*, such as
the mean over axis 1 of a (0, 3) array, is fine).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from refqt.autodiff import Context, Function
from refqt.backend import namespace
from refqt.tensor import Tensor, as_tensor

Axis = int | tuple[int, ...] | None


def normalize_axes(op: str, axis: Axis, ndim: int) -> tuple[int, ...]:
    """``axis`` as a sorted tuple of non-negative axes of an ``ndim``-array.

    ``None`` means every axis. Raises ``TypeError`` naming ``op`` for an axis
    that is not None, an int or a tuple of ints, and ``ValueError`` for an
    axis out of range or given twice.
    """
    if axis is None:
        return tuple(range(ndim))
    axes = axis if isinstance(axis, tuple) else (axis,)
    out = []
    for a in axes:
        if type(a) is not int and not is_int(a):  # the exact-type test first keeps the common case fast
            raise TypeError(f"{op}: axis must be None, an int or a tuple of ints, got {axis!r}")
        if not -ndim <= a < ndim:
            raise ValueError(f"{op}: axis {a} is out of range for an array with {ndim} dimensions")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: repeated axis in {axis}")
    return tuple(sorted(out))


def is_int(value: Any) -> bool:
    """Whether ``value`` is a Python or NumPy integer (``True``/``False`` are not)."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def check_not_empty(op: str, what: str, x: Tensor, axis: Axis, axes: tuple[int, ...]) -> None:
    """ValueError naming ``op`` if ``axes`` of ``x`` hold no elements (``what``: e.g. "average over").

    Only reached when ``x`` is empty: callers guard it with ``x.data.size == 0``
    so a non-empty input pays one int comparison.
    """
    if _count(x.shape, axes) == 0:
        raise ValueError(f"{op}: cannot {what} 0 elements (x {x.shape}, axis {axis})")


def kept_shape(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    """``shape`` with the reduced ``axes`` set to 1 (the ``keepdims=True`` shape)."""
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def expand_to(g: Any, axes: tuple[int, ...], shape: tuple[int, ...]) -> Any:
    """Broadcast a reduced cotangent ``g`` back to the input ``shape`` (a fresh array)."""
    xp = namespace(g)
    g = xp.reshape(g, kept_shape(shape, axes))
    return xp.asarray(xp.broadcast_to(g, shape), copy=True)


def _count(shape: tuple[int, ...], axes: tuple[int, ...]) -> int:
    return math.prod(shape[a] for a in axes)


class Sum(Function):
    """out = Σ_axes x;  g_x = g broadcast over the reduced axes."""

    @staticmethod
    def forward(ctx: Context, x: Any, axes: tuple[int, ...], keepdims: bool) -> Any:
        ctx.save_for_backward(tuple(x.shape), axes)
        return namespace(x).sum(x, axis=axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        shape, axes = ctx.saved
        return (expand_to(g, axes, shape),)


class Mean(Function):
    """out = (1/n) Σ_axes x with n the number of reduced elements;  g_x = g / n broadcast."""

    @staticmethod
    def forward(ctx: Context, x: Any, axes: tuple[int, ...], keepdims: bool) -> Any:
        ctx.save_for_backward(tuple(x.shape), axes)
        return namespace(x).mean(x, axis=axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        shape, axes = ctx.saved
        return (expand_to(g, axes, shape) / _count(shape, axes),)


class Max(Function):
    """out = max_axes x;  g_x = g · [x = out] / (number of maxima).

    Where several elements tie for the maximum the gradient is split evenly
    among them (a valid subgradient; it keeps ``max`` and ``-min(-x)``
    symmetric). A NaN input gives a NaN maximum and a zero gradient.
    """

    @staticmethod
    def forward(ctx: Context, x: Any, axes: tuple[int, ...], keepdims: bool) -> Any:
        xp = namespace(x)
        out = xp.max(x, axis=axes, keepdims=True)
        is_max = x == out
        ctx.save_for_backward(is_max, axes)
        return out if keepdims else xp.reshape(out, tuple(n for i, n in enumerate(x.shape) if i not in axes))

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        is_max, axes = ctx.saved
        xp = namespace(g)
        shape = tuple(is_max.shape)
        ties = xp.sum(xp.astype(is_max, g.dtype), axis=axes, keepdims=True)
        share = xp.reshape(g, kept_shape(shape, axes)) / xp.maximum(ties, xp.ones((), dtype=g.dtype))
        return (xp.where(is_max, share, xp.zeros((), dtype=g.dtype)),)


class Var(Function):
    """out = Σ_axes (x − μ)² / (n − correction), μ the mean over the axes.

    g_x = g · 2(x − μ) / (n − correction)  (the path through μ vanishes, as
    Σ(x − μ) = 0).
    """

    @staticmethod
    def forward(ctx: Context, x: Any, axes: tuple[int, ...], keepdims: bool, correction: float) -> Any:
        xp = namespace(x)
        dof = _count(tuple(x.shape), axes) - correction
        if dof <= 0:
            raise ValueError(
                f"var: {_count(tuple(x.shape), axes)} elements along axes {axes} of shape "
                f"{tuple(x.shape)} leave no degrees of freedom for correction={correction}"
            )
        centered = x - xp.mean(x, axis=axes, keepdims=True)
        ctx.save_for_backward(centered, axes, dof)
        return xp.sum(centered * centered, axis=axes, keepdims=keepdims) / dof

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        centered, axes, dof = ctx.saved
        return (expand_to(g, axes, tuple(centered.shape)) * centered * (2 / dof),)


def sum(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Sum over ``axis`` (an int, a tuple of ints, or None for all axes)."""
    x = as_tensor(x)
    return Sum.apply(x, axes=normalize_axes("sum", axis, x.ndim), keepdims=keepdims)


def mean(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Mean over ``axis`` (an int, a tuple of ints, or None for all axes).

    ValueError for a mean over 0 elements (an empty result, e.g. axis 1 of a
    (0, 3) array, is fine).
    """
    x = as_tensor(x)
    axes = normalize_axes("mean", axis, x.ndim)
    if x.data.size == 0:
        check_not_empty("mean", "average over", x, axis, axes)
    return Mean.apply(x, axes=axes, keepdims=keepdims)


def max(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Maximum over ``axis``; tied maxima share the gradient evenly (see :class:`Max`).

    ValueError for a maximum of 0 elements.
    """
    x = as_tensor(x)
    axes = normalize_axes("max", axis, x.ndim)
    if x.data.size == 0:
        check_not_empty("max", "take the maximum of", x, axis, axes)
    return Max.apply(x, axes=axes, keepdims=keepdims)


def var(x: Tensor, axis: Axis = None, keepdims: bool = False, *, correction: float = 1) -> Tensor:
    """Variance over ``axis``, dividing by ``n − correction``.

    ``correction`` is keyword-only and defaults to **1, the sample (unbiased)
    variance, as** ``torch.var`` **does** (NumPy's ``np.var`` defaults to
    ``ddof=0``). Pass ``correction=0`` for the population variance, the one
    batch and layer norm divide by. Where ``n − correction ≤ 0`` (e.g. the
    sample variance of one value) it raises ValueError; PyTorch returns NaN.
    """
    x = as_tensor(x)
    return Var.apply(x, axes=normalize_axes("var", axis, x.ndim), keepdims=keepdims, correction=correction)

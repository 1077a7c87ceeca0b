"""Elementwise ops with broadcasting: arithmetic, exp/log, activations, where.

Each op is a :class:`~refqt.autodiff.Function` whose VJP sits beside its
forward, with the math in the docstring (``g`` is ∂ℓ/∂out). Binary ops follow
NumPy broadcasting; their backward sums ``g`` back to each input's shape
(:func:`unbroadcast`).
"""

from __future__ import annotations

from typing import Any

from refqt.autodiff import Context, Function
from refqt.backend import namespace
from refqt.tensor import Tensor, as_tensor


def unbroadcast(g: Any, shape: tuple[int, ...]) -> Any:
    """Sum ``g`` over the axes that broadcasting added or stretched to reach ``shape``."""
    xp = namespace(g)
    extra = g.ndim - len(shape)
    if extra > 0:
        g = xp.sum(g, axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    if stretched:
        g = xp.sum(g, axis=stretched, keepdims=True)
    return g


def _pair(a: Any, b: Any) -> tuple[Tensor, Tensor]:
    if isinstance(a, Tensor):
        return a, as_tensor(b, like=a)
    b = as_tensor(b)
    return as_tensor(a, like=b), b


def _check_broadcast(op: str, a: Any, b: Any) -> None:
    for n, m in zip(reversed(a.shape), reversed(b.shape), strict=False):
        if n != m and n != 1 and m != 1:
            raise ValueError(f"{op}: shapes {tuple(a.shape)} and {tuple(b.shape)} do not broadcast")


class Add(Function):
    """out = a + b;  g_a = g,  g_b = g (each summed to its input's shape)."""

    @staticmethod
    def forward(ctx: Context, a: Any, b: Any) -> Any:
        _check_broadcast("add", a, b)
        ctx.save_for_backward(tuple(a.shape), tuple(b.shape))
        return a + b

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        sa, sb = ctx.saved
        return unbroadcast(g, sa), unbroadcast(g, sb)


class Sub(Function):
    """out = a − b;  g_a = g,  g_b = −g."""

    @staticmethod
    def forward(ctx: Context, a: Any, b: Any) -> Any:
        _check_broadcast("sub", a, b)
        ctx.save_for_backward(tuple(a.shape), tuple(b.shape))
        return a - b

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        sa, sb = ctx.saved
        return unbroadcast(g, sa), (unbroadcast(-g, sb) if ctx.needs_input_grad[1] else None)


class Mul(Function):
    """out = a · b;  g_a = g · b,  g_b = g · a."""

    @staticmethod
    def forward(ctx: Context, a: Any, b: Any) -> Any:
        _check_broadcast("mul", a, b)
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        a, b = ctx.saved
        ga = unbroadcast(g * b, tuple(a.shape)) if ctx.needs_input_grad[0] else None
        gb = unbroadcast(g * a, tuple(b.shape)) if ctx.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    """out = a / b;  g_a = g / b,  g_b = −g · a / b²."""

    @staticmethod
    def forward(ctx: Context, a: Any, b: Any) -> Any:
        _check_broadcast("div", a, b)
        ctx.save_for_backward(a, b)
        return a / b

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        a, b = ctx.saved
        ga = unbroadcast(g / b, tuple(a.shape)) if ctx.needs_input_grad[0] else None
        gb = unbroadcast(-g * a / (b * b), tuple(b.shape)) if ctx.needs_input_grad[1] else None
        return ga, gb


class Neg(Function):
    """out = −x;  g_x = −g."""

    @staticmethod
    def forward(ctx: Context, x: Any) -> Any:
        return -x

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        return (-g,)


class Pow(Function):
    """out = x^p for a constant real p;  g_x = g · p · x^(p−1)."""

    @staticmethod
    def forward(ctx: Context, x: Any, p: float) -> Any:
        ctx.save_for_backward(x, p)
        return x**p

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        x, p = ctx.saved
        return (g * p * x ** (p - 1),)


class Exp(Function):
    """out = eˣ;  g_x = g · out."""

    @staticmethod
    def forward(ctx: Context, x: Any) -> Any:
        out = namespace(x).exp(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        (out,) = ctx.saved
        return (g * out,)


class Log(Function):
    """out = ln x;  g_x = g / x."""

    @staticmethod
    def forward(ctx: Context, x: Any) -> Any:
        ctx.save_for_backward(x)
        return namespace(x).log(x)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        (x,) = ctx.saved
        return (g / x,)


class Sqrt(Function):
    """out = √x;  g_x = g / (2 out)."""

    @staticmethod
    def forward(ctx: Context, x: Any) -> Any:
        out = namespace(x).sqrt(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        (out,) = ctx.saved
        return (g / (2 * out),)


class Tanh(Function):
    """out = tanh x;  g_x = g · (1 − out²)."""

    @staticmethod
    def forward(ctx: Context, x: Any) -> Any:
        out = namespace(x).tanh(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        (out,) = ctx.saved
        return (g * (1 - out * out),)


class Sigmoid(Function):
    """out = 1 / (1 + e⁻ˣ);  g_x = g · out · (1 − out)."""

    @staticmethod
    def forward(ctx: Context, x: Any) -> Any:
        xp = namespace(x)
        # Stable for large |x|: e^(−|x|) never overflows.
        z = xp.exp(-xp.abs(x))
        out = xp.where(x >= 0, 1 / (1 + z), z / (1 + z))
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        (out,) = ctx.saved
        return (g * out * (1 - out),)


class ReLU(Function):
    """out = max(x, 0);  g_x = g · [x > 0]."""

    @staticmethod
    def forward(ctx: Context, x: Any) -> Any:
        xp = namespace(x)
        mask = x > 0
        ctx.save_for_backward(mask)
        return xp.where(mask, x, xp.zeros((), dtype=x.dtype))

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        (mask,) = ctx.saved
        xp = namespace(g)
        return (xp.where(mask, g, xp.zeros((), dtype=g.dtype)),)


class Where(Function):
    """out = cond ? a : b (cond is a constant boolean array);  g_a = g·cond,  g_b = g·¬cond."""

    @staticmethod
    def forward(ctx: Context, a: Any, b: Any, cond: Any) -> Any:
        _check_broadcast("where", a, b)
        ctx.save_for_backward(cond, tuple(a.shape), tuple(b.shape))
        return namespace(a).where(cond, a, b)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        cond, sa, sb = ctx.saved
        xp = namespace(g)
        zero = xp.zeros((), dtype=g.dtype)
        ga = unbroadcast(xp.where(cond, g, zero), sa) if ctx.needs_input_grad[0] else None
        gb = unbroadcast(xp.where(cond, zero, g), sb) if ctx.needs_input_grad[1] else None
        return ga, gb


def add(a: Any, b: Any) -> Tensor:
    return Add.apply(*_pair(a, b))


def sub(a: Any, b: Any) -> Tensor:
    return Sub.apply(*_pair(a, b))


def mul(a: Any, b: Any) -> Tensor:
    return Mul.apply(*_pair(a, b))


def div(a: Any, b: Any) -> Tensor:
    return Div.apply(*_pair(a, b))


def neg(x: Tensor) -> Tensor:
    return Neg.apply(as_tensor(x))


def pow(x: Tensor, p: float) -> Tensor:
    if isinstance(p, Tensor):
        raise TypeError("pow: the exponent must be a Python number, not a Tensor")
    return Pow.apply(as_tensor(x), p=p)


def exp(x: Tensor) -> Tensor:
    return Exp.apply(as_tensor(x))


def log(x: Tensor) -> Tensor:
    return Log.apply(as_tensor(x))


def sqrt(x: Tensor) -> Tensor:
    return Sqrt.apply(as_tensor(x))


def tanh(x: Tensor) -> Tensor:
    return Tanh.apply(as_tensor(x))


def sigmoid(x: Tensor) -> Tensor:
    return Sigmoid.apply(as_tensor(x))


def relu(x: Tensor) -> Tensor:
    return ReLU.apply(as_tensor(x))


def where(cond: Any, a: Any, b: Any) -> Tensor:
    """Elementwise ``cond ? a : b``; ``cond`` is a boolean array or Tensor (no gradient)."""
    a, b = _pair(a, b)
    return Where.apply(a, b, cond=cond.data if isinstance(cond, Tensor) else cond)

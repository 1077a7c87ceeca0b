"""Matrix products: ``matmul`` (batched, NumPy's 1-D rules) and ``linear``.

For ``out = a @ b`` on matrices the VJPs are ``g_a = g @ bᵀ`` and
``g_b = aᵀ @ g``; batch dimensions that were broadcast are summed back
(:func:`~refqt.ops.arith.unbroadcast`). A 1-D operand is treated as a matrix
with a size-1 axis that the result drops, exactly as NumPy does.
"""

from __future__ import annotations

from typing import Any

from refqt.autodiff import Context, Function
from refqt.backend import namespace
from refqt.ops.arith import unbroadcast
from refqt.tensor import Tensor, as_tensor


def _matmul_shape(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    """Shape of ``a @ b``; ValueError naming matmul and both shapes when they do not fit."""

    def fail(why: str) -> ValueError:
        return ValueError(f"matmul: shapes {a} and {b} do not fit: {why}")

    if len(a) == 0 or len(b) == 0:
        raise fail("both operands need at least one dimension")
    k_a = a[-1]
    k_b, b_axis = (b[-2], "second-to-last") if len(b) >= 2 else (b[0], "only")
    if k_a != k_b:
        raise fail(f"a's last axis has {k_a} entries but b's {b_axis} axis has {k_b}")
    batch_a, batch_b = a[:-2], b[:-2]
    batch = []
    for i in range(1, max(len(batch_a), len(batch_b)) + 1):
        n = batch_a[-i] if i <= len(batch_a) else 1
        m = batch_b[-i] if i <= len(batch_b) else 1
        if n != m and n != 1 and m != 1:
            raise fail(f"batch dimensions {batch_a} and {batch_b} do not broadcast")
        batch.append(n if m == 1 else m)
    rows = (a[-2],) if len(a) >= 2 else ()
    cols = (b[-1],) if len(b) >= 2 else ()
    return (*reversed(batch), *rows, *cols)


class MatMul(Function):
    """out = a @ b  (a (..., m, k), b (..., k, n) -> (..., m, n)).

    g_a = g @ bᵀ,  g_b = aᵀ @ g, each summed over the batch axes it was
    broadcast along. A 1-D ``a`` (k,) acts as (1, k), a 1-D ``b`` (k,) as
    (k, 1); the size-1 axis is put back on ``g`` before the products.
    """

    @staticmethod
    def forward(ctx: Context, a: Any, b: Any) -> Any:
        _matmul_shape(tuple(a.shape), tuple(b.shape))
        ctx.save_for_backward(a, b)
        return namespace(a).matmul(a, b)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        a, b = ctx.saved
        xp = namespace(g)
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        if a.ndim == 1:
            g = xp.expand_dims(g, axis=-2 if b.ndim > 1 else -1)
        if b.ndim == 1:
            g = xp.expand_dims(g, axis=-1)
        ga = gb = None
        if ctx.needs_input_grad[0]:
            ga = xp.reshape(unbroadcast(xp.matmul(g, xp.matrix_transpose(b2)), tuple(a2.shape)), a.shape)
        if ctx.needs_input_grad[1]:
            gb = xp.reshape(unbroadcast(xp.matmul(xp.matrix_transpose(a2), g), tuple(b2.shape)), b.shape)
        return ga, gb


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """``a @ b`` with NumPy's rules: batched over leading axes (broadcast), 1-D operands allowed."""
    a, b = as_tensor(a), as_tensor(b)
    _matmul_shape(a.shape, b.shape)
    return MatMul.apply(a, b)


class Linear(Function):
    """out = x @ wᵀ + b  (x (..., in), w (out, in), b (out,) -> (..., out)).

    g_x = g @ w,  g_w = Σ_rows gᵀ x (all leading axes flattened into rows),
    g_b = Σ_rows g.
    """

    @staticmethod
    def forward(ctx: Context, x: Any, w: Any, *bias: Any) -> Any:
        xp = namespace(x)
        ctx.save_for_backward(x, w)
        out = xp.matmul(x, xp.matrix_transpose(w))
        return out + bias[0] if bias else out

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        x, w = ctx.saved
        xp = namespace(g)
        gx = xp.matmul(g, w) if ctx.needs_input_grad[0] else None
        g_rows = xp.reshape(g, (-1, g.shape[-1]))
        gw = (
            xp.matmul(xp.matrix_transpose(g_rows), xp.reshape(x, (-1, x.shape[-1])))
            if ctx.needs_input_grad[1]
            else None
        )
        grads = (gx, gw)
        if len(ctx.needs_input_grad) == 3:
            grads += (xp.sum(g_rows, axis=0) if ctx.needs_input_grad[2] else None,)
        return grads


def check_linear_dtypes(x: Tensor, w: Tensor, b: Tensor | None) -> None:
    """TypeError naming linear unless x, w (and b) are real floating arrays of one dtype.

    Mixed dtypes would silently promote (a float32 weight would come back from
    an optimiser step as float64), so they are an error: cast explicitly.
    """
    operands = {"x": x, "w": w} if b is None else {"x": x, "w": w, "b": b}
    xp = namespace(w.data)
    floating = all(xp.isdtype(t.dtype, "real floating") for t in operands.values())
    if not floating or len({t.dtype for t in operands.values()}) > 1:
        got = ", ".join(f"{name} {t.shape} {t.dtype}" for name, t in operands.items())
        raise TypeError(f"linear: expected real floating x, w and b of one dtype, got {got}; cast explicitly")


def linear(x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
    """Affine map ``x @ w.T + b``: x (..., in), w (out, in), b (out,) or None -> (..., out).

    x, w and b must share one real floating dtype (TypeError otherwise: no silent promotion).
    """
    x, w = as_tensor(x), as_tensor(w)
    b = None if b is None else as_tensor(b)
    check_linear_dtypes(x, w, b)
    if w.ndim != 2 or x.ndim < 1 or x.shape[-1] != w.shape[1]:
        raise ValueError(
            f"linear: x {x.shape} and w {w.shape} do not fit: expected x (..., in) and w (out, in)"
        )
    if b is None:
        return Linear.apply(x, w)
    if b.shape != (w.shape[0],):
        raise ValueError(f"linear: bias of shape {b.shape}, expected ({w.shape[0]},) for w {w.shape}")
    return Linear.apply(x, w, b)

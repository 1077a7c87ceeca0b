"""The FQT ops: a linear layer and a convolution whose backward is bifurcated.

In fully quantized training the gradient ``G = ∂ℓ/∂out`` of a conv / linear
output is quantized twice, independently (docs/theory/qat-vs-fqt.md):

    ∇X = Q_b(G) W          (input path: the quantizer the paper studies)
    ∇W = Q_w(G)ᵀ X         (weight path: 8 bits, per tensor or per column)
    ∇b = Σ_rows G          (a cheap float reduction, no GEMM)

The forward pass is the float op on already-quantized operands (the STE
quantizers run before these ops), so FQT and QAT share their forward pass
exactly and, by Theorem 1, FQT's gradient is an unbiased estimate of QAT's.

A recipe may re-quantize an operand for one backward GEMM (a linear layer's
``x_wgrad`` / ``w_dgrad``, from :class:`~refqt.fqt.config.QuantConfig`):
then ``∇W = Q_w(G)ᵀ X̃`` and ``∇X = Q_b(G) W̃`` while that path's
quantization is on -- and Theorem 1's premise, that the backward uses the
forward's operands, no longer holds (docs/theory/formats.md).

The quantization itself is delegated to a hook object (``LayerQuantizer`` in
:mod:`refqt.fqt.layer`) through one call, ``hook.bifurcate(g, ...)``, which
returns ``(Q_b(G), Q_w(G))`` -- or ``G`` itself where a path is switched off,
which makes this op's gradients bit-for-bit those of the float op.
"""

from __future__ import annotations

from typing import Any

from refqt.autodiff import Context, Function
from refqt.backend import namespace
from refqt.ops.conv import Conv2d, conv2d_grad_input, conv2d_grad_weight


class QuantLinear(Function):
    """out = x @ wᵀ + b;  g_x = Q_b(g) @ w,  g_w = Q_w(g)ᵀ x,  g_b = Σ_rows g.

    Shapes: x (..., in), w (out, in), b (out,) -> (..., out). For the
    quantizers, ``g`` is seen as rows ``(Π leading, out)``: one row per sample
    (MLP) or per token (transformer).
    """

    @staticmethod
    def forward(
        ctx: Context, x: Any, w: Any, *bias: Any, hook: Any, x_wgrad: Any = None, w_dgrad: Any = None
    ) -> Any:
        xp = namespace(x)
        ctx.save_for_backward(x, w, hook, x_wgrad, w_dgrad)
        out = xp.matmul(x, xp.matrix_transpose(w))
        return out + bias[0] if bias else out

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        x, w, hook, x_wgrad, w_dgrad = ctx.saved
        xp = namespace(g)
        need = ctx.needs_input_grad
        g_in, g_w = hook.bifurcate(g, kind="linear", need_input=need[0], need_weight=need[1])
        if w_dgrad is not None and hook.quantize_input_grad:
            w = w_dgrad
        if x_wgrad is not None and hook.quantize_weight_grad:
            x = x_wgrad
        gx = xp.matmul(g_in, w) if need[0] else None
        gw = None
        if need[1]:
            g_rows = xp.reshape(g_w, (-1, g.shape[-1]))
            gw = xp.matmul(xp.matrix_transpose(g_rows), xp.reshape(x, (-1, x.shape[-1])))
        grads = (gx, gw)
        if len(need) == 3:
            grads += (xp.sum(xp.reshape(g, (-1, g.shape[-1])), axis=0) if need[2] else None,)
        return grads


class QuantConv2d(Function):
    """out = conv(x, w) + b;  g_x = conv_grad_input(Q_b(g), w),  g_w = conv_grad_weight(Q_w(g), x).

    Shapes: x (N, C, H, W), w (F, C, kh, kw), b (F,) -> g (N, F, Ho, Wo); for
    the input-path quantizer ``g`` is seen as rows ``(N, F·Ho·Wo)``, one per
    sample; the weight path's per-column quantizer uses one scale per channel F.
    """

    @staticmethod
    def forward(ctx: Context, x: Any, w: Any, *bias: Any, stride: Any, padding: Any, hook: Any) -> Any:
        out = Conv2d.forward(ctx, x, w, *bias, stride=stride, padding=padding)
        ctx.saved = (*ctx.saved, hook)
        return out

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        x, w, stride, padding, hook = ctx.saved
        need = ctx.needs_input_grad
        g_in, g_w = hook.bifurcate(g, kind="conv", need_input=need[0], need_weight=need[1])
        gx = conv2d_grad_input(g_in, w, tuple(x.shape), stride, padding) if need[0] else None
        gw = conv2d_grad_weight(g_w, x, tuple(w.shape), stride, padding) if need[1] else None
        if len(need) == 2:
            return gx, gw
        return gx, gw, (namespace(g).sum(g, axis=(0, 2, 3)) if need[2] else None)

"""Batch norm and layer norm on the GPU: statistics as reductions, the rest as one fused kernel each way.

The maths is :mod:`refqt.ops.norm`'s (read it for the formulas). There, the
forward is about ten elementwise ops and reductions over the full tensor and
the backward as many; here

* forward: ``μ`` and ``σ²`` (two reductions, ``native.var`` for the biased
  variance), ``r = 1/√(σ² + ε)`` on the small per-channel (per-row) array, then
  :data:`refqt.gpu.fused.NORM_FORWARD` computes ``x̂ = (x − μ) r`` and
  ``out = γ x̂ + β`` in one pass;
* backward: the two sums ``Σ g`` and ``Σ g x̂`` (reductions), then
  :data:`refqt.gpu.fused.NORM_GRAD_INPUT` computes
  ``g_x = scale · (m g − Σ g − x̂ Σ g x̂)`` in one pass, with
  ``scale = γ r / m`` (batch norm) or ``r / D`` and ``g ← g γ`` (layer norm).

Shapes: batch norm x (N, C) or (N, C, H, W), statistics per channel over the
other axes; layer norm x (..., D), statistics per row of the last axis.
**No host synchronisation.**
"""

from __future__ import annotations

from typing import Any

from refqt.backend import backend_of
from refqt.gpu.fused import NORM_FORWARD, NORM_GRAD_INPUT


def normalize(x: Any, axes: tuple[int, ...], gamma: Any, beta: Any, eps: float) -> tuple[Any, ...]:
    """``(out, x̂, μ, σ², r)`` for statistics over ``axes`` (kept as size-1 axes).

    ``gamma`` and ``beta`` must already broadcast against ``x``.
    """
    native = backend_of(x).native
    mu = native.mean(x, axis=axes, keepdims=True)
    var = native.var(x, axis=axes, keepdims=True)  # biased: (1/m) Σ (x − μ)²
    r = 1 / native.sqrt(var + eps)
    xhat, out = NORM_FORWARD(native, x, mu, r, gamma, beta)
    return out, xhat, mu, var, r


def grad_input(g: Any, xhat: Any, scale: Any, axes: tuple[int, ...], m: int) -> tuple[Any, Any, Any]:
    """``(g_x, Σ g, Σ g x̂)`` with ``g_x = scale · (m g − Σ g − x̂ Σ g x̂)``, sums over ``axes`` (kept)."""
    native = backend_of(g).native
    s1 = native.sum(g, axis=axes, keepdims=True)
    s2 = native.sum(g * xhat, axis=axes, keepdims=True)
    return NORM_GRAD_INPUT(native, g, xhat, scale, s1, s2, float(m)), s1, s2

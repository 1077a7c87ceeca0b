"""Gradient draws: many backward passes over one recorded forward pass.

For a fixed batch, FQT's only randomness is the gradient quantizers' noise,
which is drawn in the *backward* pass. So K gradient draws need one forward
pass and K backward passes over the same tape (``retain_graph=True``); this
is what every statistic in :mod:`refqt.stats` builds on.

Gradients are grouped by quantized layer: layer ``l``'s gradient is the
concatenation of its parameters' gradients (weight, then bias), flattened, as
float64 on the host -- the ``∇_Θ^(l)`` of the paper.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from refqt.fqt.transform import gradient_quantization, quantized_layers
from refqt.nn.module import Module
from refqt.tensor import Tensor

LossFn = Callable[[Module, Any], Tensor]


def layer_parameters(model: Module) -> dict[str, list[Tensor]]:
    """``{layer name: [weight, bias]}`` for every quantized layer, in order."""
    groups = {}
    for name, layer in quantized_layers(model):
        groups[name] = [p for p in (layer.weight, layer.bias) if p is not None]
    if not groups:
        raise ValueError("refqt.stats: the model has no quantized layer; call refqt.fqt.quantize first")
    return groups


def _flat_grads(params: list[Tensor]) -> np.ndarray:
    parts = []
    for p in params:
        g = np.zeros(p.shape) if p.grad is None else p.backend.to_numpy(p.grad)
        parts.append(np.asarray(g, dtype=np.float64).reshape(-1))
    return np.concatenate(parts)


def draw_layer_gradients(
    model: Module, loss: Tensor, k: int, free_graph: bool = False
) -> dict[str, np.ndarray]:
    """K gradients of ``loss`` (already computed) per quantized layer: ``{name: (k, P_l)}``.

    Runs ``loss.backward`` K times over the same tape, resetting the
    parameters' gradients before each draw. The quantizers draw fresh noise
    each time; switch them off with
    :func:`refqt.fqt.gradient_quantization` to get the QAT gradient.
    ``free_graph=True`` frees the tape after the last draw.
    """
    if k < 1:
        raise ValueError(f"draw_layer_gradients: k must be ≥ 1, got {k}")
    groups = layer_parameters(model)
    out = {name: np.empty((k, sum(p.size for p in ps))) for name, ps in groups.items()}
    for i in range(k):
        model.zero_grad()
        loss.backward(retain_graph=not (free_graph and i == k - 1))
        for name, ps in groups.items():
            out[name][i] = _flat_grads(ps)
    model.zero_grad()
    return out


def qat_and_fqt_draws(
    model: Module, loss_fn: LossFn, batch: Any, k: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """One forward pass, then the QAT gradient and K FQT draws for ``batch``.

    Returns ``(qat, fqt)``: ``qat[name]`` has shape (P_l,), ``fqt[name]`` (k, P_l).
    The QAT gradient is FQT's backward with every gradient quantizer off,
    which is bit-for-bit QAT's gradient (same forward, same float backward).
    """
    loss = loss_fn(model, batch)
    with gradient_quantization(model, False):
        qat = {name: g[0] for name, g in draw_layer_gradients(model, loss, 1).items()}
    fqt = draw_layer_gradients(model, loss, k, free_graph=True)
    return qat, fqt

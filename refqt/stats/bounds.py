"""Eq. 8 design quantities: each layer's quantizer variance on its own gradient.

Eq. 8 bounds FQT's variance by ``Σ_l ‖γ^(l)‖² · Var[Q(∇_{H^(l)}) | ∇_{H^(l)}]``,
so the quantity a quantizer design controls is its conditional variance
``E‖Q(G) − G‖²`` on the gradient it actually receives. For one batch this
module captures every quantized layer's output gradient G_l (a QAT backward,
no noise) and reports, per layer, the exact conditional variance of the
input-path quantizer Q_b on G_l and the quantizer's bound.
"""

from __future__ import annotations

from typing import Any

from refqt.fqt.layer import gradient_rows
from refqt.fqt.transform import gradient_quantization, quantized_layers
from refqt.nn.module import Module
from refqt.stats.capture import capture_gradients
from refqt.stats.draws import LossFn


def design_quantities(model: Module, loss_fn: LossFn, batch: Any) -> dict[str, dict[str, float]]:
    """Per quantized layer: ``{"conditional_variance", "variance_bound", "rows", "cols"}``.

    Uses each layer's own input-path quantizer on the QAT output gradient of
    ``batch``; layers without one (QAT mode, "none") are left out.
    """
    layers = dict(quantized_layers(model))
    with capture_gradients(model) as captured, gradient_quantization(model, False):
        model.zero_grad()
        loss_fn(model, batch).backward()
        model.zero_grad()
    out = {}
    for name, records in captured.items():
        q = layers[name].fqt.grad_quantizer
        if q is None or not records:
            continue
        record = records[-1]
        rows = gradient_rows(record["grad"], record["kind"])
        out[name] = {
            "conditional_variance": q.conditional_variance(rows),
            "variance_bound": q.variance_bound(rows),
            "rows": int(rows.shape[0]),
            "cols": int(rows.shape[1]),
        }
    return out

"""A Theorem 1 audit of a training recipe: is each gradient path's expectation the QAT gradient?

A layer's backward has two GEMMs (docs/theory/formats.md):

    input path   ∇X = Q_b(G) · W'      (feeds every layer below)
    weight path  ∇W = Q_w(G)ᵀ · X'     (this layer's own parameter gradient)

Theorem 1 holds for a path when its gradient quantizer is unbiased *and*
its other operand is the forward's quantized one (``W' = W_q``,
``X' = X_q``): then ``E[path | batch]`` is QAT's gradient, as backprop is
linear in G. A recipe breaks it by rounding G to nearest, by a clipping
scale rule, or by re-quantizing an operand for the backward
(``QuantConfig.dgrad_weight_format`` / ``wgrad_act_format``).

The audit turns one path on at a time (the other stays float, so QAT's),
draws K gradients for one fixed batch and runs the projected t test of
:mod:`refqt.stats.unbiased` on every quantized layer's parameter gradient:
the weight path shows in the layer's own gradient, the input path in the
gradients of the layers below it. One Bonferroni correction covers both
paths, every layer and every direction: the overall false-alarm rate is at
most ``alpha``. A deterministic rounding (no spread) is rejected unless it
equals QAT to round-off.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from refqt.fqt.transform import gradient_quantization, quantized_layers
from refqt.nn.module import Module
from refqt.stats.draws import LossFn, draw_layer_gradients
from refqt.stats.student import t_quantile_upper
from refqt.stats.unbiased import projected_t_statistics

PATHS = ("input", "weight")


def path_draws(
    model: Module, loss_fn: LossFn, batch: Any, k: int, path: str
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """One forward pass; QAT's gradient and K draws with only ``path`` ("input" / "weight") quantized.

    Returns ``(qat, draws)``: ``qat[name]`` (P_l,), ``draws[name]`` (k, P_l).
    """
    if path not in PATHS:
        raise ValueError(f"path_draws: path must be one of {PATHS}, got {path!r}")
    loss = loss_fn(model, batch)
    with gradient_quantization(model, False):
        qat = {name: g[0] for name, g in draw_layer_gradients(model, loss, 1).items()}
    layers = quantized_layers(model)
    before = [(m.fqt.quantize_input_grad, m.fqt.quantize_weight_grad) for _, m in layers]
    try:
        for _, m in layers:
            m.fqt.quantize_input_grad = path == "input"
            m.fqt.quantize_weight_grad = path == "weight"
        draws = draw_layer_gradients(model, loss, k, free_graph=True)
    finally:
        for (_, m), flags in zip(layers, before, strict=True):
            m.fqt.quantize_input_grad, m.fqt.quantize_weight_grad = flags
    return qat, draws


def recipe_audit(
    model: Module,
    loss_fn: LossFn,
    batch: Any,
    rng: np.random.Generator,
    k: int = 64,
    directions: int = 16,
    alpha: float = 1e-6,
) -> dict[str, Any]:
    """Test ``E[gradient | batch] = QAT gradient`` for each path of an FQT model's recipe.

    Parameters
    ----------
    model : Module
        A model under :func:`refqt.fqt.quantize` in fqt mode (any recipe).
    loss_fn : callable
        ``loss_fn(model, batch) -> scalar Tensor``.
    batch : any
        Held fixed.
    rng : numpy.random.Generator
        Source of the random test directions.
    k, directions, alpha
        Draws per path, directions per layer, overall false-alarm rate.

    Returns
    -------
    dict
        ``{"alpha", "k", "threshold", "paths": {path: {"rejected", "layers":
        {name: {"max_abs_t", "rejected", "relative_bias", "relative_noise"}}}}}``.
        ``relative_bias`` is ``‖mean of the draws − QAT‖ / ‖QAT‖`` and
        ``relative_noise`` its size under H₀ (``√(Σ Var / K) / ‖QAT‖``), so a
        bias well above the noise is a real one.
    """
    results: dict[str, Any] = {}
    n_tests = 0
    per_path = {}
    for path in PATHS:
        per_path[path] = path_draws(model, loss_fn, batch, k, path)
        n_tests += directions * len(per_path[path][0])
    threshold = t_quantile_upper(alpha / (2 * n_tests), k - 1)
    for path, (qat, draws) in per_path.items():
        layers = {}
        for name, ref in qat.items():
            t = projected_t_statistics(draws[name], ref, rng.standard_normal((directions, ref.size)))
            norm = max(float(np.linalg.norm(ref)), 1e-300)
            mean = draws[name].mean(axis=0)
            noise = float(np.sqrt(draws[name].var(axis=0, ddof=1).sum() / k))
            max_t = float(np.max(np.abs(t)))
            layers[name] = {
                "max_abs_t": max_t,
                "rejected": bool(max_t > threshold),
                "relative_bias": float(np.linalg.norm(mean - ref)) / norm,
                "relative_noise": noise / norm,
            }
        results[path] = {"rejected": any(v["rejected"] for v in layers.values()), "layers": layers}
    return {"alpha": alpha, "k": k, "directions": directions, "threshold": threshold, "paths": results}


def format_audit(audit: dict[str, Any]) -> str:
    """The audit as a table: one line per path and layer."""
    lines = [
        f"Theorem 1 audit: K = {audit['k']} draws per path, {audit['directions']} directions per layer, "
        f"overall alpha = {audit['alpha']:g} (|t| threshold {audit['threshold']:.2f})",
        f"{'path':8s}{'layer':12s}{'max |t|':>10s}{'bias/|g|':>11s}{'noise/|g|':>11s}  verdict",
    ]
    for path, entry in audit["paths"].items():
        for name, v in entry["layers"].items():
            verdict = "BIASED" if v["rejected"] else "unbiased (not rejected)"
            t = "inf" if np.isinf(v["max_abs_t"]) else f"{v['max_abs_t']:.1f}"
            lines.append(
                f"{path:8s}{name:12s}{t:>10s}{v['relative_bias']:11.2e}{v['relative_noise']:11.2e}  {verdict}"
            )
    return "\n".join(lines)

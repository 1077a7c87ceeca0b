"""Eq. 7, term by term: which layer's quantizer adds variance to which layer.

By the law of total variance (docs/theory/variance.md), FQT's gradient variance is the
QAT sampling variance plus one term per gradient quantizer:

    Var[∇̂_Θ] = Var[∇_Θ^QAT] + Σ_l E[ Var[ γ^(l)(Q(∇̂_{H^(l)})) | ∇̂_{H^(l)} ] ].

Splitting each term over the receiving layers k gives an L×L matrix
``terms[l, k]``: the variance that layer l's quantizer adds to layer k's
parameter gradient. It is measured by switching on one layer's quantizers at
a time (both its paths) and measuring the quantization variance of every
layer. Back-propagation only flows downwards, so ``terms[l, k] = 0`` for
k > l (later layers, as numbered in the forward pass); the rebuttal reports
that terms decay quickly with l − k.

Check (Eq. 7): for each receiving layer k, Σ_l terms[l, k] equals the
quantization variance with every quantizer on, within Monte-Carlo error.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from refqt.fqt.transform import gradient_quantization, quantized_layers
from refqt.nn.module import Module
from refqt.stats.draws import LossFn, draw_layer_gradients


def variance_terms(model: Module, loss_fn: LossFn, batches: list[Any], k: int = 16) -> dict[str, Any]:
    """The L×L matrix of Eq. 7 terms, and the all-on total to check it against.

    Parameters
    ----------
    model : Module
        An FQT model.
    loss_fn : callable
        ``loss_fn(model, batch) -> scalar Tensor``.
    batches : list
        Batches to average over; each costs one forward pass and
        ``1 + (L + 1) · k`` backward passes.
    k : int
        Quantizer draws per batch and setting.

    Returns
    -------
    dict
        ``layers`` (names, forward order), ``terms`` and ``terms_stderr``
        (L×L arrays, row = quantizer l, column = receiving layer k),
        ``total`` and ``total_stderr`` (length L: every quantizer on),
        ``sum_of_terms`` (length L: column sums of ``terms``).
    """
    names = [name for name, _ in quantized_layers(model)]
    n_layers = len(names)
    if not names:
        raise ValueError("variance_terms: the model has no quantized layer; call refqt.fqt.quantize first")
    # samples[setting][k]: per-draw squared distances; setting l < L is "only l on", L is "all on".
    samples: list[list[list[np.ndarray]]] = [[[] for _ in names] for _ in range(n_layers + 1)]
    for batch in batches:
        loss = loss_fn(model, batch)
        with gradient_quantization(model, False):
            qat = {n: g[0] for n, g in draw_layer_gradients(model, loss, 1).items()}
        for setting in range(n_layers + 1):
            flags = {n: (setting == n_layers or i == setting) for i, n in enumerate(names)}
            with gradient_quantization(model, flags):
                draws = draw_layer_gradients(model, loss, k, free_graph=setting == n_layers)
            for j, n in enumerate(names):
                samples[setting][j].append(np.sum((draws[n] - qat[n]) ** 2, axis=1))

    def mean_se(parts: list[np.ndarray]) -> tuple[float, float]:
        v = np.concatenate(parts)
        return float(v.mean()), float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else float("nan")

    terms = np.zeros((n_layers, n_layers))
    terms_se = np.zeros((n_layers, n_layers))
    for l_ in range(n_layers):
        for j in range(n_layers):
            terms[l_, j], terms_se[l_, j] = mean_se(samples[l_][j])
    total = np.array([mean_se(samples[n_layers][j])[0] for j in range(n_layers)])
    total_se = np.array([mean_se(samples[n_layers][j])[1] for j in range(n_layers)])
    return {
        "layers": names,
        "terms": terms,
        "terms_stderr": terms_se,
        "total": total,
        "total_stderr": total_se,
        "sum_of_terms": terms.sum(axis=0),
    }


def diagonal_share(result: dict[str, Any]) -> float:
    """Share of the total quantization variance explained by the k = l terms."""
    terms = np.asarray(result["terms"])
    return float(np.trace(terms) / terms.sum())

"""Gradient variance, measured the authors' way (their ``debug.py``).

``Var`` of a vector is the **sum** of its element variances, E‖X − EX‖².

* **Sampling variance** -- the spread of QAT gradients over mini-batches
  around their mean (the full-data gradient over those batches):
  ``Σ_b ‖g_b − ḡ‖² / (B − 1)``. This is the noise SGD has anyway.
* **Quantization variance** -- the spread of FQT gradients around the QAT
  gradient *for a fixed batch*, over quantizer draws, averaged over batches:
  ``mean_b mean_k ‖ĝ_bk − g_b‖²``. By Eq. 7 this is what FQT adds.

Both are reported per quantized layer and in total, with standard errors.
Their ratio (quantization / sampling) is what predicts whether low-bit
training breaks.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from refqt.fqt.transform import gradient_quantization
from refqt.nn.module import Module
from refqt.stats.draws import LossFn, draw_layer_gradients, qat_and_fqt_draws


def _summary(values: dict[str, np.ndarray], scale: float = 1.0) -> dict[str, Any]:
    """Mean and standard error of per-draw squared distances, per layer and in total."""
    out: dict[str, Any] = {"layers": {}}
    total = None
    for name, v in values.items():
        v = np.asarray(v, dtype=np.float64) * scale
        out["layers"][name] = {"variance": float(v.mean()), "stderr": float(v.std(ddof=1) / np.sqrt(v.size))}
        total = v if total is None else total + v
    out["total"] = {"variance": float(total.mean()), "stderr": float(total.std(ddof=1) / np.sqrt(total.size))}
    return out


def sampling_variance(model: Module, loss_fn: LossFn, batches: Iterable[Any]) -> dict[str, Any]:
    """Variance of the QAT gradient over ``batches`` (at least 2), per layer and in total.

    Returns ``{"layers": {name: {"variance", "stderr"}}, "total": {...}, "n_batches"}``.
    FQT models are measured with their gradient quantizers switched off.
    """
    grads: dict[str, list[np.ndarray]] = {}
    with gradient_quantization(model, False):
        for batch in batches:
            loss = loss_fn(model, batch)
            for name, g in draw_layer_gradients(model, loss, 1, free_graph=True).items():
                grads.setdefault(name, []).append(g[0])
    n = len(next(iter(grads.values()), []))
    if n < 2:
        raise ValueError(f"sampling_variance: need at least 2 batches, got {n}")
    # ‖g_b − ḡ‖² · B/(B − 1) averages to the unbiased variance estimate.
    sq = {name: np.sum((np.stack(gs) - np.mean(gs, axis=0)) ** 2, axis=1) for name, gs in grads.items()}
    out = _summary(sq, scale=n / (n - 1))
    out["n_batches"] = n
    return out


def quantization_variance(
    model: Module, loss_fn: LossFn, batches: Iterable[Any], k: int = 16
) -> dict[str, Any]:
    """E‖ĝ − g_QAT‖² over ``k`` quantizer draws for each batch, averaged over batches.

    Returns ``{"layers": {name: {"variance", "stderr"}}, "total": {...},
    "n_batches", "k"}``.
    """
    sq: dict[str, list[np.ndarray]] = {}
    n = 0
    for batch in batches:
        qat, fqt = qat_and_fqt_draws(model, loss_fn, batch, k)
        for name in qat:
            sq.setdefault(name, []).append(np.sum((fqt[name] - qat[name]) ** 2, axis=1))
        n += 1
    if n == 0:
        raise ValueError("quantization_variance: no batches given")
    if n * k < 2:
        raise ValueError("quantization_variance: need at least 2 draws in all (k · batches ≥ 2)")
    out = _summary({name: np.concatenate(v) for name, v in sq.items()})
    out["n_batches"] = n
    out["k"] = k
    return out

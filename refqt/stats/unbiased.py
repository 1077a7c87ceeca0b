"""Theorem 1, measured: is FQT's gradient an unbiased estimate of QAT's?

For a fixed batch, draw K FQT gradients ``ĝ₁..ĝ_K`` of each layer and the
QAT gradient ``g`` (same forward pass). Under H₀: E[ĝ | batch] = g.

Single elements make poor test statistics: many are driven by one or two
rounding decisions (a Bernoulli with p near 0 or 1), so their K draws are
often all equal and their sample mean far from normal. The test therefore
looks at the error along J random directions per layer: for a direction v
(standard normal, from the ``rng`` passed in),

    s_k = ⟨v, ĝ_k − g⟩,   t = mean_k s_k / (sd_k s_k / √K),

a weighted sum of many independent rounding errors, hence close to normal,
so t follows Student's t with K − 1 degrees of freedom. With L layers and J
directions each, the test rejects when any |t| exceeds the two-sided
Bonferroni threshold ``t_{K−1}(α / 2LJ)``: the overall false-alarm rate is at
most α.

A direction along which all K draws agree exactly (no noise reaches the
layer, or the quantizer is deterministic) has no spread to test with; there
the draws must equal the QAT gradient to round-off, or the layer is biased
(t = ±inf). This is how a deterministic round-to-nearest quantizer is caught.

Power (the smallest bias it detects). Let a layer's draws have bias
``b = E[ĝ] − g`` and total variance ``V = E‖ĝ − E ĝ‖²`` (its quantization
variance). Along a standard normal direction, ``E s = ⟨v, b⟩ ~ ‖b‖·z`` with
``z ~ N(0, 1)`` and ``Var s ≈ V`` (many independent rounding errors), so t has
non-centrality ``√K·|z|·‖b‖/√V``. The largest of the J values |z| exceeds 1 with
probability ``1 − 0.683^J`` (0.998 for J = 16), and then t passes the threshold
with probability about ½ or more once

    ‖b‖ ≥ threshold · √(V / K).

With the defaults (K = 64, J = 16, α = 1e-6) the threshold is 6.1 for one layer,
6.5 for four, 6.7 for eight. In grid steps: a quantizer that errs by β steps on
every entry of a gradient it hands on unchanged (``p(1 − p) ≤ ¼``, so
``V ≤ P·step²/4`` over P entries) is caught once ``β ≥ threshold/(2√K)``: 0.38 to
0.42 steps with the defaults. (Typically the largest |z| is about 2, so the
real limit is lower: ``tests/test_stats_definitions.py`` rejects 1.2× this bias
for every seed, and measured 20/20 seeds at 1×, 12/20 at ½×.)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from refqt.nn.module import Module
from refqt.stats.draws import LossFn, qat_and_fqt_draws
from refqt.stats.student import t_quantile_upper


def projected_t_statistics(
    draws: np.ndarray, reference: np.ndarray, directions: np.ndarray, rtol: float = 1e-9
) -> np.ndarray:
    """t statistics of ``draws`` (K, P) against ``reference`` (P,) along ``directions`` (J, P).

    Returns (J,) values; see the module docstring for the zero-spread rule
    (round-off allowance ``rtol · ‖v‖ · ‖reference‖``).
    """
    k = draws.shape[0]
    if k < 2:
        raise ValueError(f"projected_t_statistics: need at least 2 draws, got {k}")
    s = (draws - reference) @ directions.T  # (K, J)
    mean = s.mean(axis=0)
    spread = np.ptp(s, axis=0)
    sd = s.std(axis=0, ddof=1)
    tol = rtol * np.linalg.norm(directions, axis=1) * max(float(np.linalg.norm(reference)), 1e-300)
    t = np.zeros(directions.shape[0])
    varying = spread > tol
    t[varying] = mean[varying] / (sd[varying] / np.sqrt(k))
    biased = ~varying & (np.abs(s[0]) > tol)
    t[biased] = np.copysign(np.inf, s[0][biased])
    return t


def unbiasedness_test(
    model: Module,
    loss_fn: LossFn,
    batch: Any,
    rng: np.random.Generator,
    k: int = 64,
    directions: int = 16,
    alpha: float = 1e-6,
) -> dict[str, Any]:
    """Test E[FQT gradient | batch] = QAT gradient for every quantized layer at once.

    Parameters
    ----------
    model : Module
        An FQT model (see :func:`refqt.fqt.quantize`).
    loss_fn : callable
        ``loss_fn(model, batch) -> scalar Tensor``.
    batch : any
        Passed to ``loss_fn``; held fixed.
    rng : numpy.random.Generator
        Source of the random test directions (not of the quantizer noise,
        which each layer draws from its own stream).
    k : int
        Number of FQT draws (one forward pass, ``k + 1`` backward passes).
    directions : int
        Random directions per layer.
    alpha : float
        Overall false-alarm rate (Bonferroni over all layers and directions).

    Returns
    -------
    dict
        ``{"alpha", "k", "directions", "threshold", "rejected",
        "layers": {name: {"max_abs_t", "t", "rejected"}}}``.
    """
    qat, fqt = qat_and_fqt_draws(model, loss_fn, batch, k)
    n_tests = directions * len(qat)
    threshold = t_quantile_upper(alpha / (2 * n_tests), k - 1)
    layers = {}
    for name, ref in qat.items():
        v = rng.standard_normal((directions, ref.size))
        t = projected_t_statistics(fqt[name], ref, v)
        max_t = float(np.max(np.abs(t)))
        layers[name] = {"max_abs_t": max_t, "t": t, "rejected": bool(max_t > threshold)}
    return {
        "alpha": alpha,
        "k": k,
        "directions": directions,
        "threshold": threshold,
        "rejected": any(v["rejected"] for v in layers.values()),
        "layers": layers,
    }

"""Bernstein's inequality as a per-element test of a stochastic quantizer's mean (shared by quantizer tests).

For S independent draws with mean x, variance ``var`` and ``|Q(x) − x| ≤ bound``,
``P(|mean − x| ≥ t) ≤ 2·exp(−S·t² / (2·var + 2·bound·t/3))``. Solving for the
``t`` where that equals ``alpha / n`` (Bonferroni over the n elements) gives the
threshold below; the false-alarm rate over the whole tensor is at most ``alpha``.
"""

import math

import numpy as np


def bernstein_rejections(samples, x, var, bound, alpha=1e-6):
    """Elements whose sample mean is farther from x than Bernstein allows at level alpha/n each."""
    s = samples.shape[0]
    log_term = math.log(2 * x.size / alpha)
    a = 2 * bound * log_term / 3
    threshold = (a + np.sqrt(a * a + 8 * s * var * log_term)) / (2 * s)
    deviation = np.abs(samples.mean(axis=0) - x)
    return int(np.sum(deviation > threshold + 1e-12 * np.abs(x).max()))

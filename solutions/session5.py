"""Solutions, session 5 (designing quantizers): exercises 10 and 11 of docs/teachers.md.

Run ``python solutions/session5.py`` to print every answer.
"""

from __future__ import annotations

import math

import numpy as np

from refqt.quant import BHQ, PSQ


# -- exercise 10: when BHQ gains the full factor N over PSQ, and when nothing ----------------------
def predicted_gain(g: np.ndarray) -> float:
    """N · Σλᵢ² / (Σλᵢ)², λᵢ the row ranges: PSQ's variance over BHQ's, from the two formulas.

    PSQ pays for each row's own range, ∝ Σλᵢ²; BHQ spreads large rows over
    groups of small ones, ∝ (Σλᵢ)²/N (docs/theory/quantizers.md). The ratio
    is N divided by the participation ratio (Σλ)²/Σλ², the "effective
    number of rows": N when one row dominates, 1 when all ranges are equal.
    """
    lam = g.max(axis=1) - g.min(axis=1)
    return float(g.shape[0] * np.sum(lam**2) / np.sum(lam) ** 2)


def exercise_10(n: int = 64, d: int = 256, bits: int = 4) -> dict[str, dict[str, float]]:
    """Exact PSQ / BHQ variance ratios on three gradients, with the predicted gain.

    * "one row dominates": row 0 has range 1000× the others -> gain close to N.
    * "equal ranges": every row alike -> no gain (ratio ≈ 1).
    * "geometric ranges": 0.9ⁱ -> in between.

    What decides is how unequal the row ranges λᵢ are, measured by
    N·Σλ²/(Σλ)²; the values inside the rows and the bit width do not matter.
    """
    rng = np.random.default_rng(0)
    scales = {
        "one row dominates": np.r_[1.0, np.full(n - 1, 1e-3)],
        "equal ranges": np.ones(n),
        "geometric ranges": 0.9 ** np.arange(n),
    }
    out = {}
    for name, s in scales.items():
        g = rng.standard_normal((n, d)) * s[:, None]
        measured = PSQ(bits).conditional_variance(g) / BHQ(bits).conditional_variance(g)
        out[name] = {"measured": measured, "predicted": predicted_gain(g), "N": n}
    return out


# -- exercise 11: leverage-score row sampling ----------------------------------------------------
def keep_probabilities(g: np.ndarray, rows: float) -> np.ndarray:
    """pᵢ = min(1, rows · ‖Gᵢ‖ / Σⱼ‖Gⱼ‖): about ``rows`` rows kept, large rows more often.

    The norms are taken of G / max|G|: with ``np.linalg.norm(g)`` directly, a
    matrix of entries near 1e-200 squares to 0, every pᵢ became 1, and the
    property test below found it (the budget ``rows`` was exceeded).
    """
    top = float(np.max(np.abs(g), initial=0.0))
    norms = np.linalg.norm(g / top, axis=1) if top > 0 else np.zeros(g.shape[0])
    total = norms.sum()
    if total == 0:
        return np.ones(g.shape[0])
    return np.minimum(1.0, rows * norms / total)


def leverage_sample(g: np.ndarray, u: np.ndarray, rows: float) -> np.ndarray:
    """Keep row i when uᵢ < pᵢ and scale it by 1/pᵢ; other rows become 0.

    ``u``: (N,) or (S, N) uniform noise in [0, 1), one number per row (S
    independent samples with a leading axis). A zero row has pᵢ = 0 and stays 0.

    Unbiased: E[Qᵢ] = pᵢ · Gᵢ/pᵢ + (1 − pᵢ) · 0 = Gᵢ.
    Variance: E‖Qᵢ − Gᵢ‖² = pᵢ(1/pᵢ − 1)²‖Gᵢ‖² + (1 − pᵢ)‖Gᵢ‖² = (1/pᵢ − 1)‖Gᵢ‖².
    Summed, Σᵢ(1/pᵢ − 1)‖Gᵢ‖² = (Σ‖G‖)²/rows − Σ‖Gᵢ‖² when no pᵢ is capped:
    it does not shrink with bits (there are none) but with the budget ``rows``,
    and it is smallest when the norms are unequal, like BHQ's.
    """
    p = keep_probabilities(g, rows)
    scale = np.divide(1.0, p, out=np.zeros_like(p), where=p > 0)
    keep = u < p
    return np.where(keep[..., None], g * scale[:, None], 0.0).astype(g.dtype)


def leverage_variance(g: np.ndarray, rows: float) -> float:
    """Exact E‖Q(G) − G‖² = Σᵢ (1/pᵢ − 1)‖Gᵢ‖² (zero rows contribute 0)."""
    p = keep_probabilities(g, rows)
    sq = np.sum(g * g, axis=1)
    keep = p > 0
    return float(np.sum((1 / p[keep] - 1) * sq[keep]))


def unbiasedness_z(g: np.ndarray, rows: float, samples: int, rng: np.random.Generator, bias=None) -> float:
    """Largest |z| over the elements of the sample mean of ``samples`` draws (exact variances).

    ``bias`` optionally replaces the sampler (to show that a wrong one is
    caught). Reject at |z| > z* with z* from a union bound: for n elements and
    a false-alarm rate α, z* = Φ⁻¹(1 − α/(2n)) (normal approximation).
    """
    sampler = bias or leverage_sample
    u = rng.random((samples, g.shape[0]))
    mean = sampler(g, u, rows).mean(axis=0)
    p = keep_probabilities(g, rows)
    var = np.where(p[:, None] > 0, (1 / np.maximum(p, 1e-300) - 1)[:, None] * g * g, 0.0)
    se = np.sqrt(var / samples)
    varying = se > 0
    exact = np.allclose(mean[~varying], g[~varying])  # rows kept with certainty
    z = np.abs(mean[varying] - g[varying]) / se[varying]
    return float(np.max(z, initial=0.0)) if exact else math.inf


def z_threshold(n: int, alpha: float) -> float:
    """Φ⁻¹(1 − α/(2n)) by bisection on math.erfc (no SciPy)."""
    target = alpha / (2 * n)
    lo, hi = 0.0, 40.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if 0.5 * math.erfc(mid / math.sqrt(2)) > target:
            lo = mid
        else:
            hi = mid
    return hi


def no_rescale(g: np.ndarray, u: np.ndarray, rows: float) -> np.ndarray:
    """The classic bug: sample rows but forget the 1/pᵢ (biased towards 0)."""
    p = keep_probabilities(g, rows)
    return np.where((u < p)[..., None], g, 0.0)


def property_test(examples: int = 100) -> None:
    """Tutorial 8's properties, for every generated input: shape and dtype kept, each row
    either 0 or Gᵢ/pᵢ, zero rows stay 0, and about ``rows`` rows kept on average."""
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import arrays

    matrices = arrays(
        np.float64,
        st.tuples(st.integers(1, 8), st.integers(1, 6)),
        elements=st.one_of(st.just(0.0), st.floats(-1e3, 1e3, allow_subnormal=False)),
    )

    @settings(max_examples=examples, derandomize=True, deadline=None)
    @given(g=matrices, rows=st.floats(0.5, 10.0), seed=st.integers(0, 2**32 - 1))
    def check(g, rows, seed):
        u = np.random.default_rng(seed).random(g.shape[0])
        q = leverage_sample(g, u, rows)
        assert q.shape == g.shape and q.dtype == g.dtype
        p = keep_probabilities(g, rows)
        assert np.all((p >= 0) & (p <= 1))
        for i in range(g.shape[0]):
            assert np.all(q[i] == 0) or np.allclose(q[i], g[i] / p[i])
        assert np.all(q[np.all(g == 0, axis=1)] == 0)
        if np.any(g != 0):
            assert p.sum() <= rows * (1 + 1e-9)

    check()


def exercise_11(samples: int = 4000, alpha: float = 1e-3) -> dict[str, float]:
    """Unbiasedness test, variance check and a caught bug for leverage sampling.

    Returned: the z statistic of the correct sampler and of ``no_rescale``
    against the threshold (false-alarm rate α), and the Monte Carlo variance
    against the exact formula with its standard error.
    """
    rng = np.random.default_rng(0)
    g = rng.standard_normal((32, 8)) * np.exp(rng.standard_normal(32))[:, None]
    g[3] = 0.0  # a zero row must stay zero
    rows = 8.0
    threshold = z_threshold(g.size, alpha)
    z_ok = unbiasedness_z(g, rows, samples, rng)
    z_bug = unbiasedness_z(g, rows, samples, rng, bias=no_rescale)
    draws = leverage_sample(g, rng.random((samples, g.shape[0])), rows)
    sq_err = np.sum((draws - g) ** 2, axis=(1, 2))
    return {
        "threshold": threshold,
        "z_correct": z_ok,
        "z_no_rescale": z_bug,
        "variance_measured": float(sq_err.mean()),
        "variance_exact": leverage_variance(g, rows),
        "variance_se": float(sq_err.std(ddof=1) / math.sqrt(samples)),
    }


if __name__ == "__main__":
    for name, r in exercise_10().items():
        print(f"exercise 10, {name}: PSQ/BHQ variance = {r['measured']:.1f}, "
              f"predicted N·Σλ²/(Σλ)² = {r['predicted']:.1f} (N = {r['N']})")
    property_test()
    print("exercise 11: shape, row and zero-row properties hold on 100 generated inputs")
    r = exercise_11()
    print(f"exercise 11: max |z| correct = {r['z_correct']:.2f}, without 1/p = {r['z_no_rescale']:.1f}, "
          f"threshold {r['threshold']:.2f} (alpha 1e-3); variance {r['variance_measured']:.2f} "
          f"± {r['variance_se']:.2f} vs exact {r['variance_exact']:.2f}")

"""Student's t tail probabilities and quantiles, in plain Python.

The unbiasedness tests compare the mean of K gradient draws with a reference
using the *sample* variance, so their statistic follows a t distribution with
K − 1 degrees of freedom, not a normal one: at the tiny per-element false-alarm
rates a Bonferroni correction asks for (1e-9 and below) the difference is large
for small K. These functions give the exact tail, so a stated false-alarm rate
is the real one.

Math: for t > 0 and ν degrees of freedom,

    P(T > t) = ½ · I_x(ν/2, ½),   x = ν / (ν + t²),

with I the regularised incomplete beta function, evaluated by its continued
fraction (modified Lentz). The quantile inverts the tail by bisection.
"""

from __future__ import annotations

import math


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """Continued fraction for I_x(a, b) (converges fast for x < (a+1)/(a+b+2))."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        for num in (
            m * (b - m) * x / ((a + m2 - 1.0) * (a + m2)),
            -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0)),
        ):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def regularized_incomplete_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b) = B(x; a, b) / B(a, b) for a, b > 0 and 0 ≤ x ≤ 1."""
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"regularized_incomplete_beta: x = {x} is outside [0, 1]")
    if x in (0.0, 1.0):
        return x
    log_front = a * math.log(x) + b * math.log1p(-x) - (math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, 1.0 - x) / b


def t_tail(t: float, dof: float) -> float:
    """P(T > t) for Student's t with ``dof`` degrees of freedom."""
    if dof <= 0:
        raise ValueError(f"t_tail: degrees of freedom must be positive, got {dof}")
    if t < 0:
        return 1.0 - t_tail(-t, dof)
    return 0.5 * regularized_incomplete_beta(dof / 2.0, 0.5, dof / (dof + t * t))


def t_quantile_upper(alpha: float, dof: float) -> float:
    """The t with P(T > t) = alpha (0 < alpha < ½), by bisection."""
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"t_quantile_upper: alpha must lie in (0, 0.5), got {alpha}")
    lo, hi = 0.0, 1.0
    while t_tail(hi, dof) > alpha:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_tail(mid, dof) > alpha:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * hi:
            break
    return 0.5 * (lo + hi)

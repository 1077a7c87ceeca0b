"""Solutions, session 2 (quantization and rounding): exercises 4 and 5 of docs/teachers.md.

Run ``python solutions/session2.py`` to print every answer.
"""

from __future__ import annotations

import numpy as np

from refqt.quant import PTQ, stochastic_round, uniform_from_codes


# -- exercise 4: E[⌊y + u⌋] = y, Var = p(1 − p), and the 16-bit noise's bias ---------------
def exercise_4(ys: np.ndarray | None = None) -> dict[str, np.ndarray | float]:
    """Exact mean and variance of stochastic rounding with refqt's 16-bit noise.

    With u ~ U[0, 1) and p = y − ⌊y⌋: ⌊y + u⌋ = ⌊y⌋ + 1 exactly when u ≥ 1 − p,
    which has probability p, so E = ⌊y⌋ + p = y and Var = p(1 − p) (a Bernoulli
    shifted by ⌊y⌋).

    refqt's u takes the 2¹⁶ midpoints (m + ½)/2¹⁶. Rounding up happens for the
    codes with (m + ½)/2¹⁶ ≥ 1 − p, a count c with |c/2¹⁶ − p| ≤ ½ · 2⁻¹⁶ (the
    threshold cuts one cell of width 2⁻¹⁶ at worst in half): the bias is at
    most 2⁻¹⁷ step. Here every one of the 65,536 codes is enumerated, so the
    mean and variance are exact, not sampled.
    """
    if ys is None:
        ys = np.random.default_rng(0).uniform(-4, 4, 2000)
    u = uniform_from_codes(np.arange(2**16, dtype=np.uint16), np.float64)
    rounded = stochastic_round(ys[:, None], u[None, :])  # (len(ys), 65536): every outcome once
    mean, var = rounded.mean(axis=1), rounded.var(axis=1)
    p = ys - np.floor(ys)
    return {
        "max_bias_in_steps": float(np.max(np.abs(mean - ys))),
        "bound": 2.0**-17,
        "max_variance_error": float(np.max(np.abs(var - p * (1 - p)))),
    }


# -- exercise 5: PTQ variance against bits ------------------------------------------------------
def exercise_5(n: int = 4096, bits: tuple[int, ...] = tuple(range(2, 9))) -> dict[int, dict[str, float]]:
    """Exact PTQ variance E‖Q(x) − x‖² of one Gaussian vector at each bit width, and why.

    Returned: {bits: {"variance", "step", "per_entry_over_step2"}}, the last
    being variance / (n · step²).

    The 4× per bit law says: one more bit halves the step, and an entry
    spanning many steps has a rounding fraction p spread evenly over [0, 1),
    so E[p(1 − p)]·step² = step²/6 per entry, a quarter of what it was.

    Measured on 4,096 Gaussian entries (range about ±3.9): the variance ratio
    is ≈ 7.5 from 2 to 3 bits, ≈ 7.1 from 3 to 4, then 4 ± 0.6. The law fails
    at low bits because the *step* does not halve there: PTQ puts 0 exactly on
    its grid (``zero_aligned_params``), and with B = 3 levels and data on
    both sides of 0 one level goes below 0 and two above, so the step is
    ≈ max|x| (3.9), not range/3; at B = 7 it is range/6 (1.3), at B = 15
    range/14 (0.49): it shrinks 3× and then 2.7× before it halves per bit.
    The other half of the law holds throughout: variance / (n·step²) is
    0.168 from 3 bits on, 1/6 as predicted; at 2 bits it is 0.14, because
    there many entries lie within one step of 0, where p = |x|/step and the
    variance |x|·step − x² falls below step²/6.
    """
    from refqt.quant.grid import zero_aligned_params

    x = np.random.default_rng(0).standard_normal((1, n))
    out = {}
    for b in bits:
        _, step, _ = zero_aligned_params(float(x.min()), float(x.max()), 2**b - 1)
        variance = PTQ(b).conditional_variance(x)
        out[b] = {"variance": variance, "step": step, "per_entry_over_step2": variance / (n * step**2)}
    return out


if __name__ == "__main__":
    r = exercise_4()
    print(f"exercise 4: largest |E[SR(y)] - y| over 2000 values of y = {r['max_bias_in_steps']:.3g} steps "
          f"(bound 2^-17 = {r['bound']:.3g}); largest |Var - p(1-p)| = {r['max_variance_error']:.3g}")
    v = exercise_5()
    print("exercise 5: bits  variance  step    variance/(n step^2)  variance ratio to one bit more")
    for b, r in v.items():
        ratio = f"{r['variance'] / v[b + 1]['variance']:.2f}" if b + 1 in v else ""
        print(f"            {b:4d}  {r['variance']:8.4g}  {r['step']:.4f}  {r['per_entry_over_step2']:.3f}  "
              f"(1/6 = 0.167)       {ratio}")

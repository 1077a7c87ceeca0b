"""Solutions, session 3 (QAT, FQT and unbiasedness): exercises 6 and 7 of docs/teachers.md.

Run ``python solutions/session3.py`` to print every answer.
"""

from __future__ import annotations

import numpy as np

from refqt.quant import PSQ
from refqt.stats.student import t_quantile_upper
from refqt.stats.unbiased import projected_t_statistics


# -- exercise 6: noise from U[0, 0.9) instead of U[0, 1) ------------------------------------------
def biased_bias(p: np.ndarray) -> np.ndarray:
    """E[⌊y + 0.9u⌋] − y in steps, p = y − ⌊y⌋: rounds up only when 0.9u ≥ 1 − p."""
    return np.clip((p - 0.1) / 0.9, 0.0, None) - p


def rejection_rate(
    k: int, scale: float, repeats: int = 40, directions: int = 8, alpha: float = 0.01, seed: int = 0
) -> float:
    """Share of ``repeats`` tests (K = ``k`` draws each) that reject, for noise 1 − scale·(1 − u).

    scale = 1 is the correct quantizer (u ~ U(0, 1]); scale = 0.9 draws from
    (0.1, 1] instead, i.e. U[0, 0.9) shifted so that the clamp to the grid
    never hides it. The gradient is a fixed 16 × 32 Gaussian matrix
    quantized by 4-bit PSQ, the test the projected t-test of
    ``refqt.stats.unbiased`` with Bonferroni over the directions (false-alarm
    rate at most ``alpha`` for the correct quantizer).
    """
    rng = np.random.default_rng(seed)
    g = rng.standard_normal((16, 32))
    q = PSQ(4)
    threshold = t_quantile_upper(alpha / (2 * directions), k - 1)
    rejections = 0
    for _ in range(repeats):
        u = 1.0 - scale * (1.0 - rng.random((k, *g.shape)))  # U(1 − scale, 1]
        u = np.minimum(u, np.nextafter(1.0, 0.0))
        draws = q.quantize(g, u).reshape(k, -1)
        v = rng.standard_normal((directions, g.size))
        t = projected_t_statistics(draws, g.ravel(), v)
        rejections += bool(np.max(np.abs(t)) > threshold)
    return rejections / repeats


def exercise_6(ks: tuple[int, ...] = (8, 32, 128, 256, 512)) -> dict[str, dict[int, float]]:
    """Rejection rates of the biased and of the correct quantizer for each K.

    The bias of one element, in steps, with p = y − ⌊y⌋, is
    b(p) = max(0, (p − 0.1)/0.9) − p: −p below p = 0.1, −0.1(1 − p)/0.9 above.
    It is never positive, −0.05 step on average, about 0.06 step in rms,
    against a rounding noise of sd √(p(1 − p)) ≈ 0.41 step.

    The test projects on random Gaussian directions v: ⟨v, b⟩ is a sum of
    the biases with random signs, ≈ 0.06·‖v‖ in size, and the noise along v
    ≈ 0.41·‖v‖, so t ≈ √K · 0.14 · |N(0, 1)|. Bonferroni at α = 0.01 over 8
    directions needs |t| ≳ 3.5, and the largest of 8 |N(0, 1)| is about 1.8:
    K ≈ (3.5 / (0.14 · 1.8))² ≈ 200. Measured over 40 repetitions: about
    half the tests reject at K = 128, 90 % at K = 256. The correct quantizer
    is rejected in at most 1 of 40 at every K (rate ≤ α is what the test
    promises). A bias ten times smaller needs a hundred times more draws.

    Because this bias has one sign everywhere, the all-ones direction would
    see it with effect 0.05·n against 0.41·√n, i.e. ≈ 2.8 per draw for the
    512 entries here: a handful of draws. Random directions are the
    right default (a bias can have any pattern), but a test aimed at the
    suspected pattern is far more powerful.
    """
    return {
        "biased": {k: rejection_rate(k, 0.9) for k in ks},
        "correct": {k: rejection_rate(k, 1.0) for k in ks},
    }


# -- exercise 7: Theorem 1 for a two-layer linear network ---------------------------------------
PROOF_7 = """\
Network: h = W1 x, z = W2 h, loss ℓ(z). QAT and FQT run the same forward pass (the same
quantized weights and activations), so h, z and ∂ℓ/∂z = g₂ are the same numbers in both.

QAT backward:  ∇W2 = g₂ hᵀ,   g₁ = W2ᵀ g₂,   ∇W1 = g₁ xᵀ.
FQT backward:  ĝ₂ = Q₂(g₂),  ∇̂W2 = ĝ₂ hᵀ,  ĝ₁ = Q₁(W2ᵀ ĝ₂),  ∇̂W1 = ĝ₁ xᵀ,
with unbiased quantizers: E[Q(a) | a] = a, and Q₁'s noise independent of Q₂'s.

Layer 2: E[∇̂W2] = E[ĝ₂] hᵀ = g₂ hᵀ = ∇W2 (h is fixed: it comes from the shared forward).
Layer 1: E[ĝ₁] = E[ E[Q₁(W2ᵀ ĝ₂) | ĝ₂] ] = E[W2ᵀ ĝ₂] = W2ᵀ E[ĝ₂] = W2ᵀ g₂ = g₁,
using the tower rule and that the map ĝ₂ ↦ W2ᵀ ĝ₂ is linear with W2 fixed by the forward.
So E[∇̂W1] = E[ĝ₁] xᵀ = g₁ xᵀ = ∇W1.

Where the shared forward is used: h, x, W2 are the same in both backward passes, so
they are constants under the expectation. If FQT's forward differed from QAT's (say
different quantized weights), E[∇̂] would equal the gradient of *another* network.
Linearity of the backward in the incoming gradient is what lets E pass through each
layer; a nonlinear step between quantizers (e.g. clipping ĝ) would break the proof."""


def exercise_7() -> str:
    """The proof (a string); see ``tests/test_fqt.py`` and tutorial 5 for the measured version."""
    return PROOF_7


if __name__ == "__main__":
    r = exercise_6()
    print("exercise 6: K   rejection rate, U[0,0.9) noise   correct noise (alpha = 0.01)")
    for k in r["biased"]:
        print(f"            {k:3d}  {r['biased'][k]:.2f}                          {r['correct'][k]:.2f}")
    print("exercise 7:\n" + exercise_7())

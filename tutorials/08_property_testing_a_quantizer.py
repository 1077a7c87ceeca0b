# %% [markdown]
# # Property-testing a quantizer you write
#
# A new gradient quantizer must be *unbiased* (or Theorem 1 fails), keep shapes and
# dtypes, stay within one step of its input, and have the variance you think it has.
# Example-based tests miss the inputs that break quantizers -- rows of zeros, constant
# rows, one huge entry -- so refqt tests quantizers with **properties** checked on many
# generated inputs (hypothesis), plus **statistical** tests with a stated false-alarm
# rate.
#
# Here we write a quantizer from scratch: *symmetric per-row* quantization, grid
# $\{-m_i, \dots, m_i\}$ with $m_i = \max_j |x_{ij}|$ and $B$ bins, and test it.

# %%
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from refqt.quant import PSQ, stochastic_round


def symmetric_rows(x: np.ndarray, u: np.ndarray, bits: int) -> np.ndarray:
    """Per-row symmetric stochastic quantization of an (N, D) array with noise u ~ U[0, 1)."""
    levels = 2**bits - 1
    m = np.max(np.abs(x), axis=1, keepdims=True)
    step = np.where(m > 0, 2 * m / levels, 1.0)  # a row of zeros gets step 1: it stays 0
    k = np.clip(stochastic_round((x + m) / step, u), 0, levels)
    return (k * step - m).astype(x.dtype)


def symmetric_rows_variance(x: np.ndarray, bits: int) -> np.ndarray:
    """Exact Var[Q(x)_ij | x] = p(1 − p)·step², p the fractional part in grid units."""
    levels = 2**bits - 1
    m = np.max(np.abs(x), axis=1, keepdims=True)
    step = np.where(m > 0, 2 * m / levels, 1.0)
    y = (x + m) / step
    p = y - np.floor(y)
    return p * (1 - p) * step**2


# %% [markdown]
# ## Properties that hold for every input
#
# A hypothesis strategy generates matrices with rows of very different scales and
# some exact zeros. `settings(derandomize=True)` makes the run reproducible, as in
# refqt's own test suite. Calling a `@given` function runs all its examples.

# %%
matrices = arrays(
    np.float64,
    st.tuples(st.integers(1, 6), st.integers(1, 9)),
    elements=st.one_of(st.just(0.0), st.floats(-1e3, 1e3, allow_subnormal=False)),
)


@settings(max_examples=200, derandomize=True, deadline=None)
@given(x=matrices, bits=st.integers(1, 8), seed=st.integers(0, 2**32 - 1))
def test_shape_grid_and_one_step(x, bits, seed):
    u = np.random.default_rng(seed).random(x.shape)
    q = symmetric_rows(x, u, bits)
    assert q.shape == x.shape and q.dtype == x.dtype
    m = np.max(np.abs(x), axis=1, keepdims=True)
    step = np.where(m > 0, 2 * m / (2**bits - 1), 1.0)
    assert np.all(np.abs(q - x) <= step * (1 + 1e-9))  # never more than one step away
    assert np.all(np.abs(q) <= m * (1 + 1e-9))  # never outside the row's range
    k = (q + m) / step
    assert np.allclose(k, np.round(k), atol=1e-6)  # on the grid


test_shape_grid_and_one_step()
print("shape, grid and one-step properties hold on 200 generated inputs")

# %% [markdown]
# ## Unbiasedness, with a stated false-alarm rate
#
# Draw $S$ quantizations of one input. Each element's mean has standard error
# $\sqrt{\mathrm{Var}/S}$, with the variance known exactly. We reject if any element
# is more than $z$ standard errors off, with $z$ chosen so that, by a union bound
# over the $n$ elements (and a normal approximation), a correct quantizer is rejected
# with probability at most $\alpha = 10^{-6}$: $z = \Phi^{-1}(1 - \alpha/2n)$. refqt's
# own tests use Bernstein's inequality instead, which needs no normal approximation.


# %%
def mean_rejections(draws: np.ndarray, x: np.ndarray, var: np.ndarray, z: float) -> int:
    se = np.sqrt(var / draws.shape[0])
    roundoff = 1e-9 * np.abs(x).max()  # the row extremes come back exactly, up to round-off
    return int(np.sum(np.abs(draws.mean(axis=0) - x) > z * se + roundoff))


rng = np.random.default_rng(0)
x = rng.standard_normal((8, 16)) * np.exp(rng.standard_normal((8, 1)))
S, bits = 20_000, 3
draws = np.stack([symmetric_rows(x, rng.random(x.shape), bits) for _ in range(S)])
z = 6.0  # Φ⁻¹(1 − 1e-6 / (2·128)) ≈ 5.9
assert mean_rejections(draws, x, symmetric_rows_variance(x, bits), z) == 0, (
    "the correct quantizer was rejected"
)
mc = np.mean(np.sum((draws - x) ** 2, axis=(1, 2)))
exact = symmetric_rows_variance(x, bits).sum()
print(f"E||Q(x) - x||^2: Monte Carlo {mc:.4f}, exact {exact:.4f}")
assert abs(mc - exact) < 0.02 * exact, f"Monte Carlo {mc:.5g} vs exact {exact:.5g}"

# %% [markdown]
# ## Power: the same test must catch a biased quantizer
#
# A test that never rejects is useless. Round-to-nearest ($u = \tfrac12$) must fail:

# %%
nearest = np.stack([symmetric_rows(x, np.full(x.shape, 0.5), bits)] * S)
rejected = mean_rejections(nearest, x, symmetric_rows_variance(x, bits), z)
print(f"round to nearest: {rejected} of {x.size} elements rejected")
assert rejected > x.size // 2, f"only {rejected} of {x.size} entries rejected"

# %% [markdown]
# ## How does it compare with PSQ?
#
# PSQ's per-row grid spans $[\min, \max]$, the symmetric grid $[-m, m]$, at least as
# wide. On rows that are not symmetric the symmetric grid wastes bins:

# %%
g = rng.standard_normal((64, 128)) + 1.0  # rows mostly positive
ours = symmetric_rows_variance(g, 4).sum()
psq = PSQ(4).conditional_variance(g)
print(f"4 bits: symmetric {ours:.3f} vs PSQ {psq:.3f}")
assert ours > psq, f"ours {ours:.4g} <= PSQ {psq:.4g}"

# %% [markdown]
# ## The bug hypothesis finds
#
# Leave out the zero-row guard (`np.where(m > 0, ...)`) and the one-step property
# fails: a row of zeros divides by zero. Hypothesis shrinks the failure to a minimal
# example.


# %%
def careless(x: np.ndarray, u: np.ndarray, bits: int) -> np.ndarray:
    levels = 2**bits - 1
    m = np.max(np.abs(x), axis=1, keepdims=True)
    step = 2 * m / levels
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.clip(stochastic_round((x + m) / step, u), 0, levels) * step - m


@settings(max_examples=200, derandomize=True, deadline=None)
@given(x=matrices, seed=st.integers(0, 2**32 - 1))
def test_careless_stays_finite(x, seed):
    q = careless(x, np.random.default_rng(seed).random(x.shape), 4)
    assert np.all(np.isfinite(q))


try:
    test_careless_stays_finite()
    found = False
except AssertionError:
    found = True
print("hypothesis found the zero-row bug:", found)
assert found

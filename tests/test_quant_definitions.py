"""Quantizer pieces pinned to their documented definitions, from both sides.

* the noise stream: codes are the little-endian 16-bit pieces of ``random_raw``, all
  2¹⁶ of them occur, evenly, and the bias of stochastic rounding over the values the
  stream actually hands out stays within the documented ``2⁻¹⁷`` step (+ ½ ulp);
* PerSampleShift's per-row exponent is the *largest* ``k ∈ {0, …, 4}`` whose scaled
  grid covers the row, found here by brute force;
* every variance bound is attained, to the entries that pin the range, on an input
  with ``p = ½`` everywhere else (so a bound that is loose by any factor fails), and
  ``Var = p(1 − p)·step²`` reaches ``step²/4`` exactly at a bin midpoint.

False alarms: the chi-square test of the codes runs at 1e-9 (seeded).
"""

import numpy as np
import pytest
import scipy.stats
from hypothesis import given
from hypothesis import strategies as st

from refqt.quant import BHQ, PSQ, PTQ, NoiseStream, PerSampleShift
from refqt.quant.shift import MAX_SHIFT

# -- the noise stream ------------------------------------------------------------------------------


def test_noise_codes_are_the_little_endian_16_bit_pieces_of_the_raw_draws():
    raw = np.random.default_rng(11).bit_generator.random_raw(3)
    pieces = [(int(w) >> (16 * j)) & 0xFFFF for w in raw for j in range(4)]
    np.testing.assert_array_equal(NoiseStream(np.random.default_rng(11)).take(12), pieces)


@pytest.fixture(scope="module")
def stream_noise():
    """2²¹ noise values as a quantizer draws them (``q.uniform``: NoiseStream, then u = (m + ½)/2¹⁶).

    Returns ``(distinct values, their counts)``; each of the 2¹⁶ values is missed with
    probability e⁻³², all of them are present but by a 1e-9 chance.
    """
    x = np.zeros((1, 1))
    return np.unique(PTQ(8).uniform(x, np.random.default_rng(12), samples=2**21), return_counts=True)


def test_the_stream_hands_out_all_16_bit_midpoints_evenly(stream_noise):
    values, counts = stream_noise
    np.testing.assert_array_equal(values, (np.arange(2**16) + 0.5) / 2**16)  # 15-bit noise has half of them
    expected = counts.sum() / 2**16
    chi2 = float(np.sum((counts - expected) ** 2 / expected))
    assert chi2 < scipy.stats.chi2.isf(1e-9, 2**16 - 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rounding_bias_over_the_values_the_stream_hands_out(stream_noise, dtype):
    """Exhaustive: E over every distinct u the stream produces of ⌊y + u⌋ − y, ≤ 2⁻¹⁷ + ½ ulp(2^b) steps.

    The y are the worst cases for a coarser stream: just below and above the 2⁻¹⁵ cell edges.
    """
    u = stream_noise[0].astype(dtype)
    r = np.random.default_rng(13)
    for bits in (4, 8):
        cells = np.repeat(r.integers(0, 2**15, 40) * 2.0**-15, 2) + np.tile([2.0**-17, 3 * 2.0**-17], 40)
        y = (r.integers(0, 2**bits - 1, 80) + cells).astype(dtype)
        mean = np.floor(y[:, None] + u[None, :]).mean(axis=1)
        bound = 2.0**-17 + np.spacing(dtype(2**bits)) / 2
        assert np.max(np.abs(mean - y.astype(np.float64))) <= bound


# -- the per-sample shift's exponent ---------------------------------------------------------------


def brute_force_shifts(x, bits):
    """Largest k ≤ MAX_SHIFT with every row inside 2^(−k)·[kmin·step, kmax·step] of PTQ's tensor grid."""
    grid = PTQ(bits).encode(x, np.full(x.shape, 0.5)).grid
    step, kmin = float(grid.step.reshape(-1)[0]), float(grid.kmin.reshape(-1)[0])
    low, high = kmin * step, (kmin + 2**bits - 1) * step
    out = []
    for row in x:
        fits = [
            k for k in range(1, MAX_SHIFT + 1) if row.min() >= low * 2.0**-k and row.max() <= high * 2.0**-k
        ]
        out.append(max(fits, default=0))  # 0: the tensor grid itself (covers every row up to round-off)
    return np.array(out), step


@given(seed=st.integers(0, 2**31), bits=st.integers(2, 8), signed=st.booleans())
def test_shift_is_the_largest_exponent_whose_grid_covers_the_row(seed, bits, signed):
    r = np.random.default_rng(seed)
    x = r.uniform(-1 if signed else 0, 1, (12, 5)) * 2.0 ** -r.integers(0, 7, (12, 1))
    want, step = brute_force_shifts(x, bits)
    q = PerSampleShift(bits)
    np.testing.assert_array_equal(q.shifts(x), want)
    grid = q.encode(x, q.uniform(x, np.random.default_rng(0))).grid
    np.testing.assert_allclose(grid.step.reshape(-1), step * 2.0**-want, rtol=1e-6)


def test_shift_on_rows_that_exactly_touch_a_scaled_grid():
    """Rows reaching exactly 2^(−k)·max take shift k (the cover is inclusive), 32× smaller rows stop at 4."""
    x = np.zeros((6, 3))
    x[:, 0] = [1.0, 0.5, 0.25, 0.125, 0.0625, 1 / 32]
    x[:, 1] = x[:, 0] / 3
    np.testing.assert_array_equal(PerSampleShift(4).shifts(x), [0, 1, 2, 3, 4, 4])


# -- bounds attained -------------------------------------------------------------------------------


def midpoints(r, shape, levels):
    """Integer bin k + ½ for random k in [0, B): stochastic rounding with p = ½ exactly."""
    return r.integers(0, levels, shape) + 0.5


@pytest.mark.parametrize("bits", [1, 3, 8])
def test_psq_bound_is_attained_by_midpoints(bits):
    """Each row: its min, its max and D − 2 midpoints: Var = (D − 2)/D · D/(4B²)·Σ R_i²."""
    levels = 2**bits - 1
    r = np.random.default_rng(bits)
    n, d = 5, 9
    scale, offset = np.exp(r.standard_normal((n, 1))), r.standard_normal((n, 1))
    k = midpoints(r, (n, d), levels)
    k[:, 0], k[:, 1] = 0, levels
    x = offset + scale * k / levels
    q = PSQ(bits)
    np.testing.assert_allclose(q.variance_bound(x), d * np.sum(scale**2) / (4 * levels**2), rtol=1e-12)
    np.testing.assert_allclose(q.conditional_variance(x), q.variance_bound(x) * (d - 2) / d, rtol=1e-9)


@pytest.mark.parametrize("bits", [1, 3, 8])
def test_psq_column_bound_is_attained_by_midpoints(bits):
    levels = 2**bits - 1
    r = np.random.default_rng(bits)
    n, c = 10, 4
    scale = np.exp(r.standard_normal((1, c)))
    k = midpoints(r, (n, c), levels)
    k[0], k[1] = 0, levels
    x = r.standard_normal((1, c)) + scale * k / levels
    q = PSQ(bits, axis="column")
    np.testing.assert_allclose(q.variance_bound(x), n * np.sum(scale**2) / (4 * levels**2), rtol=1e-12)
    np.testing.assert_allclose(q.conditional_variance(x), q.variance_bound(x) * (n - 2) / n, rtol=1e-9)


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("q0", [0, 1, 3])
def test_ptq_bound_is_attained_by_midpoints(bits, q0):
    """Zero-aligned grid k·s, k ∈ [−q0, B − q0]: two pinning entries, every other entry a midpoint."""
    levels = 2**bits - 1
    q0 = min(q0, levels - 1)
    r = np.random.default_rng(bits + q0)
    s = 0.375  # exact in binary: the authors' q0 = ⌊−mn·B/(mx − mn)⌋ comes out exactly q0
    k = midpoints(r, (4, 6), levels) - q0
    k[0, 0], k[0, 1] = -q0, levels - q0
    x = s * k
    q = PTQ(bits)
    np.testing.assert_allclose(q.variance_bound(x), x.size * s * s / 4, rtol=1e-12)
    # the two pinning entries, −q0·s (0 when q0 = 0) and (B − q0)·s, sit on the grid
    np.testing.assert_allclose(q.conditional_variance(x), (x.size - 2) * s * s / 4, rtol=1e-9)


@pytest.mark.parametrize("bits", [2, 4])
def test_shift_bound_is_attained_by_midpoints(bits):
    """Row i at midpoints of its own grid s·2^(−k_i), pinned by its top point: Var = (D − 1)/D · bound."""
    levels = 2**bits - 1
    r = np.random.default_rng(bits)
    shifts = np.array([0, 1, 2, 4, 3])
    d = 7
    s = 0.5
    k = midpoints(r, (shifts.size, d), levels)
    k[:, 0] = levels
    x = s * 2.0 ** -shifts[:, None] * k
    q = PerSampleShift(bits)
    np.testing.assert_array_equal(q.shifts(x), shifts)
    steps = s * 2.0**-shifts
    np.testing.assert_allclose(q.variance_bound(x), d * np.sum(steps**2) / 4, rtol=1e-12)
    np.testing.assert_allclose(q.conditional_variance(x), q.variance_bound(x) * (d - 1) / d, rtol=1e-9)


def test_bhq_bound_is_its_variance_at_p_one_half_from_the_dense_transform():
    """``D/(4B²)·Σ_i ‖T⁻¹[:, i]‖² R(Y_i)²``, Y = T x (dense T): the variance if p = ½ everywhere."""
    r = np.random.default_rng(3)
    x = r.standard_normal((6, 10)) * np.array([50.0, 1, 1, 1, 2, 1])[:, None]
    q = BHQ(4)
    t = q.transform(x)
    y = t.matrix() @ x
    step = np.ptp(y, axis=1) / 15
    half = np.sum(np.sum(t.inverse_matrix() ** 2, axis=0) * x.shape[1] * step**2 / 4)
    np.testing.assert_allclose(q.variance_bound(x), half, rtol=1e-9)
    assert q.conditional_variance(x) <= q.variance_bound(x)


@pytest.mark.parametrize("make", [PTQ, PSQ, PerSampleShift], ids=["ptq", "psq", "shift"])
def test_elementwise_variance_is_a_quarter_step_squared_at_a_midpoint(make):
    """2×3, on the grid {0, 1, 2, 3} of every quantizer (2 bits, step 1) but one entry at 1.5."""
    x = np.array([[0.0, 1.5, 3.0], [3.0, 0.0, 3.0]])
    np.testing.assert_allclose(make(2).elementwise_variance(x), [[0.0, 0.25, 0.0], [0.0] * 3], atol=1e-15)

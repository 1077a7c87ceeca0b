"""The small-array paths' building blocks against the plain definitions they replace.

``block_householder`` takes BHQ's pre-scales ``w^(−1/3)`` with ``np.float_power``
(one C-library ``pow`` per element) instead of a Python loop of ``w ** (−1/3)``;
the two must agree bit for bit on any positive float64, or the grouping would no
longer equal the documented loop (tests/test_quant_grouping.py) on some input.
The per-row grid is found in fewer NumPy calls than its plain formula; it is
checked against that formula on the ranges where the two could part (zero,
subnormal, too wide).
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refqt.quant import BHQ, PSQ, PTQ, NonFiniteInputError, fast
from refqt.quant.grid import minmax_grid

POSITIVE = st.floats(min_value=1e-300, max_value=1e300, allow_nan=False, allow_infinity=False)


@given(st.lists(POSITIVE, min_size=1, max_size=50))
def test_float_power_is_python_pow_bit_for_bit(ws):
    third = -1.0 / 3.0
    want = np.array([w**third for w in ws])
    np.testing.assert_array_equal(np.float_power(np.array(ws), third), want)


def test_float_power_is_python_pow_on_a_million_log_normal_values():
    """Where a vectorised approximation would show: ``np.power`` differs on ~5 % of these on AVX-512."""
    w = np.exp(np.random.default_rng(0).standard_normal(1 << 20) * 8.0)
    third = -1.0 / 3.0
    want = np.array([v**third for v in w.tolist()])
    np.testing.assert_array_equal(np.float_power(w, third), want)


def _minmax_grid_by_where(mins, maxs, levels, work):
    """The per-row grid by its formula: ``where(span > 0, span/B, 1)``, at least the smallest normal."""
    span = maxs.astype(np.float64) - mins.astype(np.float64)
    step = np.maximum(np.where(span > 0, span / levels, 1.0).astype(work), np.finfo(work).smallest_normal)
    return step, 1.0 / step


@pytest.mark.parametrize("work", [np.float32, np.float64])
def test_row_grid_equals_its_definition_on_zero_tiny_and_wide_ranges(work):
    """Zero ranges (step 1), subnormal ranges (span/B underflows: still the smallest normal), wide ones."""
    rng = np.random.default_rng(3)
    tiny = np.finfo(work).smallest_subnormal
    mins = np.concatenate([rng.standard_normal(200), [0.0, 0.0, 1.0, -tiny, 0.0]]).astype(work)
    wide = np.exp(rng.standard_normal(200) * 20)
    spans = np.concatenate([wide, [0.0, tiny, 0.0, tiny, 3 * tiny]]).astype(work)
    maxs = (mins + spans).astype(work)
    for levels in (1, 31, 255, 65535):
        grid = minmax_grid(mins[:, None], maxs[:, None], levels, work)
        step, inv = _minmax_grid_by_where(mins[:, None], maxs[:, None], levels, work)
        np.testing.assert_array_equal(grid.step, step)
        np.testing.assert_array_equal(grid.inv_step, inv)
        assert grid.step.dtype == grid.inv_step.dtype == np.dtype(work)
        np.testing.assert_array_equal(grid.lo, mins[:, None])
        assert (float(grid.kmin[0, 0]), float(grid.kmax[0, 0])) == (0.0, float(levels))


def test_row_grid_refuses_a_range_wider_than_the_dtype():
    with pytest.raises(NonFiniteInputError, match="overflows float32"):
        lo, hi = np.array([[-3e38]], np.float32), np.array([[3e38]], np.float32)
        minmax_grid(lo, hi, 31, np.float32, "PSQ(bits=5)")
    with pytest.raises(NonFiniteInputError, match="overflows float64"):
        minmax_grid(np.array([[-1.7e308]]), np.array([[1.7e308]]), 31, np.float64, "PSQ(bits=5)")
    grid = minmax_grid(np.array([[-1.6e38]], np.float32), np.array([[1.6e38]], np.float32), 31, np.float32)
    assert np.isfinite(grid.step).all()


def test_kept_constants_follow_bits_shapes_and_dtypes():
    """The clamp bound kept between calls (refqt.quant.fast.constant_like) is never one from another call.

    Calls alternate between bit widths, shapes and dtypes, more of them than the
    cache keeps, and each must still equal the reference path bit for bit.
    """
    rng = np.random.default_rng(7)
    shapes = [(640, 32), (40, 16), (32, 16, 8, 8), (7, 3)]
    for step in range(3 * fast.CONSTANTS_KEPT):
        shape = shapes[step % len(shapes)]
        dtype = (np.float32, np.float64, np.float16)[step % 3]
        bits = (1, 2, 5, 8, 16)[step % 5]
        x = (rng.standard_normal(shape) * np.exp(rng.standard_normal((shape[0],) + (1,) * (len(shape) - 1))))
        x = x.astype(dtype)
        for q in (PTQ(bits), PSQ(bits), PSQ(bits, axis="channel"), BHQ(bits)):
            got = q(x, np.random.default_rng(step))
            want = q.reference(x, np.random.default_rng(step))
            np.testing.assert_array_equal(got, want, err_msg=f"{q} {shape}")


def test_a_clamp_reported_idle_changes_no_level_and_biting_ones_are_found():
    """PTQ skips a clamp that ``fast.clamps_that_bite`` reports idle: then no level may lie outside the bound.

    The levels ``⌊x·inv + u⌋`` of every entry with the smallest and the largest
    noise are computed here directly; a report of "idle" while one lies out of
    bounds would be a wrong skip. Both outcomes must occur (16 bits bites at
    the dominant end through round-off), or the test would not test the skip.
    """
    from refqt.quant.grid import finite_step, zero_aligned_params

    rng = np.random.default_rng(11)
    seen = set()
    for trial in range(400):
        work = (np.float32, np.float64)[trial % 2]
        bits = (2, 5, 8, 12, 16)[trial % 5]
        scale = 10.0 ** rng.integers(-3, 4)
        x = (rng.standard_normal(64) * scale + rng.standard_normal() * (trial % 3)).astype(work)
        mn, mx = float(x.min()), float(x.max())
        lo, step, kmin = zero_aligned_params(mn, mx, 2**bits - 1)
        step_w = work(finite_step(step, work))
        inv = work(1.0) / step_w
        origin = None if lo == 0.0 else work(lo)
        kmin_w, kmax_w = work(kmin), work(kmin + 2**bits - 1)
        low, high = fast.clamps_that_bite((mn, mx), inv, origin, kmin_w, kmax_w, nearest=False)
        y = x * inv if origin is None else (x - origin) * inv
        k_lo = np.floor(y + work(fast.U_ENDS[0]))
        k_hi = np.floor(y + work(fast.U_ENDS[1]))
        if not low:
            assert k_lo.min() >= kmin_w, (trial, bits)
        if not high:
            assert k_hi.max() <= kmax_w, (trial, bits)
        seen.add((low, high))
    assert (False, False) in seen and any(high for _, high in seen)


def levels_by_definition(x, inv, lo, u):
    """``⌊(x − lo)·inv + u⌋`` elementwise in x's dtype (``lo`` None: origin 0)."""
    y = x * inv if lo is None else (x - lo) * inv
    return np.floor(y + u)


@pytest.mark.parametrize("work", [np.float32, np.float64])
@pytest.mark.parametrize("nearest", [False, True])
def test_clamps_that_bite_is_exact_at_every_bit_width_with_and_without_an_origin(work, nearest):
    """Reported biting exactly when some entry's extreme level lies outside ``[kmin, kmax]``.

    Every entry with the smallest and the largest noise (``½`` for round to
    nearest), levels computed elementwise; 1 bit with both signs is the grid
    with an origin (``lo = min``). Both answers of each clamp must occur.
    """
    from refqt.quant.grid import finite_step, zero_aligned_params

    rng = np.random.default_rng(12)
    u_lo, u_hi = (0.5, 0.5) if nearest else fast.U_ENDS
    seen_low, seen_high = set(), set()
    for trial in range(300):
        bits = (1, 2, 5, 16)[trial % 4]
        x = rng.standard_normal(32) * 10.0 ** rng.integers(-3, 4) + rng.standard_normal() * (trial % 3)
        x = x.astype(work)
        mn, mx = float(x.min()), float(x.max())
        lo, step, kmin = zero_aligned_params(mn, mx, 2**bits - 1)
        inv = work(1.0) / work(finite_step(step, work))
        origin = None if lo == 0.0 else work(lo)
        kmin_w, kmax_w = work(kmin), work(kmin + 2**bits - 1)
        shift = (0, 0, 1, -1)[(trial // 4) % 4]  # bounds moved in by a level, so that each clamp bites
        kmin_w, kmax_w = kmin_w + work(max(shift, 0)), kmax_w - work(max(-shift, 0))
        low, high = fast.clamps_that_bite((mn, mx), inv, origin, kmin_w, kmax_w, nearest)
        assert low == bool(levels_by_definition(x, inv, origin, work(u_lo)).min() < kmin_w), trial
        assert high == bool(levels_by_definition(x, inv, origin, work(u_hi)).max() > kmax_w), trial
        seen_low.add(low)
        seen_high.add(high)
    assert seen_low == seen_high == {False, True}


def test_clamps_that_bite_reports_both_when_a_level_overflows():
    """A level past the dtype's range (no grid gives one) is answered safely: both clamps bite."""
    inv = np.float32(3e38)
    for ends in [(0.0, 2.0), (-2.0, 0.0), (-2.0, 2.0)]:
        with np.errstate(over="ignore"):
            assert fast.clamps_that_bite(ends, inv, None, np.float32(1), np.float32(2), False) == (True, True)


@pytest.mark.parametrize("work", [np.float32, np.float64])
@pytest.mark.parametrize("case", ["origin-0", "origin-0-nearest", "origin", "array-bounds"])
def test_round_values_clamps_biting_bounds_as_the_definition(work, case):
    """``clip(⌊(x − lo)·inv + u⌋, kmin, kmax)·step + lo``, with bounds that the data's levels pass."""
    from refqt.quant.rounding import uniform_from_codes

    rng = np.random.default_rng(13)
    x = (rng.standard_normal((16, 8)) * 4.0).astype(work)
    inv, step = work(1.7), work(1.0) / work(1.7)
    codes = None if case == "origin-0-nearest" else rng.integers(0, 2**16, x.shape).astype(np.uint16)
    u = work(0.5) if codes is None else uniform_from_codes(codes, work)
    lo = work(-3.25) if case == "origin" else None
    if lo is not None:
        x = np.maximum(x, lo)  # y_nonnegative: every (x − lo)·inv ≥ 0, the lower clamp may be skipped
    # with an origin, kmax lies between the levels of max·inv and (max − lo)·inv: the origin must be used
    kmin, kmax = (work(0.0), work(20.0)) if lo is not None else (work(-4.0), work(3.0))
    levels = levels_by_definition(x, inv, lo, u)
    assert (lo is not None or levels.min() < kmin) and levels.max() > kmax  # the clamps bite
    want = np.clip(levels, kmin, kmax) * step + (work(0.0) if lo is None else lo)
    ends = (float(x.min()), float(x.max()))
    for given_ends in (ends, None):
        if case == "array-bounds":
            bounds = (np.full((1, 8), kmin), np.full((1, 8), kmax))
            inv_a, step_a = np.full((1, 8), inv), np.full((1, 8), step)
            args = (inv_a, step_a, *bounds)
        else:
            args = (inv, step, kmin, kmax)
        out = np.empty_like(x)
        fast.round_values(x, *args, lo, lo is not None, codes, out, given_ends)
        np.testing.assert_array_equal(out, want, err_msg=f"{case} ends={given_ends}")


@pytest.mark.parametrize("bits", [1, 16])
def test_ptq_small_path_equals_the_reference_where_its_clamps_bite(bits):
    """At 16 bits round-off puts the dominant end's level past ``kmax``; at 1 bit the grid has an origin."""
    rng = np.random.default_rng(14)
    q, bitten = PTQ(bits), 0
    for trial in range(40):
        x = rng.standard_normal((32, 32)) * 10.0 ** rng.integers(-3, 4) + rng.standard_normal() * (trial % 3)
        x[::2] = x.max()  # many entries at the dominant end: some draw the noise that crosses the bound
        x = (x if trial % 4 < 2 else -x).astype((np.float32, np.float64)[trial % 2])  # either end dominant
        grid = q.small_grid((float(x.min()), float(x.max())), x.dtype)
        bitten += any(fast.clamps_that_bite(grid.ends, grid.inv, grid.lo, grid.kmin, grid.kmax, False))
        want = q.reference(x, np.random.default_rng(trial))
        np.testing.assert_array_equal(q(x, np.random.default_rng(trial)), want)
    assert bitten > 0 or bits == 1  # 1 bit: the grid with an origin, whose clamps do not bite


def test_round_values_decides_a_stochastic_clamp_with_the_largest_noise():
    """``y = 6.25``: ``⌊y + ½⌋ = 6 = kmax`` but ``⌊y + u⌋ = 7`` for ``u > ¾``: the clamp must act."""
    x = np.array([[0.5, 3.125]])
    codes = np.array([[0, 2**16 - 1]], dtype=np.uint16)
    out = np.empty_like(x)
    fast.round_values(x, 2.0, 0.5, 0.0, 6.0, None, False, codes, out, (0.5, 3.125))
    np.testing.assert_array_equal(out, [[0.5, 3.0]])


def test_noise_code_helpers_name_themselves_and_split_three_streams_as_three_calls():
    """``fresh_stream_codes`` is one fresh ``NoiseStream`` per size (here three); a bad rng is named."""
    from refqt.quant.rounding import NoiseStream, fresh_stream_codes, noise_codes

    sizes = (5, 3, 9)
    got = fresh_stream_codes(np.random.default_rng(1), sizes)
    rng = np.random.default_rng(1)
    want = [NoiseStream(rng).take(n) for n in sizes]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)
    with pytest.raises(TypeError, match=r"^fresh_stream_codes: rng"):
        fresh_stream_codes(1, (2,))
    with pytest.raises(TypeError, match=r"^noise_codes: rng"):
        noise_codes(1, 2)


@pytest.mark.parametrize("shape", [(6, 4), (2, 3, 2, 2)])
def test_a_per_channel_range_too_wide_is_refused_naming_the_quantizer(shape):
    """The per-channel grid refuses a range past the dtype, naming PSQ, on the fast and the reference path."""
    x = np.zeros(shape)
    x[(0,) * x.ndim], x[(1,) + (0,) * (x.ndim - 1)] = -1.7e308, 1.7e308  # channel 0 of two samples
    q = PSQ(4, axis="column")
    with pytest.raises(NonFiniteInputError, match="PSQ"):
        q(x, np.random.default_rng(0))
    with pytest.raises(NonFiniteInputError, match="PSQ"):
        q.reference(x, np.random.default_rng(0))

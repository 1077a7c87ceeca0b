"""refqt.quant.formats: element grids and casts against ml_dtypes, exact moments against Monte Carlo,
the random Hadamard transform against Sylvester's dense matrix, the fast path against the reference.

Statistical tests: projected t statistics (refqt.stats.unbiased) of S seeded draws against the
exact mean, and a t test of the total squared error against the exact total variance; each
test's false-alarm rate is ALPHA overall (Bonferroni over its directions / cases). Each also
shows a wrong claim being caught (the exact-SR mean for a biased rounding).
"""

import math

import ml_dtypes
import numpy as np
import pytest

from refqt.quant import make_gradient_quantizer
from refqt.quant.formats import (
    FORMAT_QUANTIZERS,
    FORMATS,
    BlockFormatQuantizer,
    RandomHadamard,
    block_scales,
    from_blocks,
    make_format_quantizer,
    mx_exponent,
    sylvester,
    to_blocks,
    walsh_hadamard,
)
from refqt.stats.student import t_quantile_upper
from refqt.stats.unbiased import projected_t_statistics

ALPHA = 1e-6
ML = {
    "e4m3": ml_dtypes.float8_e4m3fn,
    "e5m2": ml_dtypes.float8_e5m2,
    "e3m2": ml_dtypes.float6_e3m2fn,
    "e2m3": ml_dtypes.float6_e2m3fn,
    "e2m1": ml_dtypes.float4_e2m1fn,
}
SATURATING = ("e3m2", "e2m3", "e2m1")  # ml_dtypes saturates these; e4m3fn gives NaN, e5m2 Inf


def _all_values(dtype):
    """Every finite non-negative value of an ml_dtypes float type, from all its bit patterns."""
    width = np.dtype(dtype).itemsize * 8
    codes = np.arange(2 ** min(width, 8), dtype=np.uint8)
    v = codes.view(dtype).astype(np.float64)
    return np.unique(v[np.isfinite(v) & (v >= 0)])


@pytest.mark.parametrize("name", list(ML))
def test_grid_is_the_set_of_ml_dtypes_values(name):
    np.testing.assert_array_equal(FORMATS[name].values(), _all_values(ML[name]))


@pytest.mark.parametrize("name", list(ML))
def test_round_to_nearest_even_bit_for_bit_against_ml_dtypes(name):
    fmt = FORMATS[name]
    grid = fmt.values()
    r = np.random.default_rng(1)
    mids = (grid[1:] + grid[:-1]) / 2  # exact ties: the even neighbour must win
    spread = r.uniform(0, 1, 20000) * fmt.max_value * r.choice([1, 1e-2, 1e-4, 1e-6], 20000)
    top = fmt.max_value * (1.5 if name in SATURATING else 1.0)
    a = np.concatenate([grid, mids, spread, np.nextafter(mids, 0), np.nextafter(mids, np.inf), [top]])
    x = np.concatenate([a, -a]).astype(np.float32)
    ours = fmt.round_nearest_even(x)
    theirs = x.astype(ML[name]).astype(np.float32)
    np.testing.assert_array_equal(ours, theirs)
    assert np.array_equal(np.signbit(ours[x != 0]), np.signbit(theirs[x != 0]))


def test_integer_formats_round_like_rint_and_saturate():
    x = np.linspace(-140, 140, 5601, dtype=np.float32)
    np.testing.assert_array_equal(FORMATS["int8"].round_nearest_even(x), np.clip(np.rint(x), -127, 127))
    int4 = np.clip(np.rint(x / 16), -7, 7)
    np.testing.assert_array_equal(FORMATS["int4"].round_nearest_even(x / 16), int4)
    assert np.array_equal(FORMATS["int4"].values(), np.arange(8))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_spacing_from_exponent_bits_equals_frexp(dtype):
    r = np.random.default_rng(2)
    a = np.abs(r.standard_normal(5000) * np.exp(8 * r.standard_normal(5000))).astype(dtype)
    a = np.concatenate([a, [0.0, np.finfo(dtype).smallest_subnormal, 1.0, 2.0, 6.0]]).astype(dtype)
    for fmt in FORMATS.values():
        np.testing.assert_array_equal(fmt.spacing(a), fmt.spacing_frexp(a))


# -- moments of one rounding, against Monte Carlo ----------------------------------------------
def _draws(fmt, y, bits, samples, seed):
    u = (np.random.default_rng(seed).integers(0, 2**16, (samples, *y.shape)) + 0.5) / 2**16
    return fmt.stochastic_round(y[None], u, bits)


def _check_mean(draws, mean, alpha, seed=0):
    """Largest |t| along 16 random directions, and the Bonferroni threshold at ``alpha``."""
    v = np.random.default_rng(seed).standard_normal((16, mean.size))
    t = projected_t_statistics(draws.reshape(len(draws), -1).astype(np.float64), mean.ravel(), v)
    return float(np.max(np.abs(t))), t_quantile_upper(alpha / 32, len(draws) - 1)


def _check_variance(draws, mean, var, alpha):
    """|t| of the per-draw total squared error against Σ Var, and the two-sided threshold."""
    e = ((draws.astype(np.float64) - mean.astype(np.float64)) ** 2).reshape(len(draws), -1).sum(axis=1)
    t = (e.mean() - var.sum()) / (e.std(ddof=1) / math.sqrt(len(e)))
    return abs(t), t_quantile_upper(alpha / 2, len(e) - 1)


@pytest.mark.parametrize("name", ["e4m3", "e2m1", "e3m2", "int4"])
@pytest.mark.parametrize("bits", [None, 2, 5])
def test_element_moments_match_monte_carlo(name, bits):
    fmt = FORMATS[name]
    r = np.random.default_rng(3)
    y = (r.uniform(-1.2, 1.2, 400) * fmt.max_value).astype(np.float64)  # some above max: clipped
    draws = _draws(fmt, y, bits, 3000, seed=4)
    mean, var = fmt.moments(y, bits)
    t, limit = _check_mean(draws, mean, ALPHA / 2)
    assert t < limit
    t, limit = _check_variance(draws, mean, var, ALPHA / 2)
    assert t < limit
    if bits == 2:  # power: the exact-SR mean (clipped y) is rejected for 2-bit noise
        t, limit = _check_mean(draws, np.clip(y, -fmt.max_value, fmt.max_value), ALPHA)
        assert t > limit


def test_k_bit_bias_is_floor_of_p_times_2k():
    fmt = FORMATS["e2m1"]
    y = np.array([1.0 + 0.5 * p for p in (0.0, 0.2, 0.25, 0.49, 0.5, 0.74, 0.99)])  # spacing 0.5 in [1, 2)
    for k in (1, 2, 3):
        mean, _ = fmt.moments(y, k)
        p = (y - 1.0) / 0.5
        np.testing.assert_allclose(mean, 1.0 + 0.5 * np.floor(p * 2**k) / 2**k)
        # and the definition over all 2^16 noise codes: up iff ⌊p·2^k⌋ + r ≥ 2^k
        u = (np.arange(2**16)[:, None] + 0.5) / 2**16
        np.testing.assert_allclose(fmt.stochastic_round(y[None], u, k).mean(axis=0), mean)


# -- scales -------------------------------------------------------------------------------------
def test_mx_scale_rounding_modes_from_the_definition():
    fmt = FORMATS["e2m1"]  # emax 2, max 6
    amax = np.array([[7.0], [6.5], [6.0], [5.0], [4.0], [0.0], [7.0 * 2.0**-20]])
    floor = mx_exponent(amax, fmt, "floor")
    np.testing.assert_array_equal(floor[:, 0], [0, 0, 0, 0, 0, -127, -20])  # 2^(⌊log2 amax⌋ − 2)
    ceil = mx_exponent(amax, fmt, "ceil")  # smallest E with amax/2^E ≤ 6
    np.testing.assert_array_equal(ceil[:, 0], [1, 1, 0, 0, 0, -127, -19])
    even = mx_exponent(amax, fmt, "even")  # amax's mantissa to 1 bit: 7 = 1.75·4 → 2·4 carries, 6.5 does not
    np.testing.assert_array_equal(even[:, 0], [1, 0, 0, 0, 0, -127, -19])


def test_mx_floor_clips_the_block_max_ceil_does_not():
    x = np.zeros((1, 32), dtype=np.float32)
    x[0, :2] = [7.0, -6.5]
    floor = BlockFormatQuantizer("e2m1", "mx", scale_rounding="floor")
    ceil = BlockFormatQuantizer("e2m1", "mx", scale_rounding="ceil")
    np.testing.assert_allclose(floor.bias(x)[0, :2], [-1.0, 0.5])  # both clipped to ±6
    assert np.all(ceil.bias(x) == 0.0)
    even = BlockFormatQuantizer("e2m1", "mx", scale_rounding="even")
    np.testing.assert_allclose(even.bias(x)[0, :2], [0.0, 0.0])  # one binade up: 7/2, 6.5/2 on the grid


def test_nvfp4_scales_from_the_definition():
    r = np.random.default_rng(5)
    x = (r.standard_normal((4, 64)) * np.exp(2 * r.standard_normal((4, 1)))).astype(np.float32)
    bm = to_blocks(x, "row", 16)
    enc, dec = block_scales(bm, FORMATS["e2m1"], "nvfp4")
    amax = np.abs(x).max()
    s_enc = np.float32(6 * 448 / amax)
    s_b = (np.abs(bm).max(axis=1, keepdims=True) / np.float32(6) * s_enc).astype(ml_dtypes.float8_e4m3fn)
    s_b = s_b.astype(np.float32)
    np.testing.assert_allclose(dec, s_b / s_enc, rtol=1e-6)
    np.testing.assert_allclose(enc, s_enc / s_b, rtol=1e-6)
    top = np.abs(bm * enc).max(axis=1)
    assert np.isclose(top.max(), 6.0, rtol=1e-6) or np.any(top > 6.0)  # the tensor's max block reaches 6
    ideal = np.abs(bm).max(axis=1) / 6 * s_enc
    assert np.all((top > 6.0 * (1 + 1e-6)) == (s_b[:, 0] < ideal * (1 - 1e-6)))  # clipped iff rounded down


def test_nvfp4_zero_block_scale_gives_zero_and_its_bias():
    x = np.zeros((1, 32), dtype=np.float32)
    x[0, 0] = 1e6
    x[0, 16:] = 1e-6  # amax_b/6·S ≈ 4e-9 < E4M3's smallest subnormal 2^-9 / 2: scale 0
    q = BlockFormatQuantizer("e2m1", "nvfp4")
    mean, var = q.moments(x)
    assert np.all(mean[0, 16:] == 0) and np.all(var[0, 16:] == 0)
    np.testing.assert_allclose(q.bias(x)[0, 16:], -1e-6, rtol=1e-6)


@pytest.mark.parametrize("layout", ["row", "column", "tile"])
def test_block_layouts_round_trip_and_tiles_are_shared_by_the_transpose(layout):
    x = np.random.default_rng(6).standard_normal((37, 21))
    bm = to_blocks(x, layout, 16)
    assert bm.shape[1] == (256 if layout == "tile" else 16)
    np.testing.assert_array_equal(from_blocks(bm, layout, 16, x.shape), x)
    if layout == "tile":  # tile scales of x and of xᵀ are the same numbers
        amax = np.sort(np.abs(bm).max(axis=1))
        np.testing.assert_array_equal(amax, np.sort(np.abs(to_blocks(x.T, "tile", 16)).max(axis=1)))
        q = BlockFormatQuantizer("e2m1", "nvfp4", layout="tile", rounding="nearest")
        np.testing.assert_array_equal(q.quantize(x, np.zeros_like(x)).T, q.quantize(x.T, np.zeros_like(x.T)))


# -- random Hadamard transform --------------------------------------------------------------------
@pytest.mark.parametrize("d", [1, 2, 4, 16, 32])
def test_walsh_hadamard_is_sylvesters_matrix(d):
    h = sylvester(d)
    assert np.array_equal(h @ h.T, d * np.eye(d))
    x = np.random.default_rng(7).standard_normal((5, 2 * d))
    y = walsh_hadamard(x, d)
    for g in range(2):
        np.testing.assert_allclose(y[:, g * d : (g + 1) * d], x[:, g * d : (g + 1) * d] @ h.T, atol=1e-12)


def test_sylvester_recursion_by_hand():
    h4 = np.array([[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]])
    assert np.array_equal(sylvester(4), h4)


@pytest.mark.parametrize("policy", ["fixed", "per-step", "per-call"])
def test_rht_is_orthogonal_and_matches_its_dense_matrix(policy):
    t = RandomHadamard(16, policy, seed=3)
    t.redraw(np.random.default_rng(0))
    dense = sylvester(16) * t.signs[None, :] / 4.0  # H · diag(s) / √d from the definition
    np.testing.assert_allclose(t.matrix(), dense)
    np.testing.assert_allclose(dense @ dense.T, np.eye(16), atol=1e-12)
    x = np.random.default_rng(8).standard_normal((9, 32))
    y = t.forward(x)
    np.testing.assert_allclose(y[:, :16], x[:, :16] @ dense.T, atol=1e-12)
    np.testing.assert_allclose(t.inverse(y), x, atol=1e-12)
    assert np.allclose(np.linalg.norm(y, axis=1), np.linalg.norm(x, axis=1))


def test_sign_policies():
    fixed = RandomHadamard(16, "fixed", seed=1)
    s0 = fixed.signs.copy()
    fixed.redraw(np.random.default_rng(2))
    fixed.step = 5
    assert np.array_equal(fixed.signs, s0)
    step = RandomHadamard(16, "per-step", seed=1)
    a = step.signs.copy()
    step.step = 1
    assert not np.array_equal(step.signs, a)
    step.step = 0
    assert np.array_equal(step.signs, a)
    call = RandomHadamard(16, "per-call", seed=1)
    call.redraw(np.random.default_rng(2))
    b = call.signs.copy()
    call.redraw(np.random.default_rng(3))
    assert not np.array_equal(call.signs, b)
    with pytest.raises(ValueError, match="policy"):
        RandomHadamard(16, "sometimes")
    with pytest.raises(ValueError, match="power of two"):
        RandomHadamard(12)


def test_rht_spreads_an_outlier():
    x = np.zeros((1, 16))
    x[0, 3] = 8.0
    y = RandomHadamard(16, seed=0).forward(x)
    np.testing.assert_allclose(np.abs(y), 2.0)  # 8/√16 on every entry


# -- the quantizers ----------------------------------------------------------------------------------
def _gradient(shape=(32, 96), seed=9):
    r = np.random.default_rng(seed)
    x = r.standard_normal(shape) * np.exp(1.5 * r.standard_normal((shape[0], 1)))
    x[r.random(shape) < 0.05] *= 30  # outliers
    return x.astype(np.float32)


CASES = [
    *FORMAT_QUANTIZERS,
    BlockFormatQuantizer("e2m1", "mx", scale_rounding="ceil"),
    BlockFormatQuantizer("e4m3", "mx", scale_rounding="even", layout="column"),
    BlockFormatQuantizer("e2m1", "nvfp4", layout="tile"),
    BlockFormatQuantizer("e2m1", "nvfp4", random_bits=3, hadamard=RandomHadamard(16, "per-call")),
    BlockFormatQuantizer("int4", "tensor", hadamard=RandomHadamard(8)),
]


def _make(case):
    return make_format_quantizer(case) if isinstance(case, str) else case


@pytest.mark.parametrize("case", CASES, ids=[c if isinstance(c, str) else repr(c) for c in CASES])
def test_quantizer_moments_match_monte_carlo(case):
    q = _make(case)
    x = _gradient()
    draws = q.quantize(x, q.uniform(x, np.random.default_rng(10), samples=400))
    mean, var = q.moments(x)
    t, limit = _check_mean(draws, mean, ALPHA / 2)
    assert t < limit, f"{q!r}: mean |t| = {t:.1f} ≥ {limit:.1f}"
    t, limit = _check_variance(draws, mean, var, ALPHA / 2)
    assert t < limit, f"{q!r}: variance |t| = {t:.1f} ≥ {limit:.1f}"


def test_biased_claim_is_caught_for_2_bit_noise():
    q = BlockFormatQuantizer("e2m1", "nvfp4", random_bits=2, block=16)
    x = _gradient()
    draws = q.quantize(x, q.uniform(x, np.random.default_rng(11), samples=400))
    t, limit = _check_mean(draws, q.elementwise_mean(x), ALPHA)
    assert t < limit
    unbiased_claim = BlockFormatQuantizer("e2m1", "nvfp4").elementwise_mean(x)  # ignores the 2-bit bias
    t, limit = _check_mean(draws, unbiased_claim, ALPHA)
    assert t > limit


@pytest.mark.parametrize("name", FORMAT_QUANTIZERS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fast_path_equals_reference_bit_for_bit(name, dtype):
    q = make_format_quantizer(name)
    x = _gradient((16, 64)).astype(dtype)
    a = q(x, np.random.default_rng(12))
    b = q.reference(x, np.random.default_rng(12))
    assert a.dtype == x.dtype
    if q.hadamard is None or q.layout != "row":
        assert np.array_equal(a, b)
    else:  # BLAS's T·Xᵀ against the butterflies: round-off, and (rarely) one flipped rounding
        _close_but_for_rare_flips(a, b, x)
    y = x.copy()
    assert q(y, np.random.default_rng(12), out=y) is y and np.array_equal(y, a)


def _close_but_for_rare_flips(a, b, x):
    """Equal to round-off (1e-5 of max |x|) in all but 0.1 % of the 16-blocks."""
    far = np.abs(a.astype(np.float64) - b) > 1e-5 * np.abs(x).max()
    assert far.reshape(-1, 16).any(axis=1).mean() <= 1e-3


@pytest.mark.parametrize("name", ["nvfp4", "nvfp4-rht", "mxfp8-e4m3", "fp8-e5m2", "mxint8"])
def test_fast_moments_equal_the_reference(name):
    q = make_format_quantizer(name)
    x = _gradient((16, 2 * 2**12 + 32))
    mean, var = q.moments(x)
    ref_mean, ref_var = q.moments_reference(x)
    if q.hadamard is None:
        np.testing.assert_array_equal(mean, ref_mean)
        np.testing.assert_array_equal(var, ref_var)
    else:  # BLAS against butterflies (mean), the order of a 16-term sum (variance)
        np.testing.assert_allclose(mean, ref_mean, rtol=0, atol=1e-5 * np.abs(x).max())
        np.testing.assert_allclose(var, ref_var, rtol=1e-5)


def test_fast_path_over_many_chunks():
    x = _gradient((8, 3 * 2**14 + 64))
    q = make_format_quantizer("nvfp4")
    np.testing.assert_array_equal(q(x, np.random.default_rng(13)), q.reference(x, np.random.default_rng(13)))
    q = make_format_quantizer("nvfp4-rht")
    _close_but_for_rare_flips(q(x, np.random.default_rng(13)), q.reference(x, np.random.default_rng(13)), x)


def test_unbiased_where_nothing_is_clipped_and_variance_bound_holds():
    q = BlockFormatQuantizer("e2m1", "mx", scale_rounding="ceil")
    x = _gradient()
    assert np.max(np.abs(q.bias(x))) <= 1e-6 * np.max(np.abs(x))
    assert q.conditional_variance(x) <= q.variance_bound(x)
    assert BlockFormatQuantizer("e2m1", "mx", rounding="nearest").conditional_variance(x) == 0.0


def test_factory_and_errors():
    for name in FORMAT_QUANTIZERS:
        assert make_gradient_quantizer(name).name == name
    with pytest.raises(ValueError, match="unknown format"):
        make_format_quantizer("fp3")
    with pytest.raises(ValueError, match="layout"):
        BlockFormatQuantizer(layout="diagonal")
    with pytest.raises(ValueError, match="1D blocks"):
        BlockFormatQuantizer(layout="tile", hadamard=RandomHadamard(16))
    with pytest.raises(ValueError, match="random_bits"):
        BlockFormatQuantizer(random_bits=0)
    x = _gradient()
    x[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        make_format_quantizer("nvfp4")(x, np.random.default_rng(0))


def test_formats_benchmark_prints_every_figure():
    from refqt.benchmarks.formats import format_figures, formats_benchmark

    figures = formats_benchmark(batch=1, repeats=1, formats=("nvfp4-rht", "mxfp4"))
    assert set(figures["formats"]) == {"nvfp4-rht", "mxfp4"}
    assert all(e["quantize_ms"] > 0 and e["moments_ms"] > 0 for e in figures["formats"].values())
    assert "nvfp4-rht" in format_figures(figures)

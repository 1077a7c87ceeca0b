"""Every quantizer's exact quantities on every backend, and the edges the mutation run found open.

Deterministic (no false alarms). Where an expectation is needed it is taken by
quadrature over the noise (``u`` on the M = 1024 midpoints ``(m + ½)/M``: exact to
``1/(2M)`` step), not by sampling.

* ``variance_bound``, ``conditional_variance``, ``elementwise_variance``, BHQ's
  ``transform``, PerSampleShift's ``shifts`` and ``encode``/``decode`` give on
  array_api_strict what they give on NumPy (the reference path must not take a
  NumPy-only shortcut), with the documented shapes and dtypes;
* the bound of an empty or all-zero input is 0;
* codes are uint8 up to 8 bits and uint16 above, and decode back to ``quantize``;
* 1-bit grids with both signs (the min/max fallback, no zero-aligned grid exists)
  are unbiased, for PTQ, PerSampleShift and ZeroPSQ;
* a range too wide for float64 is refused by name, by ``variance_bound`` too;
* a BHQ group larger than 64 rows (``inverse_column_norms_sq`` without the dense
  ``H``) against the dense ``T⁻¹``.
"""

import numpy as np
import pytest

from refqt.backend import get_backend
from refqt.quant import BHQ, PSQ, PTQ, NonFiniteInputError, PerSampleShift, ZeroPSQ
from refqt.quant.householder import BlockHouseholder

M = 1024
BIG = float(np.finfo(np.float64).max)
QUANTIZERS = [
    PTQ,
    PSQ,
    lambda b: PSQ(b, axis="channel"),
    ZeroPSQ,
    lambda b: ZeroPSQ(b, axis="channel"),
    BHQ,
    PerSampleShift,
]
IDS = ["ptq", "psq", "psq-channel", "psq-zero", "psq-zero-channel", "bhq", "shift"]


def conv_gradient(seed=0):
    """(6, 2, 3, 2): samples over decades of scale, both signs, exact zeros, one all-zero sample."""
    r = np.random.default_rng(seed)
    x = r.standard_normal((6, 2, 3, 2)) * np.exp(2 * r.standard_normal((6, 1, 1, 1)))
    x[r.random(x.shape) < 0.2] = 0.0
    x[3] = 0.0
    return x


@pytest.fixture(scope="module")
def strict():
    return get_backend("array_api_strict")


@pytest.mark.parametrize("make", QUANTIZERS, ids=IDS)
def test_exact_quantities_are_the_same_on_array_api_strict(make, strict):
    x = conv_gradient()
    q = make(3)
    xs = strict.asarray(x)
    assert q.variance_bound(xs) == pytest.approx(q.variance_bound(x), rel=1e-12, abs=0)
    assert q.conditional_variance(xs) == pytest.approx(q.conditional_variance(x), rel=1e-12, abs=0)
    v = q.elementwise_variance(x)
    assert v.shape == x.shape and v.dtype == np.float64
    vs = strict.to_numpy(q.elementwise_variance(xs))
    assert vs.shape == x.shape and vs.dtype == np.float64
    np.testing.assert_allclose(vs, v, rtol=1e-12, atol=0)
    u = q.uniform(x, np.random.default_rng(1), samples=2)
    want = q.quantize(x, u)
    enc = q.encode(xs, strict.asarray(u))
    got = q.decode(enc)
    assert tuple(got.shape) == (2, *x.shape) and got.dtype == xs.dtype
    np.testing.assert_array_equal(strict.to_numpy(got), want)


def test_bhq_transform_and_shifts_are_the_same_on_array_api_strict(strict):
    x = conv_gradient(1)
    t, ts = BHQ(4).transform(x), BHQ(4).transform(strict.asarray(x))
    np.testing.assert_array_equal(ts.scales, t.scales)
    np.testing.assert_array_equal(ts.matrix(), t.matrix())
    q = PerSampleShift(4)
    shifts = q.shifts(x)
    assert shifts.dtype == np.int64
    np.testing.assert_array_equal(q.shifts(strict.asarray(x)), shifts)


@pytest.mark.parametrize("make", QUANTIZERS, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_decode_gives_the_inputs_dtype_and_shape(make, dtype):
    x = conv_gradient(2).astype(dtype)
    q = make(4)
    enc = q.encode(x, q.uniform(x, np.random.default_rng(3)))
    assert enc.dtype == x.dtype and enc.shape == x.shape
    out = q.decode(enc)
    assert out.dtype == dtype and out.shape == x.shape
    np.testing.assert_array_equal(out, q.reference(x, np.random.default_rng(3)))


@pytest.mark.parametrize("make", QUANTIZERS, ids=IDS)
def test_bound_of_empty_and_all_zero_inputs_is_zero(make):
    q = make(4)
    assert q.variance_bound(np.zeros((0, 3))) == 0.0
    assert q.variance_bound(np.zeros((3, 2, 2))) == 0.0


@pytest.mark.parametrize("make", QUANTIZERS, ids=IDS)
@pytest.mark.parametrize("bits", [1, 8, 9, 12, 16])
def test_codes_are_uint8_up_to_8_bits_then_uint16_and_decode_to_quantize(make, bits):
    x = conv_gradient(4)
    q = make(bits)
    u = q.uniform(x, np.random.default_rng(5))
    enc = q.encode(x, u)
    assert enc.codes.dtype == (np.uint8 if bits <= 8 else np.uint16)
    assert int(enc.codes.max()) <= q.levels
    np.testing.assert_array_equal(q.decode(enc), q.quantize(x, u))


def quadrature_mean(q, x):
    u = np.broadcast_to(((np.arange(M) + 0.5) / M).reshape((M,) + (1,) * x.ndim), (M, *x.shape))
    return q.quantize(x, np.ascontiguousarray(u)).mean(axis=0)


@pytest.mark.parametrize("make", [PTQ, PerSampleShift, ZeroPSQ], ids=["ptq", "shift", "psq-zero"])
def test_one_bit_grids_with_both_signs_are_unbiased(make):
    """No 2-level grid holds 0 and both ends: the plain min/max grid, which must cover the input."""
    x = np.array([[-3.0, -1.0, 0.0, 2.0, 5.0], [-0.5, 0.25, 0.0, 0.1, 0.5]])
    q = make(1)
    _, grid, _ = q._prepare(x)
    step = np.broadcast_to(np.asarray(grid.step, dtype=np.float64), x.shape)
    assert np.all(np.abs(quadrature_mean(q, x) - x) <= step / (2 * M) + 1e-12)


@pytest.mark.parametrize("make", [PTQ, PerSampleShift], ids=["ptq", "shift"])
def test_ranges_too_wide_for_float64_are_refused_by_name(make):
    q = make(4)
    wide = np.array([[-0.6 * BIG, 0.0, 0.6 * BIG]])
    for call in (q.variance_bound, lambda a: q.quantize(a, np.full(a.shape, 0.5))):
        with pytest.raises(NonFiniteInputError, match=rf"^{type(q).__name__}\(bits=4\): a range max − min"):
            call(wide)


def test_bhq_large_group_column_norms_equal_the_dense_inverse():
    """One group of 100 rows: above the 64 rows where the dense ``H`` is formed."""
    g = 100
    scales = np.exp(np.random.default_rng(6).standard_normal(g))
    t = BlockHouseholder([np.random.default_rng(7).permutation(g)], scales, np.ones(g), 1)
    dense = np.sum(t.inverse_matrix() ** 2, axis=0)
    np.testing.assert_allclose(t.inverse_column_norms_sq(), dense, rtol=1e-10)


@pytest.mark.parametrize("make", QUANTIZERS, ids=IDS)
def test_quantize_of_an_empty_input_has_the_noises_shape(make):
    q = make(4)
    x = np.zeros((0, 3))
    for u in (np.zeros((0, 3)), np.zeros((2, 0, 3))):
        out = q.quantize(x, u)
        assert out.shape == u.shape and out.dtype == x.dtype


@pytest.mark.parametrize("make", [PSQ, ZeroPSQ], ids=["psq", "psq-zero"])
def test_one_channel_inputs_use_one_grid_over_all_entries(make):
    """A 1-D (N,) or 0-D input has one channel: per channel = one grid over the whole (1, N) row."""
    x = np.array([-2.0, 0.0, 0.7, 3.0, 1.5])
    u = np.random.default_rng(8).random(x.shape)
    want = make(3).quantize(x[None, :], u[None, :])[0]
    np.testing.assert_array_equal(make(3, axis="channel").quantize(x, u), want)
    s = np.array(-1.25)
    np.testing.assert_array_equal(
        make(3, axis="channel").quantize(s, np.array(0.3)), make(3).quantize(s, np.array(0.3))
    )


@pytest.mark.parametrize("backend_name", ["numpy", "array_api_strict"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_psq_rows_just_inside_the_dtype_are_quantized_wider_ones_refused_by_name(backend_name, dtype):
    """``max − min`` must fit the working dtype: 0.9·max of one sign fits, 1.2·max across 0 does not."""
    b = get_backend(backend_name)
    top = float(np.finfo(dtype).max)
    q = PSQ(4)
    for ok in (
        [[0.0, 0.3 * top, 0.9 * top]],
        [[-0.9 * top, -0.5 * top, 0.0]],
        [[-0.45 * top, 0.0, 0.45 * top]],
    ):
        x = np.array(ok, dtype=dtype)
        out = b.to_numpy(q.quantize(b.asarray(x), b.asarray(np.full(x.shape, 0.5, dtype=dtype))))
        assert np.all(np.isfinite(out))
    x = np.array([[-0.6 * top, 0.0, 0.6 * top]], dtype=dtype)
    with pytest.raises(NonFiniteInputError, match=r"^PSQ\(bits=4\): a range max − min"):
        q.quantize(b.asarray(x), b.asarray(np.full(x.shape, 0.5, dtype=dtype)))


@pytest.mark.parametrize("make", [PTQ, PerSampleShift], ids=["ptq", "shift"])
@pytest.mark.parametrize("bits", [1, 4])
def test_float64_ranges_below_float32s_smallest_normal_keep_their_own_step(make, bits):
    """A float64 tensor 1e-300 wide gets a step ~1e-300, not float32's smallest normal (1.2e-38)."""
    x = np.array([[-3e-300, 1e-300], [2e-300, 5e-300]])
    q = make(bits)
    _, grid, _ = q._prepare(x)
    assert float(np.max(grid.step)) <= 8e-300 / q.levels * 2


def test_noise_shape_dtype_and_one_sample():
    q = PSQ(4)
    x = np.zeros((2, 3))
    assert q.uniform(x, np.random.default_rng(0), samples=1).shape == (1, 2, 3)
    assert q.uniform(x, np.random.default_rng(0)).dtype == np.float64
    assert q.uniform(x.astype(np.float32), np.random.default_rng(0)).dtype == np.float32


def test_psq_defaults_and_repr():
    assert PSQ().bits == 8 and PSQ().axis == "row"
    assert repr(PSQ(4, axis="channel")) == "PSQ(bits=4, axis='channel')"


@pytest.mark.parametrize("make", [ZeroPSQ, PerSampleShift], ids=["psq-zero", "shift"])
def test_blocked_fast_path_with_per_row_grids_equals_the_reference(make):
    """Above ``fast.SMALL`` elements the fast path goes block by block, with per-row clamp bounds."""
    r = np.random.default_rng(9)
    x = (r.standard_normal((520, 512)) * np.exp(r.standard_normal((520, 1)))).astype(np.float32)
    x[:, :3] = np.abs(x[:, :3]) * np.where(r.random((520, 1)) < 0.5, 1, -1)  # rows mostly of one sign
    x[::7] = np.abs(x[::7])  # positive rows: kmin = 0; others: kmin < 0
    q = make(3)
    np.testing.assert_array_equal(q(x, np.random.default_rng(1)), q.reference(x, np.random.default_rng(1)))

"""refqt.quant: deterministic properties, for every noise draw, on every backend.

Grid membership and range, error ≤ one step, idempotence on grid points,
exact zeros (PTQ), constant rows (PSQ), BHQ's ``T⁻¹T = I`` and group sizes,
permutation equivariance, bad input, dtypes, empty arrays.
"""

import math

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from refqt.backend import emulate_device
from refqt.quant import (
    BHQ,
    PSQ,
    PTQ,
    PerSampleShift,
    block_householder,
    make_gradient_quantizer,
    quantize_forward,
)
from refqt.quant.householder import householder_dense
from refqt.quant.rounding import NoiseStream, noise_codes, uniform_from_codes

QUANTIZERS = [PTQ, PSQ, lambda b: PSQ(b, axis="column"), BHQ, PerSampleShift]
IDS = ["ptq", "psq", "psq-column", "bhq", "shift"]


@st.composite
def gradients(draw, max_rows=9, max_cols=7):
    """Small (N, D) float64 matrices with per-row scales over several decades, some zero entries."""
    n = draw(st.integers(1, max_rows))
    d = draw(st.integers(1, max_cols))
    seed = draw(st.integers(0, 2**32 - 1))
    r = np.random.default_rng(seed)
    x = r.standard_normal((n, d)) * np.exp(r.standard_normal((n, 1)) * 2)
    x[r.random((n, d)) < 0.15] = 0.0
    if draw(st.booleans()):
        x = np.abs(x)
    return x


def _noise(q, x, seed, samples=None):
    return q.uniform(x, np.random.default_rng(seed), samples)


# -- noise and rounding ---------------------------------------------------------------------
def test_noise_stream_split_equals_one_draw():
    whole = noise_codes(np.random.default_rng(3), 23)
    s = NoiseStream(np.random.default_rng(3))
    parts = np.concatenate([s.take(1), s.take(5), s.take(0), s.take(9), s.take(8)])
    np.testing.assert_array_equal(parts, whole)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stochastic_rounding_bias_bound_over_all_noise_codes(dtype):
    """Averaging ⌊y + u⌋ over all 2¹⁶ codes gives E exactly: |E − y| ≤ 2⁻¹⁷ + ½ulp(2^b)."""
    u = uniform_from_codes(np.arange(2**16, dtype=np.uint16), dtype)
    r = np.random.default_rng(0)
    for bits in (4, 8):
        y = (r.random(50) * (2**bits - 1)).astype(dtype)
        mean = np.floor(y[:, None] + u[None, :]).mean(axis=1)
        bound = 2.0**-17 + np.spacing(dtype(2**bits)) / 2
        assert np.max(np.abs(mean - y.astype(np.float64))) <= bound


# -- bad input --------------------------------------------------------------------------------
@pytest.mark.parametrize("make", QUANTIZERS, ids=IDS)
@pytest.mark.parametrize("bits", [0, 17, 2.5, 8.0, True, "8"])
def test_bits_outside_1_16_or_not_integer_rejected(make, bits):
    with pytest.raises(ValueError, match="bits"):
        make(bits)


@pytest.mark.parametrize("make", QUANTIZERS, ids=IDS)
def test_bad_arrays_rejected(make, backend, rng):
    q = make(4)
    with pytest.raises(TypeError, match="float"):
        q(backend.asarray(np.arange(6).reshape(2, 3)), rng)
    for bad in (np.nan, np.inf, -np.inf):
        x = np.ones((3, 4))
        x[1, 2] = bad
        with pytest.raises(ValueError, match=type(q).__name__ + r".*NaN or Inf"):
            q(backend.asarray(x), rng)


@pytest.mark.parametrize("make", QUANTIZERS, ids=IDS)
@pytest.mark.parametrize(
    "x", [np.array([[1e-38, 3e-38, -2e-38]], np.float32), np.array([[1e-310, 3e-310, -2e-310]])]
)
def test_vanishing_ranges_stay_finite(make, x, backend):
    """A range so small that 1/step would overflow (vanishing gradients) gives finite values on a grid
    covering it: the step is raised to the smallest normal number. (It used to give NaN.)"""
    q = make(8)
    out = backend.to_numpy(q(backend.asarray(x), np.random.default_rng(0)))
    assert np.all(np.isfinite(out)) and out.dtype == x.dtype
    ref = q.reference(backend.asarray(x), np.random.default_rng(0))
    np.testing.assert_array_equal(out, backend.to_numpy(ref))
    assert np.all(np.abs(out - x) <= 2 * np.finfo(x.dtype).smallest_normal)  # within one (raised) step
    for kind in ("affine", "zero_aligned"):
        assert np.all(np.isfinite(backend.to_numpy(quantize_forward(backend.asarray(x), 8, kind))))


@pytest.mark.parametrize("make", [*QUANTIZERS, lambda b: _Forward(b, "affine")], ids=[*IDS, "forward"])
def test_ranges_too_wide_for_the_dtype_are_refused(make):
    """max − min beyond the dtype's largest number would make x − lo Inf: a clear error, no NaN."""
    q = make(4)
    wide64 = np.array([[1e308, -1e308], [-1e308, 1e308]])  # every row and column spans 2e308
    with pytest.raises(ValueError, match=r"overflows float64"):
        q(wide64, np.random.default_rng(0))
    # 6e38 overflows float32 in x − min (PSQ rows, the affine forward grid); zero-aligned grids
    # (PTQ, shift) compute x·inv with no subtraction, and BHQ's rotation narrows the rows: fine
    wide32 = np.array([[3e38, -3e38], [-3e38, 3e38]], np.float32)
    if isinstance(q, PSQ | _Forward):
        with pytest.raises(ValueError, match=r"overflows float32"):
            q(wide32, np.random.default_rng(0))
    else:
        assert np.all(np.isfinite(q(wide32, np.random.default_rng(0))))


class _Forward:
    """The forward quantizer called like a gradient quantizer, for the tests above."""

    def __init__(self, bits, kind):
        self.bits, self.kind = bits, kind

    def __call__(self, x, rng):
        return quantize_forward(x, self.bits, self.kind)


@pytest.mark.parametrize("make", QUANTIZERS, ids=IDS)
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_dtype_and_shape_kept_empty_ok(make, dtype, backend, rng):
    if not hasattr(backend.xp, dtype):
        pytest.skip(f"{backend.name} has no {dtype}")
    q = make(5)
    x = backend.asarray(np.random.default_rng(1).standard_normal((4, 3, 2)), dtype=backend.dtype(dtype))
    out = q(x, rng)
    assert out.dtype == x.dtype and tuple(out.shape) == (4, 3, 2)
    for shape in [(0, 3), (3, 0), (0,)]:
        e = backend.asarray(np.zeros(shape), dtype=backend.dtype(dtype))
        out = q(e, rng)
        assert tuple(out.shape) == shape and out.dtype == e.dtype
        assert q.conditional_variance(e) == 0.0


def test_factory_names():
    for name in ("ptq", "psq", "psq-column", "bhq", "shift"):
        q = make_gradient_quantizer(name, 6)
        assert q.name == name and q.bits == 6 and q.levels == 63
    with pytest.raises(ValueError, match="unknown"):
        make_gradient_quantizer("nope", 4)


# -- grid, range, one step, idempotence -------------------------------------------------------
# a row whose maximum is exactly 0: its top level lo + B·step lands within round-off of 0, either side
ROW_MAX_ZERO = np.array([[0.04233527, -0.04448171], [0.0, -0.12292057180858407], [-9.58460949, 0.63550394]])


@pytest.mark.parametrize("make", QUANTIZERS, ids=IDS)
@given(x=gradients(), bits=st.integers(1, 8), seed=st.integers(0, 1000))
@example(x=ROW_MAX_ZERO, bits=3, seed=0)
def test_on_grid_inside_range_within_one_step_idempotent(make, x, bits, seed):
    q = make(bits)
    u = _noise(q, x, seed, samples=3)
    enc = q.encode(x, u)
    y, grid, _ = q._prepare(x)
    k = np.asarray(enc.codes, dtype=np.float64) + grid.kmin
    yhat = grid.values(k)
    # on the grid and inside it
    assert enc.codes.max() <= q.levels
    # within one step of the rounded matrix (Y = T x for BHQ), and inside y's range
    assert np.all(np.abs(yhat - y) <= grid.step * (1 + 1e-9))
    lo_y, hi_y = y.min(axis=1, keepdims=True), y.max(axis=1, keepdims=True)
    if q.name in ("psq", "bhq"):  # up to round-off of the row's magnitude (a bound of 0 is no scale)
        size = np.maximum(np.abs(lo_y), np.abs(hi_y))
        assert np.all(yhat >= lo_y - 1e-12 * size) and np.all(yhat <= hi_y + 1e-9 * size)
    # idempotent: rounding grid points onto the same grid gives them back, for any noise
    again = grid.round(grid.scaled(yhat), _noise(q, x, seed + 1, samples=3))
    np.testing.assert_array_equal(again, k)
    # the output: within one step per element (PSQ/PTQ/shift), equal to decode(encode)
    out = q.quantize(x, u)
    np.testing.assert_array_equal(out, q.decode(enc))
    if q.name != "bhq":
        assert np.all(np.abs(out - x) <= np.broadcast_to(grid.step, x.shape) * (1 + 1e-9) + 1e-300)


@pytest.mark.parametrize("make", [PTQ, PerSampleShift], ids=["ptq", "shift"])
@given(x=gradients(), bits=st.integers(1, 16), seed=st.integers(0, 1000))
def test_zeros_stay_exactly_zero(make, x, bits, seed):
    q = make(bits)
    if bits == 1 and x.min() < 0 < x.max():
        return  # no 2-level grid holds 0 and both signs (documented fallback)
    out = q.quantize(x, _noise(q, x, seed, samples=4))
    assert np.all(out[:, x == 0] == 0)


@pytest.mark.parametrize(
    "x",
    [
        np.array([[0.0, 1.0, 3.0]]),  # no negative entry: the authors' formula divides by zero
        np.array([[0.0, -1.0, -3.0]]),  # no positive entry
        np.array([[0.0, -1e-6, 3.0]]),  # negative side narrower than one step
        np.zeros((2, 3)),
    ],
)
@pytest.mark.parametrize("bits", [1, 2, 8, 16])
def test_ptq_one_sided_and_degenerate_tensors(x, bits, backend, rng):
    q = PTQ(bits)
    xb = backend.asarray(x)
    out = backend.to_numpy(q(xb, rng))
    assert np.all(np.isfinite(out))
    if bits > 1 or not x.min() < 0 < x.max():  # 1 bit and both signs: no zero-aligned grid exists
        assert np.all(out[x == 0] == 0)
    assert q.conditional_variance(xb) <= q.variance_bound(xb) * (1 + 1e-12)


@pytest.mark.parametrize("bits", [1, 2, 8])
def test_zero_aligned_grid_when_the_positive_side_is_below_round_off(bits):
    """−mn·B/(mx − mn) rounds to B when mx ≪ −mn: q0 = B would leave no level above 0 (and divide
    by zero); it is B − 1 (1 bit: the min/max fallback), and the grid still covers [mn, mx]."""
    from refqt.quant.grid import zero_aligned_params

    levels = 2**bits - 1
    lo, step, kmin = zero_aligned_params(-1.0, 1e-20, levels)
    assert lo + kmin * step <= -1.0 and lo + (kmin + levels) * step >= 1e-20 - 1e-15  # up to round-off
    x = np.array([[-1.0, 1e-20, 0.0]])
    out = PTQ(bits)(x, np.random.default_rng(0))
    assert np.all(np.isfinite(out)) and (bits == 1 or out[0, 2] == 0.0)


@given(x=gradients(), bits=st.integers(1, 16), seed=st.integers(0, 1000))
def test_psq_constant_rows_unchanged(x, bits, seed):
    x = np.concatenate([np.full((1, x.shape[1]), 2.5), x, np.zeros((1, x.shape[1]))])
    q = PSQ(bits)
    out = q.quantize(x, _noise(q, x, seed, samples=2))
    assert np.all(out[:, 0] == 2.5) and np.all(out[:, -1] == 0.0)


# -- BHQ transform -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "spans",
    [
        [3.0],
        [1.0, 2.0],
        [5.0, 5.0],
        [0.0, 0.0, 0.0],
        [1.0] * 7,
        [1000.0] + [1.0] * 31,
        list(np.exp(np.random.default_rng(0).standard_normal(40) * 2)),
        [0.0, 0.0, 4.0, 0.0],
    ],
)
def test_bhq_inverse_times_transform_is_identity(spans):
    t = block_householder(np.array(spans))
    assert sorted(np.concatenate(t.groups).tolist()) == list(range(len(spans)))
    np.testing.assert_allclose(t.inverse_matrix() @ t.matrix(), np.eye(len(spans)), atol=1e-12)
    cols = np.sum(t.inverse_matrix() ** 2, axis=0)
    np.testing.assert_allclose(t.inverse_column_norms_sq(), cols, rtol=1e-12)


def test_householder_block_entries():
    for g in (2, 3, 5, 16):
        h = householder_dense(g)
        np.testing.assert_allclose(h @ h, np.eye(g), atol=1e-13)
        np.testing.assert_allclose(h[:, 0], np.full(g, 1 / math.sqrt(g)))
        np.testing.assert_allclose(h[1, 1], 1 - 1 / (g - math.sqrt(g)))


@given(st.lists(st.floats(1e-3, 1e3), min_size=3, max_size=60))
def test_bhq_group_sizes_proportional_to_ranges(spans):
    t = block_householder(np.array(spans))
    lam = t.ranges
    large = np.array([g[0] for g in t.groups])
    z = len(spans) - t.n_large
    share = z * lam[large] / lam[large].sum()
    partners = t.group_sizes - 1
    assert np.all(partners >= 1) and partners.sum() == z
    assert np.all(np.abs(np.cumsum(partners) - np.cumsum(share)) <= 0.5 + 1e-9)  # c_i = round(cumsum)
    # the large rows are the K largest, larger groups go with larger rows
    assert lam[large].min() >= np.delete(lam, large).max()
    assert np.all(np.diff(partners) <= 1)


def test_bhq_edge_cases_run(rng):
    q = BHQ(4)
    for x in [np.ones((1, 5)), np.ones((2, 5)), np.zeros((4, 3)), np.full((5, 2), -3.0)]:
        out = q(x, rng)
        np.testing.assert_allclose(out, x, atol=1e-12)  # every row of T x is constant: exact
        assert q.conditional_variance(x) <= 1e-20
    x = np.tile(np.arange(5.0), (6, 1))  # all rows equal (not constant): ties in the sort
    assert np.all(np.isfinite(q(x, rng)))
    assert q.conditional_variance(x) <= q.variance_bound(x)


# -- equivariance and backends ------------------------------------------------------------------
@pytest.mark.parametrize("make", QUANTIZERS, ids=IDS)
@given(x=gradients(max_rows=8), seed=st.integers(0, 1000))
def test_permutation_equivariance_over_rows(make, x, seed):
    spans = x.max(axis=1) - x.min(axis=1)
    if len(np.unique(spans)) < len(spans):
        return  # ties make BHQ's sort order (and so its groups) index-dependent
    q = make(3)
    perm = np.random.default_rng(seed).permutation(x.shape[0])
    u = _noise(q, x, seed)
    np.testing.assert_allclose(q.quantize(x[perm], u[perm]), q.quantize(x, u)[perm], rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("make", QUANTIZERS, ids=IDS)
def test_every_backend_gives_the_same_numbers(make, backend):
    x = (
        np.random.default_rng(5).standard_normal((6, 2, 3))
        * np.array([1, 10, 0.1, 5, 1e-3, 2])[:, None, None]
    )
    q = make(4)
    with emulate_device(backend.name == "cupy"):  # CuPy: the device path, counter noise (refqt/gpu/noise.py)
        ref = q(x, np.random.default_rng(9))
    got = backend.to_numpy(q(backend.asarray(x), np.random.default_rng(9)))
    if backend.name == "cupy" and q.name == "bhq":  # T's group sums: cuBLAS vs NumPy GEMM, round-off
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-300)
    else:
        np.testing.assert_array_equal(got, ref)


# -- PSQ per channel ---------------------------------------------------------------------------
def conv_gradient(shape=(5, 3, 4, 2), seed=0):
    """An (N, C, H, W) array with channel scales over several decades and some exact zeros."""
    r = np.random.default_rng(seed)
    x = r.standard_normal(shape) * np.exp(2 * r.standard_normal((1, shape[1], 1, 1)))
    x[r.random(shape) < 0.1] = 0.0
    return x


@pytest.mark.parametrize("bits", [1, 4, 8])
def test_psq_channel_is_psq_column_of_the_transposed_matrix(bits):
    """Per channel on (N, C, H, W) == per column on (N·H·W, C), element by element, for the same noise."""
    x = conv_gradient(seed=bits)
    n, c, h, w = x.shape
    q = PSQ(bits, axis="channel")
    u = _noise(q, x, bits, samples=2)

    def as_columns(a):  # (..., N, C, H, W) -> (..., N·H·W, C)
        return np.moveaxis(a, -3, -1).reshape(*a.shape[:-4], n * h * w, c)

    want = q.quantize(as_columns(x), as_columns(u))
    np.testing.assert_array_equal(as_columns(q.quantize(x, u)), want)
    np.testing.assert_allclose(
        as_columns(q.elementwise_variance(x)), q.elementwise_variance(as_columns(x)), rtol=1e-12, atol=0
    )
    assert q.variance_bound(x) == pytest.approx(q.variance_bound(as_columns(x)), rel=1e-12)
    assert q.conditional_variance(x) == pytest.approx(q.conditional_variance(as_columns(x)), rel=1e-12)


def test_psq_channel_grid_spans_each_channel():
    """Every channel's outputs lie inside its own [min, max]; a constant channel is kept exactly."""
    x = conv_gradient((6, 4, 3, 3), seed=3)
    x[:, 2] = -1.5
    q = PSQ(3, axis="channel")
    out = q.quantize(x, _noise(q, x, 0, samples=5))
    lo, hi = x.min(axis=(0, 2, 3)), x.max(axis=(0, 2, 3))
    per_channel = np.moveaxis(out, 2, 0).reshape(x.shape[1], -1)  # (C, samples·N·H·W)
    assert np.all(per_channel.min(axis=1) >= lo) and np.all(per_channel.max(axis=1) <= hi + 1e-9 * np.abs(hi))
    assert np.all(out[:, :, 2] == -1.5)


def test_psq_column_and_channel_are_one_quantizer():
    x = conv_gradient(seed=1)
    a, b = PSQ(4, axis="column"), PSQ(4, axis="channel")
    assert a.name == b.name == "psq-column" == make_gradient_quantizer("psq-column").name
    np.testing.assert_array_equal(a(x, np.random.default_rng(2)), b(x, np.random.default_rng(2)))
    with pytest.raises(ValueError, match="axis"):
        PSQ(4, axis="sample")


# -- out= ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", QUANTIZERS, ids=IDS)
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_out_argument_writes_the_same_numbers(make, dtype, backend):
    if not hasattr(backend.xp, dtype):
        pytest.skip(f"{backend.name} has no {dtype}")
    q = make(4)
    x = backend.asarray(conv_gradient(), dtype=backend.dtype(dtype))
    want = backend.to_numpy(q(x, np.random.default_rng(4)))
    buf = backend.xp.zeros_like(x)
    assert q(x, np.random.default_rng(4), out=buf) is buf
    np.testing.assert_array_equal(backend.to_numpy(buf), want)
    same = backend.xp.asarray(x, copy=True)
    assert q(same, np.random.default_rng(4), out=same) is same  # in place
    np.testing.assert_array_equal(backend.to_numpy(same), want)


def test_out_argument_must_fit():
    q = PSQ(4)
    x = conv_gradient()
    for bad in (np.empty(x.shape, np.float32), np.empty(x.shape[::-1]), np.empty((5, 3, 4, 4))[..., ::2]):
        with pytest.raises(ValueError, match=r"PSQ\(bits=4\): out= must be"):
            q(x, np.random.default_rng(0), out=bad)


@pytest.mark.parametrize("make", QUANTIZERS, ids=IDS)
def test_non_arrays_and_wrong_generators_name_the_quantizer(make):
    from refqt import Tensor

    q, x, rng = make(4), np.ones((2, 3)), np.random.default_rng(0)
    name = type(q).__name__
    with pytest.raises(TypeError, match=rf"{name}\(bits=4.*expected a NumPy, CuPy or array_api_strict array"):
        q([[1.0, 2.0]], rng)
    with pytest.raises(TypeError, match=r"got Tensor \(a refqt Tensor: pass tensor.data\)"):
        q(Tensor(x), rng)
    for bad in (None, 3, np.random.RandomState(0)):
        with pytest.raises(TypeError, match=rf"{name}\(bits=4.*rng must be a numpy.random.Generator"):
            q(x, bad)
    with pytest.raises(ValueError, match=r"out= must be a contiguous array like x .* \(not an array\)"):
        q(x, rng, out=[[0.0] * 3] * 2)
    with pytest.raises(TypeError, match=r"quantize_forward\(bits=8.*got list"):
        quantize_forward([[1.0, 2.0]])


def test_noise_arguments_checked():
    q, x = PSQ(4), np.ones((2, 3))
    for samples in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match=r"PSQ\(bits=4\)\.uniform: samples must be None or an integer"):
            q.uniform(x, np.random.default_rng(0), samples=samples)
    with pytest.raises(TypeError, match=r"PSQ\(bits=4\): noise u: expected a float16/float32/float64 array"):
        q.quantize(x, np.zeros((2, 3), dtype=np.int64))


# -- forward quantizers and STE ----------------------------------------------------------------
@pytest.mark.parametrize("kind", ["affine", "zero_aligned"])
@given(x=gradients(), bits=st.integers(1, 16))
def test_forward_quantizer_rounds_to_nearest(kind, x, bits):
    out = quantize_forward(x, bits, kind)
    from refqt.quant import forward_grid

    grid = forward_grid(x, bits, kind)
    assert np.all(np.abs(out - x) <= grid.step * (0.5 + 1e-9))
    if kind == "affine":  # its grid is found again from the output: idempotent
        np.testing.assert_array_equal(quantize_forward(out, bits, kind), out)
    if kind == "zero_aligned" and not (bits == 1 and x.min() < 0 < x.max()):
        assert np.all(out[x == 0] == 0)


@given(
    lo=st.floats(-1e30, 1e30),
    width=st.one_of(st.just(0.0), st.floats(1e-44, 1e-30), st.floats(1e-30, 1e30)),
    bits=st.integers(1, 16),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_tensor_minmax_grid_equals_the_array_grid(lo, width, bits, dtype):
    """The forward quantizers' scalar grid builder gives minmax_grid's numbers, bit for bit."""
    from refqt.backend import namespace
    from refqt.quant.grid import minmax_grid, tensor_minmax_grid

    mn = np.asarray(lo, dtype=dtype)
    mx = np.asarray(lo + width, dtype=dtype)
    xp = namespace(mn)
    want = minmax_grid(mn.reshape(1, 1), mx.reshape(1, 1), 2**bits - 1, dtype)
    got = tensor_minmax_grid(float(mn), float(mx), 2**bits - 1, xp, dtype)
    for field in ("step", "inv_step", "kmin", "kmax", "lo"):
        a, b = getattr(got, field), getattr(want, field)
        assert a.shape == b.shape == (1, 1) and a.dtype == b.dtype, field
        np.testing.assert_array_equal(a, b, err_msg=field)


def test_forward_quantizer_backends_and_errors(backend):
    x = np.random.default_rng(2).standard_normal((3, 4, 5)).astype(np.float32)
    for kind in ("affine", "zero_aligned"):
        got = backend.to_numpy(quantize_forward(backend.asarray(x), 6, kind))
        np.testing.assert_array_equal(got, quantize_forward(x, 6, kind))
    with pytest.raises(ValueError, match="kind"):
        quantize_forward(backend.asarray(x), 8, "log")
    with pytest.raises(ValueError, match="bits"):
        quantize_forward(backend.asarray(x), 0)
    with pytest.raises(ValueError, match="NaN"):
        quantize_forward(backend.asarray(np.array([1.0, np.nan])), 8)
    empty = backend.asarray(np.zeros((0, 2)))  # checked even though there is nothing to round
    with pytest.raises(ValueError, match="bits"):
        quantize_forward(empty, 99)
    with pytest.raises(ValueError, match="kind"):
        quantize_forward(empty, 8, "bogus")
    with pytest.raises(TypeError, match="float"):
        quantize_forward(backend.asarray(np.zeros((0, 2), dtype=np.int64)), 8)


def test_fake_quant_forward_quantizes_backward_passes_straight_through():
    from refqt.quant import fake_quant
    from refqt.tensor import Tensor

    x = Tensor(np.linspace(-1, 1, 7), requires_grad=True)
    y = fake_quant(x, bits=2)
    np.testing.assert_array_equal(y.data, quantize_forward(x.data, 2))
    y.backward(np.arange(7.0))
    np.testing.assert_array_equal(x.grad, np.arange(7.0))

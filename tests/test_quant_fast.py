"""The NumPy fast paths against the plain reference path, with the same random bits.

``q(x, rng)`` on NumPy runs the fast spellings (:mod:`refqt.quant.fast`,
:func:`refqt.quant.householder_fast.apply_transform_fast`): the whole-array one for
arrays of at most ``fast.SMALL`` elements, chunked in-place kernels above;
``q.reference(x, rng)`` runs the array-API code on whole arrays. For the same
generator state both must agree bit for bit. ``SMALL = 0`` sends the small
test arrays through the blocked spelling, and small chunk sizes make them
cross every kind of block boundary (pieces of a row, several rows per block,
several column blocks per Householder group).
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refqt.quant import BHQ, PSQ, PTQ, PerSampleShift, fast, householder, householder_fast, quantize_forward
from refqt.quant.forward import quantize_forward_reference

QUANTIZERS = [PTQ, PSQ, lambda b: PSQ(b, axis="column"), BHQ, PerSampleShift]
IDS = ["ptq", "psq", "psq-column", "bhq", "shift"]


@pytest.fixture(
    params=[None, 1 << 15, 8, 64], ids=["whole-array", "chunk-default", "chunk-8", "chunk-64"]
)
def small_chunks(request, monkeypatch):
    """``None``: the whole-array spelling; a chunk size: the blocked spelling with that chunk."""
    if request.param is not None:
        monkeypatch.setattr(fast, "SMALL", 0)
        monkeypatch.setattr(fast, "CHUNK", request.param)
        monkeypatch.setattr(householder_fast, "BLOCK_ELEMENTS", max(4, request.param // 2))
    return request.param


@pytest.mark.parametrize("make", QUANTIZERS, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("shape", [(7, 5), (3, 2, 19), (33, 1), (1, 70), (4, 3, 5, 2)])
def test_fast_equals_reference_bit_for_bit(make, dtype, shape, small_chunks):
    r = np.random.default_rng(sum(shape))
    x = r.standard_normal(shape) * np.exp(2 * r.standard_normal((shape[0],) + (1,) * (len(shape) - 1)))
    x = x.astype(dtype)
    x[r.random(shape) < 0.1] = 0
    for bits in (1, 4, 8, 16):
        q = make(bits)
        got = q(x, np.random.default_rng(bits))
        want = q.reference(x, np.random.default_rng(bits))
        assert got.dtype == x.dtype
        np.testing.assert_array_equal(got, want, err_msg=f"{q} {dtype.__name__} {shape}")


@pytest.mark.parametrize("kind", ["affine", "zero_aligned"])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_forward_fast_equals_reference(kind, dtype, small_chunks):
    x = np.random.default_rng(1).standard_normal((5, 3, 7)).astype(dtype)
    for bits in (1, 3, 8, 16):
        np.testing.assert_array_equal(
            quantize_forward(x, bits, kind), quantize_forward_reference(x, bits, kind)
        )


@pytest.mark.parametrize("make", QUANTIZERS, ids=IDS)
def test_fast_path_into_out_and_in_place_equals_reference(make, small_chunks):
    x = np.random.default_rng(6).standard_normal((6, 4, 3, 5)).astype(np.float32)
    q = make(5)
    want = q.reference(x, np.random.default_rng(1))
    out = np.full_like(x, np.nan)
    np.testing.assert_array_equal(q(x, np.random.default_rng(1), out=out), want)
    np.testing.assert_array_equal(q(x, np.random.default_rng(1), out=x), want)


@pytest.mark.parametrize("dominant", [1.0, 1e3])
def test_bhq_small_matrix_all_groups_at_once_equals_reference(dominant):
    """Small (N, D): the transform runs on every group at once; large groups (one dominant row) too."""
    x = np.random.default_rng(7).standard_normal((96, 6)).astype(np.float32)
    x *= np.exp(np.random.default_rng(8).standard_normal((96, 1))).astype(np.float32)
    x[3] *= dominant
    t = BHQ(4).transform(x)
    assert t.group_sizes.max() >= 3
    np.testing.assert_array_equal(
        BHQ(4)(x, np.random.default_rng(2)), BHQ(4).reference(x, np.random.default_rng(2))
    )


def test_fast_paths_keep_the_generator_in_step():
    """Both paths advance the generator by the same ceil(N·D/4) raw draws."""
    x = np.random.default_rng(0).standard_normal((5, 7))
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    BHQ(4)(x, a)
    BHQ(4).reference(x, b)
    assert a.bit_generator.random_raw() == b.bit_generator.random_raw()


def test_row_ranges_fast(small_chunks):
    x = np.random.default_rng(2).standard_normal((9, 13)).astype(np.float32)
    mins, maxs = fast.row_ranges(x)
    np.testing.assert_array_equal(mins, x.min(axis=1))
    np.testing.assert_array_equal(maxs, x.max(axis=1))


@given(
    st.integers(1, 300),
    st.integers(1, 40),
    st.floats(0.0, 4.0),
    st.sampled_from([1.0, 1e2, 1e5]),
    st.sampled_from([4, 64, 1 << 17]),
    st.integers(0, 2**32 - 1),
)
def test_bhq_fast_transform_equals_reference_on_drawn_groupings(n, d, spread, dominant, block, seed):
    """Many shapes of groups (few large, many small, runs of equal sizes), blocks of any width."""
    r = np.random.default_rng(seed)
    x = (r.standard_normal((n, d)) * np.exp(spread * r.standard_normal((n, 1)))).astype(np.float32)
    x[0] *= dominant
    x[r.random((n, d)) < 0.1] = 0
    t = BHQ(4).transform(x)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(householder_fast, "BLOCK_ELEMENTS", block)
        for inverse in (False, True):
            got = np.full_like(x, np.nan)
            householder_fast.apply_transform_fast(t, x, got, inverse=inverse)
            np.testing.assert_array_equal(got, householder.apply_transform(t, x, inverse=inverse))
        np.testing.assert_array_equal(
            BHQ(4)(x, np.random.default_rng(1)), BHQ(4).reference(x, np.random.default_rng(1))
        )


@pytest.mark.parametrize("shape", [(768, 32), (5, 64), (300, 65), (1, 1)])
def test_row_ranges_equal_numpy_for_short_and_long_rows(shape):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    mins, maxs = fast.row_ranges(x)
    np.testing.assert_array_equal(mins, x.min(axis=1))
    np.testing.assert_array_equal(maxs, x.max(axis=1))


@pytest.mark.parametrize("shape", [(128, 1024), (3, 200_000), (1, 1), (600, 7)])
def test_column_ranges_equal_numpy(shape):
    """Per-column ranges over blocks of columns (one or several) equal NumPy's min/max along axis 0."""
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    mins, maxs = fast.column_ranges(x)
    np.testing.assert_array_equal(mins, x.min(axis=0))
    np.testing.assert_array_equal(maxs, x.max(axis=0))


@pytest.mark.parametrize("shape", [(5, 3, 4, 4), (3, 2, 9, 9), (4, 6)])
def test_psq_channel_ranges_by_either_order(shape):
    """Short channels (S ≤ 64) are reduced over samples first, long ones per (sample, channel) row first."""
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    q = PSQ(8, axis="channel")
    mins, maxs = q._channel_ranges(x.reshape(shape[0], -1), True, shape)
    axes = (0, *range(2, len(shape)))
    np.testing.assert_array_equal(mins, x.min(axis=axes))
    np.testing.assert_array_equal(maxs, x.max(axis=axes))
    np.testing.assert_array_equal(q(x, np.random.default_rng(1)), q.reference(x, np.random.default_rng(1)))


def _drawn_input(shape: tuple[int, ...], dtype: type, seed: int, zeros: float, spread: float) -> np.ndarray:
    r = np.random.default_rng(seed)
    scale = np.exp(spread * r.standard_normal((shape[0],) + (1,) * (len(shape) - 1)))
    x = (r.standard_normal(shape) * scale).astype(dtype)
    x[r.random(shape) < zeros] = 0
    return x


SHAPES = st.one_of(
    st.tuples(st.integers(1, 700), st.integers(1, 70)),
    st.tuples(st.integers(1, 40), st.integers(1, 20), st.integers(1, 9), st.integers(1, 9)),
    st.tuples(st.integers(1, 50), st.integers(1, 6), st.integers(1, 30)),
)


@given(
    SHAPES,
    st.sampled_from(IDS),
    st.sampled_from([np.float16, np.float32, np.float64]),
    st.sampled_from([1, 2, 4, 5, 8, 16]),
    st.integers(0, 2**32 - 1),
    st.sampled_from([0.0, 0.3]),
    st.sampled_from([0.0, 2.0]),
    st.booleans(),
)
def test_whole_array_and_blocked_spellings_equal_reference_on_drawn_shapes(
    shape, name, dtype, bits, seed, zeros, spread, blocked
):
    """Same seed, same result: either fast spelling against the reference, on random shapes and inputs."""
    q = QUANTIZERS[IDS.index(name)](bits)
    x = _drawn_input(shape, dtype, seed, zeros, spread)
    with pytest.MonkeyPatch.context() as patch:
        if blocked:
            patch.setattr(fast, "SMALL", 0)
        got = q(x, np.random.default_rng(seed))
    want = q.reference(x, np.random.default_rng(seed))
    assert got.dtype == x.dtype
    np.testing.assert_array_equal(got, want, err_msg=f"{q} {np.dtype(dtype).name} {shape}")


@pytest.mark.parametrize("shape", [(640, 32), (640, 64), (32, 16, 8, 8), (128, 32, 8, 8)])
@pytest.mark.parametrize("make", QUANTIZERS, ids=IDS)
def test_teaching_shapes_take_the_whole_array_spelling_and_equal_reference(shape, make):
    """The benchmark's shapes are small (one spelling for all of them), and agree with the reference."""
    assert fast.is_small(int(np.prod(shape)))
    x = _drawn_input(shape, np.float32, 3, 0.05, 1.0)
    q = make(5)
    np.testing.assert_array_equal(q(x, np.random.default_rng(4)), q.reference(x, np.random.default_rng(4)))


@pytest.mark.parametrize("n", [1, 2, 3, 7, 640, 641])
def test_folded_column_ranges_equal_numpy(n):
    """Halving the rows (odd counts keep their last row) gives NumPy's column min and max."""
    x = np.random.default_rng(n).standard_normal((n, 32)).astype(np.float32)
    mins, maxs = fast.column_ranges(x)
    np.testing.assert_array_equal(mins, x.min(axis=0))
    np.testing.assert_array_equal(maxs, x.max(axis=0))

"""BHQ's whole-array transform (position-major rows) adds each group's rows in the reference's order.

:func:`refqt.quant.householder_small.transform_position_major` sums a run of row
positions with one ``np.add.reduce`` over axis 0 of a C-contiguous stack
(:func:`~refqt.quant.householder_small.sum_in_order`). That it adds whole slices
in order ``((s_0 + s_1) + s_2) + …`` is how NumPy's reduction works, not a
documented promise. The values here are chosen so that the order shows: in
float32 ``2²⁴ + 1`` rounds back to ``2²⁴``, so a group's column
``1, 2²⁴, 1, …, 1, −2²⁴`` sums to 0 in order and to at least 1 in any order
that adds two ones together first (pairwise) or starts from the end.
A NumPy that summed otherwise fails these tests; the last one shows that
such a summation is caught.
"""

import math

import numpy as np
import pytest
from test_quant_grouping import grouping_loop

from refqt.quant import BHQ, householder, householder_small
from refqt.quant.householder import BlockHouseholder, apply_transform, block_householder, partner_counts
from refqt.quant.householder_fast import apply_transform_fast


def groups_of(sizes: list[int], seed: int = 0) -> list[np.ndarray]:
    """Groups of the given sizes over a shuffled set of rows."""
    rows = np.random.default_rng(seed).permutation(sum(sizes))
    return np.split(rows, np.cumsum(sizes)[:-1])


def adversarial_rows(groups: list[np.ndarray], d: int, dtype: type) -> np.ndarray:
    """(N, D) rows; in every other column each group of G ≥ 3 rows reads ``1, 2^p, 1, …, 1, −2^p``.

    ``p`` = mantissa bits + 1, so ``2^p + 1`` rounds to ``2^p``: added in
    order the column sums to 0, while any order that adds two of its ones
    together, or the ``±2^p`` before a one, gives at least 1. The first row
    is small so that the sum's error shows in ``β`` and in every output row.
    The other columns hold plain normal values.
    """
    big = 2.0 ** (np.finfo(dtype).nmant + 1)
    y = np.random.default_rng(1).standard_normal((sum(g.size for g in groups), d)).astype(dtype)
    for idx in groups:
        if idx.size >= 3:
            col = np.ones(idx.size)
            col[1], col[-1] = big, -big
            y[idx, ::2] = col[:, None]
    return y


def bits(a: np.ndarray) -> np.ndarray:
    """The bit patterns of ``a`` (tells −0 from +0, unlike ``assert_array_equal``)."""
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)


# group sizes: one group; one run of equal sizes (the first run, summed in place); a second run of
# positions long enough to be stacked with the sums so far; single positions; groups of one row
SIZES = [[12], [6] * 5, [12, 12] + [5] * 6, [12, 5, 5, 4, 3, 2], [9, 1, 1, 6], [20, 7]]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("d", [1, 2, 33])
@pytest.mark.parametrize("sizes", SIZES, ids=str)
def test_inverse_transform_sums_each_group_in_order(sizes, d, dtype):
    """``T⁻¹`` sums the rows as given (no pre-scale), so the adversarial columns reach the sums intact."""
    groups = groups_of(sizes)
    n = sum(sizes)
    scales = np.exp(np.random.default_rng(2).standard_normal(n))
    t = BlockHouseholder(groups, scales, np.ones(n), len(groups))
    y = adversarial_rows(groups, d, dtype)
    want = apply_transform(t, y, inverse=True)
    got = np.empty_like(y)
    apply_transform_fast(t, y, got, inverse=True)
    np.testing.assert_array_equal(bits(got), bits(want))


def reversed_order(stack: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The last slice first: a reversed copy (on a reversed view NumPy 2.0 walks memory forwards)."""
    return np.add.reduce(np.ascontiguousarray(stack[::-1]), axis=0, out=out)


def pairwise_order(stack: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """NumPy's order along the fast axis: pairwise (eight partial sums) from nine terms on."""
    return np.add.reduce(np.ascontiguousarray(np.moveaxis(stack, 0, -1)), axis=-1, out=out)


@pytest.mark.parametrize(
    "wrong, sizes",
    [(reversed_order, sizes) for sizes in SIZES] + [(pairwise_order, [20, 7]), (pairwise_order, [16] * 3)],
)
def test_sums_in_another_order_are_caught(wrong, sizes, monkeypatch):
    """The checks above fail when a stack of rows is summed in another order."""
    groups = groups_of(sizes)
    n = sum(sizes)
    t = BlockHouseholder(groups, np.ones(n), np.ones(n), len(groups))
    y = adversarial_rows(groups, 1, np.float32)
    want = apply_transform(t, y, inverse=True)
    monkeypatch.setattr(householder_small, "sum_in_order", wrong)
    got = np.empty_like(y)
    apply_transform_fast(t, y, got, inverse=True)
    assert not np.array_equal(got, want)


@pytest.mark.parametrize("shape", [(640, 32), (200, 1), (31, 7), (1, 5), (2, 1)])
def test_quantizer_with_one_dominant_row_equals_reference_to_the_bit(shape):
    """One huge row makes one long group (a long run of single-group positions, m·D = D)."""
    r = np.random.default_rng(3)
    x = r.standard_normal(shape).astype(np.float32)
    x[0] *= 1e4
    x[r.random(shape) < 0.05] = -0.0
    for b in (2, 5, 8):
        got = BHQ(b)(x, np.random.default_rng(b))
        want = BHQ(b).reference(x, np.random.default_rng(b))
        np.testing.assert_array_equal(bits(got), bits(want))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(3, 2, 2), (5, 1, 2), (2, 4, 3)])
def test_sum_in_order_keeps_the_sign_of_an_all_negative_zero_sum(shape, dtype):
    """((−0 + −0) + −0) is −0; a reduction started from +0 (NumPy's default) gives +0."""
    stack = np.full(shape, -0.0, dtype=dtype)
    stack[:, 0, 0] = [1.0] + [-1.0] + [0.0] * (shape[0] - 2)  # one column that sums to +0 in order
    want = stack[0].copy()
    for s in stack[1:]:
        want = want + s
    got = householder_small.sum_in_order(stack)
    np.testing.assert_array_equal(bits(got), bits(want))
    assert np.signbit(got).sum() == got.size - 1


@pytest.mark.parametrize("largest", [10, householder.SIZES_KEPT + 5])
def test_size_table_holds_each_sizes_numbers_whether_kept_or_built_per_call(largest):
    """Each column is the per-group formula; a table past ``SIZES_KEPT`` is not kept (memory bounded)."""
    table = householder.size_table(largest)
    sizes = np.array([2, 3, 7, largest])
    g = sizes.astype(np.float64)
    root = np.sqrt(g)
    np.testing.assert_array_equal(table["root"][sizes], root)
    np.testing.assert_array_equal(table["n_rest"][sizes], 1.0 / root)
    np.testing.assert_array_equal(table["n_first"][sizes], 1.0 / root - 1.0)
    np.testing.assert_array_equal(table["inv_root_m1"][sizes], 1.0 / (root - 1.0))
    assert [table["h"][s] for s in sizes] == [householder.householder_max_entry(int(s)) for s in sizes]
    update = np.stack([root, 1 / (root - 1), 1 / root - 1, 1 / root], axis=1)
    np.testing.assert_array_equal(table["update"][sizes], update)
    assert householder._SIZE_TABLE["g"].size <= householder.SIZES_KEPT


# Pins from the mutation run of the small-array paths (docs/testing.md, "Mutation testing").
# size_table keeps its table for the whole process, so a test that reads it only through the
# quantizers never calls the builder _size_numbers again once an earlier test has filled it:
# the builder is checked directly, and the cache from an emptied module table.


def per_size_definition(g: int) -> dict[str, float]:
    """A group of ``g`` rows' numbers by their definitions (docs/theory/quantizers.md, "BHQ")."""
    root = math.sqrt(g)
    return {
        "g": float(g),
        "root": root,
        "inv_root_m1": 1.0 / (root - 1.0) if g > 1 else 0.0,
        "n_first": 1.0 / root - 1.0,
        "n_rest": 1.0 / root,
        "h": householder.householder_max_entry(g) if g > 1 else math.inf,  # G = 1: never read (G ≥ 2)
        "g_minus_1": g - 1.0,
    }


@pytest.mark.parametrize("n", [2, 9, 70])
def test_size_numbers_are_each_sizes_definition_bit_for_bit(n):
    """Every column of every row G = 1 … n − 1, also G = 1 (a one-row group: ``1/(√G − 1)`` taken as 0)."""
    table = householder._size_numbers(n)
    for name in ("g", "root", "inv_root_m1", "n_first", "n_rest", "h", "update", "scale"):
        assert table[name].dtype == np.float64, name
        assert table[name].shape[0] == n, name
    for g in range(1, n):
        want = per_size_definition(g)
        got = {name: float(table[name][g]) for name in ("g", "root", "inv_root_m1", "n_first", "n_rest", "h")}
        got["g_minus_1"] = float(table["scale"][g, 2])
        assert got == want, g
        assert table["update"][g].tolist() == [want[name] for name in householder.UPDATE_NUMBERS]
        assert table["scale"][g].tolist() == [want["root"], want["h"], want["g_minus_1"]]


def test_size_numbers_h_is_the_largest_entry_of_the_dense_matrix():
    """``h_G`` against ``max |H_G|`` of the dense reflection, G = 2 … 40 (an independent construction)."""
    table = householder._size_numbers(41)
    dense = [np.abs(householder.householder_dense(g)).max() for g in range(2, 41)]
    np.testing.assert_allclose(table["h"][2:], dense, rtol=1e-12)


def test_size_table_keeps_a_growing_table_and_builds_big_ones_per_call(monkeypatch):
    """From an empty cache: every request is covered, kept tables never shrink or pass ``SIZES_KEPT``."""
    monkeypatch.setattr(householder, "_SIZE_TABLE", {})
    kept = householder.SIZES_KEPT
    previous = 0
    for largest in [0, 1, 5, 63, 64, 65, 200, 150, kept - 1, 3, kept, kept + 7]:
        table = householder.size_table(largest)
        size = table["g"].size
        assert size > largest
        fresh = householder._size_numbers(size)
        for name in ("g", "update", "scale", "h", *householder.UPDATE_NUMBERS):
            np.testing.assert_array_equal(table[name], fresh[name], err_msg=f"{name} for {largest}")
        cached = householder._SIZE_TABLE["g"].size
        assert cached <= kept
        if largest < kept:
            assert table is householder._SIZE_TABLE
            assert cached >= previous  # a kept table is only ever replaced by a bigger one
            previous = cached
        else:
            assert table is not householder._SIZE_TABLE
    again = householder.size_table(10)
    assert again is householder._SIZE_TABLE and again["g"].size == previous  # a smaller request: no rebuild


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 3, 4), (1, 1, 1), (2, 1, 1), (4, 1, 1), (3, 1, 2), (5, 2, 3)])
def test_sum_in_order_is_the_loop_for_every_stack_height(shape, dtype):
    """``((s_0 + s_1) + s_2) + …`` as a loop, also for one slice (R = 1) and one entry per slice (m·D = 1)."""
    big = 2.0 ** (np.finfo(dtype).nmant + 1)  # big + 1 rounds to big: the order shows
    stack = np.random.default_rng(3).standard_normal(shape).astype(dtype)
    stack[:, 0, 0] = ([1.0, big] + [1.0] * shape[0])[: shape[0]]
    want = stack[0].copy()
    for s in stack[1:]:
        want = want + s
    np.testing.assert_array_equal(bits(householder_small.sum_in_order(stack)), bits(want))
    out = np.full(shape[1:], np.nan, dtype=dtype)
    got = householder_small.sum_in_order(stack, out=out)
    assert got is out
    np.testing.assert_array_equal(bits(out), bits(want))


def one_big_group(n: int) -> np.ndarray:
    """Row ranges that make one group of ``n`` rows: one dominant row, ``n − 1`` equal small ones."""
    ranges = np.ones(n)
    ranges[n // 3] = 1e6
    return ranges


@pytest.mark.parametrize("n", [householder.SIZES_KEPT + 900])
def test_a_group_past_the_kept_table_is_grouped_and_applied_as_the_loops_do(n):
    """A group bigger than ``SIZES_KEPT`` takes its numbers from a per-call table: same as the loops."""
    ranges = one_big_group(n)
    groups, scales, k = grouping_loop(ranges)
    assert k == 1 and groups[0].size == n
    t = block_householder(ranges)
    np.testing.assert_array_equal(t.groups[0], groups[0])
    np.testing.assert_array_equal(t.scales, scales)
    x = np.random.default_rng(5).standard_normal((n, 3))
    for inverse in (False, True):
        out = np.empty_like(x)
        apply_transform_fast(t, x, out, inverse=inverse)
        np.testing.assert_array_equal(bits(out), bits(apply_transform(t, x, inverse=inverse)))


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_ranges_of_any_float_dtype_are_grouped_in_float64(dtype):
    """``λ = R + 1e-8`` in float64 whatever the ranges' dtype (the loop's definition)."""
    ranges = (np.random.default_rng(2).lognormal(0.0, 2.0, 50)).astype(dtype)
    _, scales, k = grouping_loop(ranges.astype(np.float64))
    t = block_householder(ranges)
    assert t.n_large == k
    np.testing.assert_array_equal(t.scales, scales)
    np.testing.assert_array_equal(t.ranges, ranges.astype(np.float64) + householder.RANGE_EPS)


@pytest.mark.parametrize("shape", [(60, 8), (300, 512)], ids=["all-groups-at-once", "column-blocks"])
def test_one_transform_applied_in_both_dtypes_keeps_each_dtypes_numbers(shape):
    """Layouts and coefficients are cached per dtype: float64, float32, float64 each equal the reference."""
    n = shape[0]
    t = block_householder(np.random.default_rng(4).lognormal(0.0, 1.5, n))
    x = np.random.default_rng(6).standard_normal(shape)
    for dtype in (np.float64, np.float32, np.float64):
        xd = x.astype(dtype)
        for inverse in (False, True):
            out = np.empty_like(xd)
            apply_transform_fast(t, xd, out, inverse=inverse)
            want = apply_transform(t, xd, inverse=inverse)
            assert out.dtype == want.dtype == dtype
            np.testing.assert_array_equal(bits(out), bits(want))


def test_a_large_row_without_partner_is_refused_with_the_counts():
    """Step 3 rounds ``Z·λ/total`` to cuts; a cut equal to the one before is an error naming the counts."""
    with pytest.raises(RuntimeError, match=r"no partner: counts \[1, 0\]"):
        partner_counts(np.array([1.0, 1e-9]), 1)

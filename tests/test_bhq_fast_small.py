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

import numpy as np
import pytest

from refqt.quant import BHQ, householder, householder_small
from refqt.quant.householder import BlockHouseholder, apply_transform
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

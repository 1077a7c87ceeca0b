"""BHQ's grouping (:func:`refqt.quant.block_householder`) against the plain loop of docs/theory/quantizers.md.

:func:`block_householder` finds ``Z``, the groups and the pre-scales with
array operations. :func:`grouping_loop` below is the documented reference,
written as the authors' ``get_transform`` reads: grow ``Z`` one row at a time,
then walk the large rows handing each its partners. Both must give the same
transform bit for bit (same ``Z``, same groups, same scales) on any ranges,
ties and zeros included.
"""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refqt.quant import block_householder
from refqt.quant.householder import RANGE_EPS, householder_max_entry


def small_row_count_loop(srt: np.ndarray) -> int:
    """``Z``: ``Z += 1``, ``total −= λ_(N−Z)`` until ``Z·λ_(N−Z−1)/total > 1``, at most ``N − 1``."""
    n = srt.size
    z, total = 0, float(srt.sum())
    while z < n - 1:
        z += 1
        total -= srt[n - z]
        if z * srt[n - z - 1] / total > 1.0:
            break
    return z


def grouping_loop(ranges: np.ndarray) -> tuple[list[np.ndarray], np.ndarray, int]:
    """``(groups, scales, K)`` by the loops of docs/theory/quantizers.md (see :func:`block_householder`)."""
    lam = np.asarray(ranges, dtype=np.float64).reshape(-1) + RANGE_EPS
    n = lam.size
    order = np.argsort(-lam, kind="stable")
    srt = lam[order]
    z = small_row_count_loop(srt)
    k = n - z
    if z == 0:
        return [order.copy()], np.ones(n), 1
    large_total = float(srt[:k].sum())
    cuts = np.floor(np.cumsum(z * srt[:k] / large_total) + 0.5).astype(np.int64)
    cuts[-1] = z
    counts = np.diff(cuts, prepend=0)
    if np.any(counts < 1):
        raise RuntimeError("BHQ grouping gave a large row no partner")
    scales = np.empty(n)
    groups = []
    start = k
    for i in range(k):
        g = 1 + int(counts[i])
        idx = np.concatenate([order[i : i + 1], order[start : start + g - 1]])
        w1 = srt[i] / math.sqrt(g)
        w2 = srt[start] * householder_max_entry(g)
        scales[idx[0]] = w1 ** (-1.0 / 3.0)
        scales[idx[1:]] = (w2 / (g - 1)) ** (-1.0 / 3.0)
        groups.append(idx)
        start += g - 1
    return groups, scales, k


def assert_same_grouping(ranges: np.ndarray) -> None:
    try:
        groups, scales, k = grouping_loop(ranges)
    except RuntimeError:
        with pytest.raises(RuntimeError, match="no partner"):
            block_householder(ranges)
        return
    t = block_householder(ranges)
    assert t.n_large == k == len(t.groups)
    for got, want in zip(t.groups, groups, strict=True):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(t.scales, scales)
    np.testing.assert_array_equal(t.ranges, np.asarray(ranges, dtype=np.float64) + RANGE_EPS)


# ranges over many decades, exact ties (a few repeated values) and exact zeros
SPAN = st.one_of(
    st.sampled_from([0.0, 1.0, 2.0, 3.0, 1e-8]),
    st.floats(-9, 9).map(lambda e: 10.0**e),
    st.floats(0.0, 1e6),
)


@given(st.lists(SPAN, min_size=1, max_size=80))
def test_grouping_equals_loop_on_drawn_ranges(spans):
    assert_same_grouping(np.array(spans))


@given(st.integers(1, 600), st.floats(0.0, 4.0), st.integers(0, 2**32 - 1), st.booleans())
def test_grouping_equals_loop_on_log_normal_rows(n, spread, seed, rounded):
    """Row ranges like a gradient's: log-normal, optionally rounded to few values (many ties)."""
    spans = np.exp(spread * np.random.default_rng(seed).standard_normal(n))
    if rounded:
        spans = np.round(spans, 1)
    assert_same_grouping(spans)


@pytest.mark.parametrize(
    "spans",
    [
        [3.0],
        [0.0],
        [1.0, 2.0],
        [5.0, 5.0],
        [0.0, 0.0, 0.0],
        [1.0] * 7,
        [1e6] + [1.0] * 50,
        [1e-3] * 9 + [1e4],
    ],
)
def test_grouping_equals_loop_edge_cases(spans):
    assert_same_grouping(np.array(spans))

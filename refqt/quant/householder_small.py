"""BHQ's transform on a small matrix: every group at once, rows laid out position-major.

The reference :func:`refqt.quant.householder.apply_transform` goes group by
group; on a small matrix (a gradient of 640 tokens × 32 features has a few
hundred groups) its hundreds of NumPy calls cost far more than the
arithmetic. Here the N rows are gathered once into *position-major* order,
the groups ranked by size (largest first)::

    a = x2[perm]                  (N, D)
    a[:K]                         row 0 (the large row) of every group
    a[start_r : start_r + m_r]    row r of the m_r groups that have more than r rows

so that every group's sum ``S = ((a_0 + a_1) + a_2) + …`` is a few additions
of contiguous slices, position after position, and the rank-1 updates
``H A = A − n βᵀ`` of all groups are two subtractions (docs/theory/quantizers.md,
"BHQ"). These are the reference's float operations on the same numbers in the
same order, so the results are equal bit for bit (tests/test_bhq_fast_small.py,
tests/test_quant_fast.py).

Used by :func:`refqt.quant.householder_fast.apply_transform_fast` for a matrix
of at most ``BLOCK_ELEMENTS`` elements, and by BHQ's small-array path
(``BHQ._fast_small`` in refqt/quant/bhq.py), which keeps the rows in this
order from ``T`` through the rounding to ``T⁻¹``. The layout is found from
the transform's head-tail order (``BlockHouseholder._head_tail``) and cached
on the transform (``t._cache``), beside its other layouts.
"""

from __future__ import annotations

import bisect
from typing import Any

import numpy as np

from refqt.quant.householder import UPDATE_NUMBERS, BlockHouseholder, size_table


def transform_position_major(t: BlockHouseholder, a: np.ndarray, inverse: bool = False) -> None:
    """``T`` (or ``T⁻¹``) in place on rows ``a`` (N, D) laid out position-major: ``a = x2[perm]``.

    The same float operations as the reference
    (:func:`~refqt.quant.householder.apply_transform`), on every group
    together. Position-major (:func:`position_major`: every group's first row,
    then every group's second row, ...) makes each group's sum
    ``a_0 + a_1 + …`` come out in the reference's order (:func:`group_sums`).
    ``β`` and ``n·β`` are then formed per group and subtracted from the first
    rows in one call and from all small rows in another, ``n·β`` gathered by
    each slot's group (``small_rank``). A group of one row gets
    ``β = (a − 1·a)·0 = 0`` and ``n = 0``, so it is left as it is, like the reference.
    """
    c = position_major(t, a.dtype)
    k = t.n_large
    if not inverse:
        np.multiply(a, c["s"], out=a)
    total = group_sums(a, k, c["runs"])
    beta = np.multiply(np.subtract(total, np.multiply(c["root"], a[:k])), c["inv_root_m1"])
    np.subtract(a[:k], np.multiply(c["n_first"], beta), out=a[:k])
    n_beta = np.multiply(c["n_rest"], beta, out=beta)  # n·β of every small row of a group, (K, D)
    small = a[k:]
    np.subtract(small, n_beta.take(c["small_rank"], axis=0), out=small)
    if inverse:
        np.multiply(a, c["inv_s"], out=a)


def group_sums(a: np.ndarray, k: int, runs: list[tuple[int, int, int]]) -> np.ndarray:
    """``S_q = ((a_0 + a_1) + a_2) + …`` of every group ``q``, (K, D), from position-major rows ``a``.

    Added position by position, so in the reference's order: a single
    position is one add of two contiguous slices; a run of ``run`` positions
    with the same ``m`` groups is one :func:`sum_in_order` of the
    (run + 1, m, D) stack of the sums so far and those rows (no copy for
    the first run, whose stack is the first rows of ``a`` themselves).
    """
    total, own = a[:k], False  # own: total is our array, no longer a view of a
    for start, m, run in runs:
        end = start + run * m
        if start == k and m == k:  # the first run: positions 0 … run are contiguous in a
            total, own = sum_in_order(a[:end].reshape(run + 1, m, -1)), True
            continue
        if not own:
            total, own = total.copy(), True
        head = total[:m]
        if run == 1:
            np.add(head, a[start:end], out=head)
        else:
            sum_in_order(np.concatenate((head[None], a[start:end].reshape(run, m, -1))), out=head)
    return total


def sum_in_order(stack: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``((s_0 + s_1) + s_2) + …`` over the first axis of a C-contiguous (R, m, D) ``stack``, (m, D).

    ``np.add.reduce`` over axis 0 adds whole (m, D) slices in that order: with
    the inner m·D ≥ 2 entries contiguous, NumPy's iterator keeps axis 0
    outermost and its pairwise summation (which reorders) is used only along
    the fast axis (the ``np.sum`` notes). That is an implementation property:
    tests/test_bhq_fast_small.py checks it on float values for which every
    other order gives another sum. (m, D) = (92, 32), R = 7: 3 µs against 88 µs
    for ``add.accumulate(...)[-1]`` (sequential by definition, but it walks
    axis 0 innermost), which is kept for m·D = 1, where the reduction would
    be along the fast axis. The reduction starts from ``initial = −0``:
    ``−0 + s_0 = s_0`` exactly, so an all −0 column sums to −0 as in order
    (NumPy's default start, +0, would give +0). ``out``: (m, D), not part of ``stack``.
    """
    if stack[0].size >= 2:
        return np.add.reduce(stack, axis=0, out=out, initial=-0.0)
    total = np.add.accumulate(stack, axis=0)[-1]
    if out is None:
        return total
    out[...] = total
    return out


def position_major(t: BlockHouseholder, work: Any) -> dict[str, Any]:
    """The rows of ``T``'s groups laid out position-major (cached on ``t``).

    Groups are ranked largest first; slot ``q`` of position ``r`` holds row
    ``r`` of the ``q``-th group, and position ``r`` lists only the ``m_r``
    groups with more than ``r`` rows (a prefix of the ranking), so positions
    are contiguous slices, the first ``K`` slots being the groups' first rows.
    ``perm`` (N,): original row in each slot, ``unperm`` (N,) the slot of each
    original row (``a.take(unperm, axis=0)`` puts rows back), ``small_rank``
    (N − K,) the group (rank) of each slot after the first K; ``s``, ``inv_s`` (N, 1), per
    rank the ``UPDATE_NUMBERS`` ``root``, ``inv_root_m1``, ``n_first``, ``n_rest`` (K, 1), all of dtype
    ``work`` and the same numbers as
    :meth:`~refqt.quant.householder.BlockHouseholder.grouped_coefficients`;
    ``runs``: ``(start, m, run)`` for the positions r ≥ 1, ``run`` of them in
    a row with the same ``m``.
    """
    key = ("by_position", np.dtype(work))
    if key not in t._cache:
        dt = np.dtype(work)
        order, counts, scales = t._head_tail()
        place, by_rank, small_rank, runs = _slots(counts, order.size)
        perm = order[place]
        unperm = np.empty_like(perm)
        unperm[perm] = np.arange(perm.size)
        s = scales[place]
        c: dict[str, Any] = {"perm": perm, "unperm": unperm, "small_rank": small_rank, "runs": runs}
        c["s"] = s.astype(dt)[:, None]
        c["inv_s"] = np.divide(1.0, s).astype(dt)[:, None]
        numbers = size_table(int(by_rank[0]) + 1)["update"][1:].take(by_rank, axis=0).astype(dt)  # (K, 4)
        for i, name in enumerate(UPDATE_NUMBERS):
            c[name] = numbers[:, i : i + 1]
        t._cache[key] = c
    return t._cache[key]


def _slots(
    counts: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[int, int, int]]]:
    """Position-major slots of N rows in groups with ``counts`` (K,) rows after their first (head-tail order).

    Returns ``place`` (N,), the head-tail place of each slot: the ranked groups'
    heads, then for r = 1, 2, … the r-th tail row of each of the ``m_r``
    groups that have one, ``K + tail_q + r − 1`` for the group ranked ``q``
    (``tail_q``: where its tail rows start); ``by_rank`` (K,), the counts
    of the groups by rank (most rows first, stable); ``small_rank``
    (N − K,), the rank of each slot after the first K; and the ``runs``
    (:func:`_position_runs`). Ufuncs and methods are called directly
    (``np.add.accumulate``, ``a.argsort``): on a few hundred numbers the
    ``np.cumsum``-style wrappers cost as much again as the work (4 numbers:
    ``np.cumsum`` 1.5 µs, ``np.add.accumulate`` 0.4 µs).
    """
    k = counts.size
    ranked = (-counts).argsort(kind="stable")
    by_rank = counts[ranked]
    m = k - np.add.accumulate(np.bincount(by_rank)[:-1])  # m_r for r = 1 … max count: groups with > r rows
    offsets = np.add.accumulate(m) - m  # where position r starts among the slots after the first K
    small_rank = np.arange(n - k) - offsets.repeat(m)
    tail = (np.add.accumulate(counts) - counts)[ranked]
    place = np.concatenate((ranked, tail[small_rank] + np.arange(k, k + m.size).repeat(m)))
    return place, by_rank, small_rank, _position_runs((offsets + k).tolist(), m.tolist())


def _position_runs(starts: list[int], counts: list[int]) -> list[tuple[int, int, int]]:
    """``(start, m, run)``: each run of ``run`` positions in a row with one count ``m``.

    ``counts`` never grows, so a run ends where bisection on the negated
    counts says: a Python loop over the distinct counts only.
    """
    negated = [-m for m in counts]
    runs = []
    i = 0
    while i < len(counts):
        end = bisect.bisect_right(negated, negated[i], i)
        runs.append((starts[i], counts[i], end - i))
        i = end
    return runs

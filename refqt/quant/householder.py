"""BHQ's block Householder transform: grouping on the host, rank-1 application.

docs/theory/quantizers.md, "BHQ". With rows sorted by range ``λ`` (descending), the first ``K``
rows are *large*; each large row is grouped with ``n_i ∝ λ_i`` small rows and
one Householder reflection ``H_G = I − 2 n nᵀ/‖n‖²``, ``n = 𝟏/√G − e₁``,
spreads it evenly over its group. With per-row pre-scales ``s``::

    T = P · blockdiag(H_G) · Pᵀ · diag(s),     T⁻¹ = diag(1/s) · P · blockdiag(H_G) · Pᵀ

(``H_G`` is symmetric and orthogonal, ``H_G⁻¹ = H_G``). Applying ``H_G`` to
the group's rows ``A`` (G, D) is a rank-1 update, O(G·D)::

    S = Σ_r A_r,    β = (S − √G·A_0) / (√G − 1),    H A = A − n βᵀ

(``n_0 = 1/√G − 1`` for the large row, ``1/√G`` for the others). No N×N
matrix is formed, except by :meth:`BlockHouseholder.matrix` for tests.
"""

from __future__ import annotations

import bisect
import math
from typing import Any

import numpy as np

from refqt.backend import backend_of

RANGE_EPS = 1e-8
"""Added to every row range before grouping, as in the authors' code."""

BLOCK_ELEMENTS = 1 << 17
"""Elements of a group's rows processed at once by the fast path (512 KiB of float32)."""


def householder_max_entry(g: int) -> float:
    """``h_G = max |H_G|``, the largest entry of the matrix that exists for this ``G``.

    ``H_G`` has ``1/√G`` in its first row and column, ``1 − 1/(G − √G)`` on the
    rest of its diagonal and ``−1/(G − √G)`` off it. The last kind exists only
    for ``G ≥ 3``: ``H_2`` is ``[[a, a], [a, −a]]`` with ``a = 1/√2``, so
    ``h_2 = 1/√2`` (not ``1/(2 − √2) ≈ 1.707``). ``h_1 = 1`` (``H_1 = [1]``).
    """
    if g == 1:
        return 1.0
    r = math.sqrt(g)
    off = 1.0 / (g - r)
    return max(1.0 / r, abs(1.0 - off), off if g >= 3 else 0.0)


def householder_dense(g: int) -> np.ndarray:
    """``H_G`` as a dense (G, G) float64 matrix (tests and exact variances only)."""
    if g == 1:
        return np.ones((1, 1))
    n = np.full(g, 1.0 / math.sqrt(g))
    n[0] -= 1.0
    return np.eye(g) - 2.0 * np.outer(n, n) / (n @ n)


class BlockHouseholder:
    """The transform ``T`` of BHQ for one input.

    Built by :func:`block_householder` from its rows in head-tail order
    (:meth:`from_head_tail`); ``groups``, ``scales`` and the grouped row order
    are found from that when first read (the fast path needs none of them).

    Attributes
    ----------
    groups : tuple of int arrays
        Original row indices of each group, its large row first, then its small
        rows in descending order of range.
    scales : numpy.ndarray
        (N,) float64 pre-scale ``s_i`` of each original row.
    ranges : numpy.ndarray
        (N,) float64 row ranges ``λ_i`` (with ``RANGE_EPS`` added).
    n_large : int
        ``K``, the number of groups.
    """

    def __init__(self, groups: Any, scales: np.ndarray | None, ranges: np.ndarray, n_large: int):
        self._groups = None if groups is None else tuple(groups)
        self._scales = scales
        self.ranges = ranges
        self.n_large = n_large
        self._cache: dict = {}

    def __repr__(self) -> str:
        return f"BlockHouseholder(n_rows={self.n_rows}, n_large={self.n_large})"

    @classmethod
    def from_head_tail(
        cls, order: np.ndarray, counts: np.ndarray, scales: np.ndarray, ranges: np.ndarray
    ) -> BlockHouseholder:
        """``T`` from its rows in *head-tail order*: each group's first row, then the others group by group.

        ``order`` (N,): the original row at each place; ``counts`` (K,): rows
        after the first in each group; ``scales`` (N,): their pre-scales, in
        that order. :func:`block_householder`'s rows sorted by range are
        already in this order (large rows, then small rows group after group).
        """
        t = cls(None, None, ranges, int(counts.size))
        t._cache["head_tail"] = (order, counts, scales)
        return t

    @property
    def groups(self) -> tuple[np.ndarray, ...]:
        """Original row indices of each group, large row first (see the class docstring)."""
        if self._groups is None:
            grouped, _, starts = self._layout()
            self._groups = tuple(np.split(grouped, starts[1:].tolist()))
        return self._groups

    @property
    def scales(self) -> np.ndarray:
        """(N,) float64 pre-scale ``s_i`` of each original row."""
        if self._scales is None:
            order, _, s = self._head_tail()
            self._scales = np.empty(order.size)
            self._scales[order] = s
        return self._scales

    @property
    def n_rows(self) -> int:
        return int(self.scales.size)

    @property
    def group_sizes(self) -> np.ndarray:
        return np.array([g.size for g in self.groups])

    # -- dense forms, for tests and exact variances ----------------------------
    def _blockdiag(self) -> np.ndarray:
        """``P blockdiag(H) Pᵀ`` as a dense (N, N) matrix."""
        m = np.zeros((self.n_rows, self.n_rows))
        for idx in self.groups:
            m[np.ix_(idx, idx)] = householder_dense(idx.size)
        return m

    def matrix(self) -> np.ndarray:
        """Dense ``T`` (N, N): tests only."""
        return self._blockdiag() * self.scales[None, :]

    def inverse_matrix(self) -> np.ndarray:
        """Dense ``T⁻¹`` (N, N): tests only."""
        return self._blockdiag() / self.scales[:, None]

    def inverse_column_norms_sq(self) -> np.ndarray:
        """``‖T⁻¹[:, i]‖²`` for each row i of ``Y = T x``, (N,): O(N), no dense matrix."""
        out = np.empty(self.n_rows)
        for idx in self.groups:
            h = householder_dense(idx.size) if idx.size <= 64 else None
            inv_s2 = 1.0 / self.scales[idx] ** 2
            if h is not None:
                out[idx] = (h * h).T @ inv_s2
            else:
                out[idx] = _column_norms_large_group(idx.size, inv_s2)
        return out

    # -- coefficients in the working dtype --------------------------------------
    def _layout(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(order, sizes, starts)``: rows in grouped order, (K,) group sizes and offsets (cached).

        Group ``g``'s rows: its head ``g``, then its ``counts[g]`` places of the
        tail (:meth:`from_head_tail`); grouped place ``j`` of group ``g``
        (after its first) is head-tail place ``K + j − g − 1``.
        """
        if "layout" not in self._cache:
            if self._groups is not None:
                sizes = np.array([idx.size for idx in self._groups])
                self._cache["layout"] = (np.concatenate(self._groups), sizes, np.cumsum(sizes) - sizes)
            else:
                order, counts, _ = self._head_tail()
                k, sizes = counts.size, counts + 1
                starts = np.cumsum(sizes) - sizes
                place = k + np.arange(order.size) - np.repeat(np.arange(k), sizes) - 1
                place[starts] = np.arange(k)
                self._cache["layout"] = (order[place], sizes, starts)
        return self._cache["layout"]

    def _head_tail(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(order, counts, scales)`` of :meth:`from_head_tail` (cached; found from ``groups`` if given)."""
        if "head_tail" not in self._cache:
            groups = self._groups
            order = np.concatenate([idx[:1] for idx in groups] + [idx[1:] for idx in groups])
            counts = np.array([idx.size - 1 for idx in groups])
            self._cache["head_tail"] = (order, counts, self.scales[order])
        return self._cache["head_tail"]

    def grouped_coefficients(self, work: Any) -> dict[str, np.ndarray]:
        """Every group's numbers at once, host arrays of dtype ``work`` (cached).

        Rows in *grouped order* (group after group, as in ``groups``):
        ``order`` (N,) their original indices, ``n`` (N,) the Householder vector
        (``1/√G − 1`` on a group's first row, ``1/√G`` on the others), ``s`` and
        ``inv_s`` (N,) pre-scales and their inverses; per group: ``sizes`` and
        ``starts`` (K,) ints, ``root`` = ``√G`` and ``inv_root_m1`` =
        ``1/(√G − 1)`` (0 for G = 1) (K,).
        """
        key = ("grouped", np.dtype(work))
        if key not in self._cache:
            dt = np.dtype(work)
            order, sizes, starts = self._layout()
            root, inv_root_m1, n_first, n_rest = _group_numbers(sizes)
            n = np.repeat(n_rest, sizes)
            n[starts] = n_first
            s = self.scales[order]
            self._cache[key] = {
                "order": order,
                "sizes": sizes,
                "starts": starts,
                "root": root.astype(dt),
                "inv_root_m1": inv_root_m1.astype(dt),
                "n": n.astype(dt),
                "s": s.astype(dt),
                "inv_s": (1.0 / s).astype(dt),
            }
        return self._cache[key]

    def coefficients(
        self, work: Any
    ) -> list[tuple[np.ndarray, Any, Any, np.ndarray, np.ndarray, np.ndarray]]:
        """Per group ``(idx, √G, 1/(√G − 1), n, s, 1/s)``, dtype ``work``: pieces of the grouped arrays.

        Both the reference and the fast path use exactly these numbers, so they
        do the same float operations.
        """
        c = self.grouped_coefficients(work)
        out = []
        for i, (a, g) in enumerate(zip(c["starts"].tolist(), c["sizes"].tolist(), strict=True)):
            rows = slice(a, a + g)
            out.append(
                (
                    self.groups[i],
                    c["root"][i],
                    c["inv_root_m1"][i],
                    c["n"][rows],
                    c["s"][rows],
                    c["inv_s"][rows],
                )
            )
        return out


def _group_numbers(sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per group of ``G`` rows (float64): ``√G``, ``1/(√G − 1)`` (0 if G = 1), ``1/√G − 1``, ``1/√G``."""
    table = size_table(int(sizes.max(initial=1)))
    return tuple(table[name][sizes] for name in ("root", "inv_root_m1", "n_first", "n_rest"))  # type: ignore[return-value]


_SIZE_TABLE: dict[str, np.ndarray] = {}

UPDATE_NUMBERS = ("root", "inv_root_m1", "n_first", "n_rest")
"""A group's numbers in its rank-1 update: ``√G``, ``1/(√G − 1)``, ``n_0 = 1/√G − 1``, ``n_r = 1/√G``."""


def size_table(max_size: int) -> dict[str, np.ndarray]:
    """Every number of a group that depends only on its size ``G``, for G = 0 … at least ``max_size``.

    float64 arrays indexed by ``G``: ``g`` (G itself), ``root`` (``√G``),
    ``inv_root_m1`` (``1/(√G − 1)``, 0 for G ≤ 1), ``n_first`` (``1/√G − 1``),
    ``n_rest`` (``1/√G``) and ``h`` (``h_G``, as :func:`householder_max_entry`
    for G ≥ 2). Each entry is computed elementwise with the same float64
    operations as on a per-group array, so ``table[name][sizes]`` is bit for
    bit what those operations give on ``sizes``; built once and grown by
    doubling (a module-level cache: the numbers never change), so a call pays
    one gather instead of a dozen NumPy calls. Entry 0 is never read.
    Stacked rows, so that one gather gives all of a group's numbers:
    ``update`` (G, 4), the ``UPDATE_NUMBERS``; ``scale`` (G, 3), ``√G``,
    ``h_G`` and ``G − 1`` (step 4 of :func:`block_householder`).
    """
    global _SIZE_TABLE
    if _SIZE_TABLE.get("g", np.empty(0)).size <= max_size:  # a new table, swapped in whole
        g = np.arange(max(64, 2 * max_size + 1), dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            root = np.sqrt(g)
            inv_root_m1 = np.zeros(g.size)
            np.divide(1.0, root - 1.0, out=inv_root_m1, where=g > 1)
            n_rest = 1.0 / root
            off = 1.0 / (g - root)
            h = np.maximum(np.maximum(1.0 / root, np.abs(1.0 - off)), np.where(g >= 3, off, 0.0))
        table = {"g": g, "root": root, "inv_root_m1": inv_root_m1, "n_first": n_rest - 1.0, "n_rest": n_rest}
        table["update"] = np.stack([table[name] for name in UPDATE_NUMBERS], axis=1)
        table["scale"] = np.stack([root, h, g - 1.0], axis=1)
        _SIZE_TABLE = {**table, "h": h}
    return _SIZE_TABLE


def _column_norms_large_group(g: int, inv_s2: np.ndarray) -> np.ndarray:
    """``Σ_r H[r, i]² / s_r²`` for one big group without forming ``H`` (O(G))."""
    r = math.sqrt(g)
    a, off = 1.0 / r, 1.0 / (g - r)
    diag = 1.0 - off
    total_small = inv_s2[1:].sum()
    out = np.empty(g)
    out[0] = a * a * inv_s2.sum()
    # column i ≥ 1: row 0 gives a², row i gives diag², other small rows off²
    out[1:] = a * a * inv_s2[0] + diag * diag * inv_s2[1:] + off * off * (total_small - inv_s2[1:])
    return out


def small_row_count(srt: np.ndarray) -> int:
    """``Z`` for ranges ``srt`` sorted descending (step 2 of ``block_householder``), all candidates at once.

    The rule is a loop: ``Z += 1``, ``total −= λ_(N−Z)``, stop when
    ``Z·λ_(N−Z−1)/total > 1`` or at ``Z = N − 1``. Here every ``total_Z`` comes
    from one ``subtract.accumulate`` (sequential, so the same subtractions in
    the same order as the loop: the same float64 numbers), every ratio is
    formed with the same operations, and ``Z`` is the first that passes.
    tests/test_quant_grouping.py checks this against the loop.
    """
    n = srt.size
    if n < 2:
        return 0
    totals = np.empty(n)
    totals[0] = srt.sum()
    totals[1:] = srt[:0:-1]
    np.subtract.accumulate(totals, out=totals)  # totals[Z] for Z = 0 … N − 1
    passed = np.arange(1, n) * srt[n - 2 :: -1] / totals[1:] > 1.0
    first = int(passed.argmax())  # the first True, or 0 if none
    return first + 1 if passed[first] else n - 1


def block_householder(ranges: np.ndarray) -> BlockHouseholder:
    """Build ``T`` from the row ranges, as docs/theory/quantizers.md (authors' ``get_transform``).

    1. ``λ_i = R_i + 1e-8``, rows sorted by ``λ`` descending (stable).
    2. ``Z`` small rows: ``Z += 1``, ``total −= λ_(N−Z)`` until
       ``Z·λ_(N−Z−1)/total > 1``; also stops at ``Z = N − 1`` (one large row),
       which is where the authors' loop reads out of bounds for N ≤ 2
       (:func:`small_row_count`).
    3. ``c_i = round(Σ_{k≤i} Z·λ_(k)/total)``; large row i takes the next
       ``n_i = c_i − c_{i−1} ≥ 1`` small rows in sorted order.
    4. ``w₁ = λ₁/√G``, ``w₂ = λ₂·h_G``, ``s₁ = w₁^(−1/3)``, ``s₂ = (w₂/(G − 1))^(−1/3)``.

    Defined for every N ≥ 1: N = 1 is one group of size 1 (``T = I``). All
    groups are found with array operations (no loop over rows or groups).
    The powers use ``np.float_power``, whose float64 loop calls the C
    library's ``pow`` on each element, as Python's ``w ** (−1/3)`` does in
    the loop it replaces, so the scales are the same to the last bit
    (``np.power`` may take a vectorised approximation instead, and ``np.cbrt``
    rounds differently: both differ from ``pow`` in the last bit on some
    inputs; tests/test_quant_small_paths.py checks ``float_power`` against it).

    Parameters
    ----------
    ranges : array_like
        (N,) row ranges ``max − min`` (host).
    """
    lam = np.asarray(ranges, dtype=np.float64).reshape(-1) + RANGE_EPS
    n = lam.size
    order = (-lam).argsort(kind="stable")
    srt = lam[order]
    z = small_row_count(srt)
    k = n - z
    if z == 0:
        return BlockHouseholder.from_head_tail(order, np.array([n - 1]), np.ones(n), lam)
    counts = partner_counts(srt[:k], z)
    # step 4, per group: √G, h_G and G − 1 by the same float64 operations as householder_max_entry
    numbers = size_table(int(counts.max()) + 1)["scale"][1:].take(counts, axis=0)  # rows for G = count + 1
    first_small = np.add.accumulate(counts) - counts + k  # sorted place of each group's first small row
    third = -1.0 / 3.0
    s1 = np.float_power(srt[:k] / numbers[:, 0], third)  # the C library's pow per element
    s2 = np.float_power(srt[first_small] * numbers[:, 1] / numbers[:, 2], third)
    # sorted order is head-tail order: large rows, then each group's small rows in turn
    return BlockHouseholder.from_head_tail(order, counts, np.concatenate((s1, s2.repeat(counts))), lam)


def partner_counts(large: np.ndarray, z: int) -> np.ndarray:
    """Step 3 of :func:`block_householder`: ``n_i = c_i − c_{i−1}``, (K,) ints, for sorted large ranges.

    ``c_i = round(Σ_{k≤i} Z·λ_(k)/total)`` as ``⌊v + ½⌋`` (``v + ½ > 0``, so
    the cast truncates down), the last set to ``Z``.
    """
    cuts = (np.add.accumulate(z * large / large.sum()) + 0.5).astype(np.int64)
    cuts[-1] = z
    counts = cuts.copy()
    counts[1:] -= cuts[:-1]
    if np.minimum.reduce(counts) < 1:
        raise RuntimeError(f"BHQ grouping gave a large row no partner: counts {counts.tolist()}")
    return counts


def apply_transform(t: BlockHouseholder, x: Any, inverse: bool = False) -> Any:
    """Reference ``T x`` (or ``T⁻¹ x``) on the row axis −2 of ``x`` (..., N, D); any backend.

    Each group: take its rows, (pre-scale), rank-1 Householder update,
    (post-scale); then put the rows back in their original places.
    """
    backend = backend_of(x)
    xp = backend.xp
    work = np.float64 if x.dtype == xp.float64 else np.float32
    pieces = []
    order = []
    for idx, root, inv_root_m1, n, s, inv_s in t.coefficients(work):
        a = xp.take(x, backend.asarray(idx), axis=-2)
        if not inverse:
            a = a * backend.asarray(s)[:, None]
        if idx.size > 1:
            total = a[..., 0, :]
            for r in range(1, idx.size):
                total = total + a[..., r, :]
            beta = (total - float(root) * a[..., 0, :]) * float(inv_root_m1)
            a = a - backend.asarray(n)[:, None] * beta[..., None, :]
        if inverse:
            a = a * backend.asarray(inv_s)[:, None]
        pieces.append(a)
        order.append(idx)
    grouped = xp.concat(pieces, axis=-2)
    back = np.argsort(np.concatenate(order))
    return xp.take(grouped, backend.asarray(back), axis=-2)


def apply_transform_fast(
    t: BlockHouseholder, x2: np.ndarray, out2: np.ndarray, inverse: bool = False
) -> None:
    """NumPy ``out2 = T x2`` (or ``T⁻¹ x2``), as :func:`apply_transform` computes it; ``out2`` may be ``x2``.

    A matrix of up to ``BLOCK_ELEMENTS`` elements (many short rows, e.g. one
    row per token) goes through :func:`_apply_all_groups`, all groups at
    once; a bigger one group by group over blocks of columns, three passes
    per element: (scale,) sum the group, subtract ``n_r·β`` (``n_r·β`` is
    one vector for all small rows), (scale). ``β`` is formed from all of a
    group's rows before any of them is written, so in place is safe.
    """
    work = out2.dtype
    n_rows, d = x2.shape
    if d * n_rows <= BLOCK_ELEMENTS:
        _apply_all_groups(t, x2, out2, inverse)
        return
    for idx, root, inv_root_m1, n, s, inv_s in t.coefficients(work):
        g = idx.size
        width = max(1, min(d, BLOCK_ELEMENTS // g))
        beta = np.empty(width, dtype=work)
        tmp = np.empty_like(beta)
        for c0 in range(0, d, width):
            c1 = min(d, c0 + width)
            bb, mb = beta[: c1 - c0], tmp[: c1 - c0]
            rows = [out2[row, c0:c1] for row in idx]
            if inverse:
                src = [x2[row, c0:c1] for row in idx]
            else:
                for r, row in enumerate(idx):
                    np.multiply(x2[row, c0:c1], s[r], out=rows[r])
                src = rows
            if g > 1:
                np.add(src[0], src[1], out=bb)
                for r in range(2, g):
                    np.add(bb, src[r], out=bb)
                np.multiply(src[0], root, out=mb)
                np.subtract(bb, mb, out=bb)
                np.multiply(bb, inv_root_m1, out=bb)
                np.multiply(n[1], bb, out=mb)
                for r in range(1, g):
                    np.subtract(src[r], mb, out=rows[r])
                np.multiply(n[0], bb, out=bb)
                np.subtract(src[0], bb, out=rows[0])
                src = rows
            if inverse:
                for r in range(g):
                    np.multiply(src[r], inv_s[r], out=rows[r])


def _apply_all_groups(t: BlockHouseholder, x2: np.ndarray, out2: np.ndarray, inverse: bool) -> None:
    """:func:`apply_transform_fast` for a small matrix: all groups at once, a few dozen calls in all.

    Gathers the rows position-major (:func:`position_major`), applies
    :func:`transform_position_major` and puts them back. All rows are
    gathered before anything is written, so ``out2`` may be ``x2``.
    """
    c = position_major(t, out2.dtype)
    a = x2.take(c["perm"], axis=0).astype(out2.dtype, copy=False)  # take: ~5× faster than x2[perm] here
    transform_position_major(t, a, inverse)
    a.take(c["unperm"], axis=0, out=out2)


def transform_position_major(t: BlockHouseholder, a: np.ndarray, inverse: bool = False) -> None:
    """``T`` (or ``T⁻¹``) in place on rows ``a`` (N, D) laid out position-major: ``a = x2[perm]``.

    The same float operations as :func:`apply_transform`, on every group
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
    be along the fast axis. ``out``: (m, D), not part of ``stack``.
    """
    if stack[0].size >= 2:
        return np.add.reduce(stack, axis=0, out=out)
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
    ``work`` and the same numbers as :meth:`BlockHouseholder.grouped_coefficients`;
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

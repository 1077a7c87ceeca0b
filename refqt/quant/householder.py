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

This file is ``T`` itself: the grouping (:func:`block_householder`), the
transform with its dense forms and per-group coefficients
(:class:`BlockHouseholder`), and the reference application
:func:`apply_transform`, any backend. The NumPy fast application, bit for bit
the same numbers, is :mod:`refqt.quant.householder_fast` (a large matrix group
by group over column blocks) with :mod:`refqt.quant.householder_small` (a small
one, all groups at once, rows laid out position-major); the device one is
:mod:`refqt.gpu.householder`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from refqt.backend import backend_of

RANGE_EPS = 1e-8
"""Added to every row range before grouping, as in the authors' code."""


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
    are found from that when first read (the fast paths need none of them).

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


SIZES_KEPT = 1 << 12
"""Group sizes whose numbers :func:`size_table` keeps between calls (256 KiB); bigger tables are per call."""


def size_table(max_size: int) -> dict[str, np.ndarray]:
    """Every number of a group that depends only on its size ``G``, for G = 0 … at least ``max_size``.

    float64 arrays indexed by ``G``: ``g`` (G itself), ``root`` (``√G``),
    ``inv_root_m1`` (``1/(√G − 1)``, 0 for G ≤ 1), ``n_first`` (``1/√G − 1``),
    ``n_rest`` (``1/√G``) and ``h`` (``h_G``, as :func:`householder_max_entry`
    for G ≥ 2). Each entry is computed elementwise with the same float64
    operations as on a per-group array, so ``table[name][sizes]`` is bit for
    bit what those operations give on ``sizes``; kept between calls up to
    ``SIZES_KEPT`` sizes (grown by doubling: the numbers never change), so a
    call pays one gather instead of a dozen NumPy calls. Entry 0 is never read.
    The numbers are stacked rows, so that one gather gives all of a group's:
    ``update`` (G, 4), the ``UPDATE_NUMBERS``; ``scale`` (G, 3), ``√G``,
    ``h_G`` and ``G − 1`` (step 4 of :func:`block_householder`); the names
    above are columns of these.
    """
    global _SIZE_TABLE
    if max_size >= SIZES_KEPT:
        return _size_numbers(max_size + 1)
    if _SIZE_TABLE.get("g", np.empty(0)).size <= max_size:  # a new table, swapped in whole
        _SIZE_TABLE = _size_numbers(min(max(64, 2 * max_size + 1), SIZES_KEPT))
    return _SIZE_TABLE


def _size_numbers(n: int) -> dict[str, np.ndarray]:
    """:func:`size_table`'s numbers for G = 0 … n − 1."""
    g = np.arange(n, dtype=np.float64)
    update = np.empty((n, 4))
    root, inv_root_m1, n_first, n_rest = update.T  # columns, in the order of UPDATE_NUMBERS
    with np.errstate(divide="ignore", invalid="ignore"):
        np.sqrt(g, out=root)
        inv_root_m1[:] = 0.0
        np.divide(1.0, root - 1.0, out=inv_root_m1, where=g > 1)
        np.divide(1.0, root, out=n_rest)
        np.subtract(n_rest, 1.0, out=n_first)
        off = 1.0 / (g - root)
        h = np.maximum(np.maximum(1.0 / root, np.abs(1.0 - off)), np.where(g >= 3, off, 0.0))
    scale = np.stack([root, h, g - 1.0], axis=1)
    table = {"g": g, "update": update, "scale": scale, "h": scale[:, 1]}
    table.update(zip(UPDATE_NUMBERS, update.T, strict=True))
    return table


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

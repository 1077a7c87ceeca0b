"""BHQ's transform ``T x`` (or ``T⁻¹ x``) on a NumPy matrix, fast and bit for bit the reference.

:func:`refqt.quant.householder.apply_transform` is the definition: per group,
take its rows, pre-scale, rank-1 Householder update, post-scale
(docs/theory/quantizers.md, "BHQ"). :func:`apply_transform_fast` spells the
same float operations on the same numbers, in the same order, two ways,
chosen by the size of the matrix (N, D):

* ``N·D ≤ BLOCK_ELEMENTS``: every group at once, the rows gathered
  position-major (:mod:`refqt.quant.householder_small`), a few dozen NumPy
  calls in all;
* bigger: group by group over blocks of columns that fit in a cache,
  into ``out=`` buffers, three passes per element.

tests/test_quant_fast.py checks both against the reference, bit for bit, on
drawn groupings and block widths (it shrinks ``BLOCK_ELEMENTS`` to send small
matrices down the blocked spelling).
"""

from __future__ import annotations

import numpy as np

from refqt.quant.householder import BlockHouseholder
from refqt.quant.householder_small import position_major, transform_position_major

BLOCK_ELEMENTS = 1 << 17
"""Elements of a group's rows processed at once by the blocked spelling (512 KiB of float32).

Also the size up to which a whole matrix goes position-major instead."""


def apply_transform_fast(
    t: BlockHouseholder, x2: np.ndarray, out2: np.ndarray, inverse: bool = False
) -> None:
    """NumPy ``out2 = T x2`` (or ``T⁻¹ x2``), as the reference computes it; ``out2`` may be ``x2``.

    The reference is :func:`~refqt.quant.householder.apply_transform`. A
    matrix of up to ``BLOCK_ELEMENTS`` elements (many short rows, e.g. one
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

    Gathers the rows position-major
    (:func:`~refqt.quant.householder_small.position_major`), applies
    :func:`~refqt.quant.householder_small.transform_position_major` and puts
    them back. All rows are gathered before anything is written, so ``out2``
    may be ``x2``.
    """
    c = position_major(t, out2.dtype)
    a = x2.take(c["perm"], axis=0).astype(out2.dtype, copy=False)  # take: ~5× faster than x2[perm] here
    transform_position_major(t, a, inverse)
    a.take(c["unperm"], axis=0, out=out2)

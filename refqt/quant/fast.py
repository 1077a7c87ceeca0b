"""NumPy fast paths: the same float operations as the reference, chunk by chunk.

Everything here works in place over blocks of about ``CHUNK`` elements that
stay in the CPU cache, with NumPy ``out=`` arguments, so a quantize-dequantize
of a (128, 64, 56, 56) gradient makes no full-size temporary besides its
output. Each function mirrors a reference computation in
:mod:`refqt.quant.grid` / :mod:`refqt.quant.householder` operation for
operation, so for the same noise codes the results are bit-identical
(``tests/test_quant_fast.py`` checks this).

Used only on the NumPy backend (``Backend.native is numpy``); CuPy and
array_api_strict take the reference path.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from refqt.quant.grid import AffineGrid
from refqt.quant.rounding import NOISE_BITS, NoiseStream

CHUNK = 1 << 15
"""Elements per block (128 KiB of float32: several buffers fit in L2)."""


def row_major_blocks(n_rows: int, n_cols: int, chunk: int) -> Iterator[tuple[int, int, int, int]]:
    """Blocks ``(r0, r1, c0, c1)`` of an (n_rows, n_cols) matrix, in row-major element order.

    Whole rows when a row is shorter than ``chunk``, else pieces of one row;
    either way the blocks, read in order, visit the elements in row-major
    order, which is the order the noise codes are drawn in.
    """
    if n_cols >= chunk:
        for r in range(n_rows):
            for c0 in range(0, n_cols, chunk):
                yield r, r + 1, c0, min(n_cols, c0 + chunk)
    else:
        h = max(1, chunk // max(n_cols, 1))
        for r0 in range(0, n_rows, h):
            yield r0, min(n_rows, r0 + h), 0, n_cols


def _part(p: Any, r0: int, r1: int, c0: int, c1: int) -> Any:
    """The piece of a broadcast parameter ((1|N), (1|D)) that meets block (r0:r1, c0:c1)."""
    rows = slice(r0, r1) if p.shape[0] > 1 else slice(None)
    cols = slice(c0, c1) if p.shape[1] > 1 else slice(None)
    return p[rows, cols]


def row_ranges(x2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row ``(min, max)`` of an (N, D) array, each block read while it is in cache."""
    n, d = x2.shape
    mins = np.empty(n, dtype=x2.dtype)
    maxs = np.empty(n, dtype=x2.dtype)
    h = max(1, (8 * CHUNK) // max(d, 1))
    for r0 in range(0, n, h):
        block = x2[r0 : r0 + h]
        np.min(block, axis=1, out=mins[r0 : r0 + h])
        np.max(block, axis=1, out=maxs[r0 : r0 + h])
    return mins, maxs


def round_onto_grid(x2: np.ndarray, grid: AffineGrid, stream: NoiseStream | None, out2: np.ndarray) -> None:
    """``out2 = lo + clip(⌊(x2 − lo)·inv_step + u⌋)·step``, chunk by chunk (``out2`` may be ``x2``).

    ``u = (m + ½)/2¹⁶`` with codes ``m`` taken from ``stream`` in row-major
    order; round-to-nearest (``u = ½``) when ``stream`` is None.
    """
    n, d = x2.shape
    work = grid.step.dtype
    y_buf = np.empty(min(CHUNK, max(n * d, 1)), dtype=work)
    u_buf = np.empty_like(y_buf)
    half = work.type(0.5)
    unit = work.type(2.0**-NOISE_BITS)
    for r0, r1, c0, c1 in row_major_blocks(n, d, CHUNK):
        shape = (r1 - r0, c1 - c0)
        size = shape[0] * shape[1]
        y = y_buf[:size].reshape(shape)
        xb = x2[r0:r1, c0:c1]
        inv = _part(grid.inv_step, r0, r1, c0, c1)
        if grid.lo is None:
            np.multiply(xb, inv, out=y)
        else:
            lo = _part(grid.lo, r0, r1, c0, c1)
            np.subtract(xb, lo, out=y)
            np.multiply(y, inv, out=y)
        if stream is None:
            np.add(y, half, out=y)
        else:
            u = u_buf[:size].reshape(shape)
            np.add(stream.take(size).reshape(shape), half, out=u)
            np.multiply(u, unit, out=u)
            np.add(y, u, out=y)
        np.floor(y, out=y)
        if not grid.y_nonnegative:
            np.maximum(y, _part(grid.kmin, r0, r1, c0, c1), out=y)
        np.minimum(y, _part(grid.kmax, r0, r1, c0, c1), out=y)
        ob = out2[r0:r1, c0:c1]
        step = _part(grid.step, r0, r1, c0, c1)
        if grid.lo is None:
            np.multiply(y, step, out=ob)
        else:
            np.multiply(y, step, out=y)
            np.add(y, lo, out=ob)

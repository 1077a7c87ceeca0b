"""NumPy fast paths: the same float operations as the reference, chunk by chunk.

Everything here works in place over blocks of about ``CHUNK`` elements that
stay in the CPU cache, with NumPy ``out=`` arguments, so a quantize-dequantize
of a (128, 64, 56, 56) gradient makes no full-size temporary besides its
output. Each function mirrors a reference computation in
:mod:`refqt.quant.grid` / :mod:`refqt.quant.householder` operation for
operation, so for the same noise codes the results are bit-identical
(``tests/test_quant_fast.py`` checks this).

Two spellings, chosen in one place, :func:`is_small`: an array of at most
``SMALL`` elements (the teaching models' gradients, e.g. a (640, 32) per-token
gradient) is done whole, in as few NumPy calls as the arithmetic allows --
grid numbers that are one value for the whole array passed as scalars, the
noise codes drawn in one call, the output used as the working buffer, and,
for PTQ's one grid of known range, a clamp that cannot change a level
skipped (:func:`clamps_that_bite`) -- since
there a call's fixed cost, not the memory traffic, is the price
(:func:`round_small`, :func:`tensor_range`, the folded :func:`column_ranges`).
Larger arrays go block by block through the cache. Both spellings do the
reference's float operations on the same numbers, so they agree bit for bit.

Used only on the NumPy backend (``Backend.native is numpy``); CuPy and
array_api_strict take the reference path.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from refqt.quant.grid import AffineGrid
from refqt.quant.rounding import NOISE_BITS, NoiseStream

CHUNK = 1 << 16
"""Elements per block: 256 KiB of float32, so a block's input, output, noise
codes and the three scratch buffers (about 1.4 MiB) stay in a 2 MiB L2 cache.
Measured on the benchmark layer: 2¹⁶ is ~8 % faster than 2¹⁵, 2¹⁷ no faster."""


SMALL = 1 << 18
"""Arrays of at most this many elements take the whole-array spelling (:func:`is_small`): 1 MiB of
float32, whose few temporaries still sit in the cache. Measured on the digits CNN's gradients (5 bits,
one thread, shared machine): (128, 32, 8, 8) PTQ 434 µs whole against 540 µs in blocks, BHQ 1.6 ms
against 2.3 ms; (32, 16, 8, 8) has no blocks to save."""


def is_small(size: int) -> bool:
    """The one test that picks the whole-array spelling over the blocked one."""
    return size <= SMALL


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


SHORT_ROW = 64
"""Rows of at most this many entries are reduced through a transposed copy (see row_ranges)."""


def row_ranges(x2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row ``(min, max)`` of an (N, D) array, each block read while it is in cache.

    Short rows (D ≤ ``SHORT_ROW``, e.g. one row per token) are reduced from a
    transposed copy of the block: NumPy's reduction along a short last axis
    is several times slower than along the first axis of a contiguous array
    (768 × 32: 157 µs vs 29 µs). Min and max are exact, so the result is the same.
    """
    n, d = x2.shape
    if d <= SHORT_ROW and n * d <= 8 * CHUNK:  # one block: no buffers, no loop
        block = np.ascontiguousarray(x2.T)
        return block.min(axis=0), block.max(axis=0)
    mins = np.empty(n, dtype=x2.dtype)
    maxs = np.empty(n, dtype=x2.dtype)
    h = max(1, (8 * CHUNK) // max(d, 1))
    for r0 in range(0, n, h):
        block = x2[r0 : r0 + h]
        axis = 1
        if d <= SHORT_ROW:
            block, axis = np.ascontiguousarray(block.T), 0
        np.min(block, axis=axis, out=mins[r0 : r0 + h])
        np.max(block, axis=axis, out=maxs[r0 : r0 + h])
    return mins, maxs


def column_ranges(x2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column ``(min, max)`` of an (N, D) array, over blocks of columns that stay in cache.

    Reducing along the first axis combines whole rows (``minimum`` of two
    contiguous rows), NumPy's fast case; the block's second reduction reads
    it from cache.
    """
    n, d = x2.shape
    if is_small(n * d) and n > 1:
        if d <= SHORT_ROW:  # (640, 32): 23 µs folded against 41 µs
            return _fold_rows(x2, np.minimum), _fold_rows(x2, np.maximum)
        return x2.min(axis=0), x2.max(axis=0)  # long rows: (32, 1024) 8 µs against 25 µs folded
    mins = np.empty(d, dtype=x2.dtype)
    maxs = np.empty(d, dtype=x2.dtype)
    w = max(1, (8 * CHUNK) // max(n, 1))
    for c0 in range(0, d, w):
        block = x2[:, c0 : c0 + w]
        np.min(block, axis=0, out=mins[c0 : c0 + w])
        np.max(block, axis=0, out=maxs[c0 : c0 + w])
    return mins, maxs


def _fold_rows(x2: np.ndarray, op: Any) -> np.ndarray:
    """``op`` (``np.minimum`` / ``np.maximum``) of all rows of a C-contiguous (N, D) array, (D,).

    Halving: the first half of the rows against the second, which are two
    contiguous blocks, so each step is one long loop however short the rows
    (NumPy's reduction along axis 0 of a (640, 32) array makes one short
    loop per row and is ~10× slower). Min and max are exact in any order.
    """
    m = np.ascontiguousarray(x2)
    while m.shape[0] > 1:
        h = m.shape[0] // 2
        head = op(m[:h], m[h : 2 * h])
        if m.shape[0] % 2:
            op(head[:1], m[2 * h :], out=head[:1])
        m = head
    return m[0]


def tensor_range(x2: np.ndarray) -> tuple[float, float]:
    """``(min, max)`` of the whole array as Python floats (NaN if it holds one): two calls when small."""
    if is_small(x2.size):
        return float(x2.min()), float(x2.max())
    mins, maxs = row_ranges(x2)
    return float(mins.min()), float(maxs.max())


def _constant_bound(bound: Any, size: int) -> np.ndarray | None:
    """A (size,) buffer filled with ``bound`` when all its entries are equal, else None.

    ``np.minimum``/``np.maximum`` run several times faster between two
    contiguous arrays than against a broadcast scalar, so a constant clamp
    bound is materialised once per call.
    """
    first = bound.reshape(-1)[0]
    if not np.all(bound == first):
        return None
    return np.full(size, first, dtype=bound.dtype)


def round_block(
    xb: np.ndarray,
    ob: np.ndarray,
    grid: AffineGrid,
    rows: slice,
    cols: slice,
    codes: np.ndarray | None,
    scratch: tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None],
) -> None:
    """One in-cache block: ``ob = lo + clip(⌊(xb − lo)·inv_step + u⌋)·step`` (``ob`` may be ``xb``).

    ``rows``/``cols`` say where the block sits in the (N, D) matrix (to pick
    the grid's parameters); ``codes`` are its noise codes (None: nearest);
    ``scratch`` is ``(y, u, kmin_full, kmax_full)`` from :func:`scratch_buffers`.
    Passes: two for ``y``, three to turn the codes into ``u`` (an exact cast,
    ``+ ½``, ``·2⁻¹⁶``), one add, floor, clamp, two for the values.
    """
    shape = xb.shape
    size = shape[0] * shape[1]
    y_buf, u_buf, kmin_buf, kmax_buf = scratch
    y = y_buf[:size].reshape(shape)
    work = y.dtype.type

    def part(p: Any) -> Any:
        return p[rows if p.shape[0] > 1 else slice(None), cols if p.shape[1] > 1 else slice(None)]

    inv = part(grid.inv_step)
    if grid.lo is None:
        np.multiply(xb, inv, out=y)
    else:
        lo = part(grid.lo)
        np.subtract(xb, lo, out=y)
        np.multiply(y, inv, out=y)
    if codes is None:
        np.add(y, work(0.5), out=y)
    else:
        u = u_buf[:size].reshape(shape)
        np.copyto(u, codes, casting="unsafe")  # uint16 → float: exact
        np.add(u, work(0.5), out=u)
        np.multiply(u, work(2.0**-NOISE_BITS), out=u)
        np.add(y, u, out=y)
    np.floor(y, out=y)
    if not grid.y_nonnegative:
        np.maximum(y, part(grid.kmin) if kmin_buf is None else kmin_buf[:size].reshape(shape), out=y)
    np.minimum(y, part(grid.kmax) if kmax_buf is None else kmax_buf[:size].reshape(shape), out=y)
    step = part(grid.step)
    if grid.lo is None:
        np.multiply(y, step, out=ob)
    else:
        np.multiply(y, step, out=y)
        np.add(y, lo, out=ob)


def scratch_buffers(
    grid: AffineGrid, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Buffers for :func:`round_block` on blocks of up to ``size`` elements.

    A clamp bound that is the same for every element is materialised as a
    full buffer: ``np.minimum``/``np.maximum`` run about twice as fast between
    two contiguous arrays as against a broadcast scalar.
    """
    work = grid.step.dtype
    y = np.empty(size, dtype=work)
    u = np.empty_like(y)
    kmin = None if grid.y_nonnegative else _constant_bound(grid.kmin, size)
    return y, u, kmin, _constant_bound(grid.kmax, size)


def round_onto_grid(x2: np.ndarray, grid: AffineGrid, stream: NoiseStream | None, out2: np.ndarray) -> None:
    """``out2 = lo + clip(⌊(x2 − lo)·inv_step + u⌋)·step``, chunk by chunk (``out2`` may be ``x2``).

    ``u = (m + ½)/2¹⁶`` with codes ``m`` taken from ``stream`` in row-major
    order; round-to-nearest (``u = ½``) when ``stream`` is None.
    """
    n, d = x2.shape
    if is_small(n * d):
        round_small(x2, grid, None if stream is None else stream.take(n * d).reshape(n, d), out2)
        return
    scratch = scratch_buffers(grid, min(CHUNK, max(n * d, 1)))
    for r0, r1, c0, c1 in row_major_blocks(n, d, CHUNK):
        shape = (r1 - r0, c1 - c0)
        codes = None if stream is None else stream.take(shape[0] * shape[1]).reshape(shape)
        rows, cols = slice(r0, r1), slice(c0, c1)
        round_block(x2[rows, cols], out2[rows, cols], grid, rows, cols, codes, scratch)


def _operand(p: Any, work: Any) -> Any:
    """A grid parameter as ``round_small`` uses it: a ``work`` scalar if it is one number, else the array."""
    return work(p.reshape(-1)[0]) if p.size == 1 else p


_CONSTANTS: dict[tuple[Any, int, Any], np.ndarray] = {}
CONSTANTS_KEPT = 8
"""Read-only constant arrays :func:`constant_like` keeps (it forgets them all when one more is asked for)."""


def constant_like(y: np.ndarray, value: Any) -> np.ndarray:
    """A read-only array of ``y``'s shape and dtype filled with ``value``, kept between calls.

    ``np.minimum`` of two contiguous arrays is several times faster than
    against a broadcast scalar (20,480 float32: 2 µs against 11 µs), and a
    quantizer's clamp bound ``B`` is the same call after call, so the filled
    array is made once (at most ``CONSTANTS_KEPT`` of them, small arrays only).
    """
    key = (float(value), y.size, y.dtype)
    found = _CONSTANTS.get(key)
    if found is None:
        if len(_CONSTANTS) >= CONSTANTS_KEPT:
            _CONSTANTS.clear()
        found = np.full(y.size, value, dtype=y.dtype)
        found.flags.writeable = False
        _CONSTANTS[key] = found
    return found.reshape(y.shape)


def round_small(x2: np.ndarray, grid: AffineGrid, codes: np.ndarray | None, out2: np.ndarray) -> None:
    """Whole-array ``out2 = lo + clip(⌊(x2 − lo)·inv_step + u⌋, kmin, kmax)·step`` (``out2`` may be ``x2``).

    ``codes``: the (N, D) noise codes (None: round to nearest). The same float
    operations as :meth:`AffineGrid.round` / :meth:`AffineGrid.values` on the
    same numbers, about ten NumPy calls in all: ``u = m·2⁻¹⁶ + 2⁻¹⁷`` (both
    exact, so the same ``u`` as ``(m + ½)·2⁻¹⁶``), the upper clamp alone when
    ``lo`` is the minimum (``y ≥ 0``), a bound that is one number as a kept
    constant array (:func:`constant_like`), ``out2`` itself as the working
    buffer when it has the working dtype.
    """
    work_dtype = grid.step.dtype
    work = work_dtype.type
    if x2.dtype != work_dtype:  # float16: computed in float32, as the reference does
        x2 = x2.astype(work_dtype)
    lo = None if grid.lo is None else _operand(grid.lo, work)
    round_values(
        x2, _operand(grid.inv_step, work), _operand(grid.step, work), _operand(grid.kmin, work),
        _operand(grid.kmax, work), lo, grid.y_nonnegative, codes, out2,
    )  # fmt: skip


def round_values(
    x2: np.ndarray,
    inv: Any,
    step: Any,
    kmin: Any,
    kmax: Any,
    lo: Any,
    y_nonnegative: bool,
    codes: np.ndarray | None,
    out2: np.ndarray,
    ends: tuple[float, float] | None = None,
) -> None:
    """:func:`round_small` on grid numbers given directly: work-dtype scalars or arrays that broadcast.

    ``x2`` already in the working dtype (that of ``inv``); ``lo`` None: origin 0;
    ``y_nonnegative``: ``(x2 − lo)·inv ≥ 0`` everywhere, so the lower clamp is skipped;
    ``ends``: ``(min, max)`` of ``x2``, given with a one-number grid, lets a clamp
    that cannot change any level be skipped (:func:`clamps_that_bite`).
    """
    work_dtype = np.result_type(inv)
    work = work_dtype.type
    y = out2 if out2.dtype == work_dtype else np.empty(x2.shape, dtype=work_dtype)
    if isinstance(lo, np.ndarray) and lo.shape[0] > 1 == lo.shape[1] and x2.shape[1] <= SHORT_ROW:
        lo = np.repeat(lo, x2.shape[1], axis=1)  # a per-row lo, used twice, spread once: 3 µs saved
    if lo is None:
        np.multiply(x2, inv, out=y)
    else:
        np.subtract(x2, lo, out=y)
        np.multiply(y, inv, out=y)
    if codes is None:
        np.add(y, work(0.5), out=y)
    else:  # u = m·2⁻¹⁶ + 2⁻¹⁷: an exact cast, two exact passes ((640, 32): 5.1 µs; cast in the multiply: 6.1)
        u = codes.astype(work_dtype)
        np.multiply(u, work(2.0**-NOISE_BITS), out=u)
        np.add(u, work(2.0 ** -(NOISE_BITS + 1)), out=u)
        np.add(y, u, out=y)
    np.floor(y, out=y)
    low, high = not y_nonnegative, True
    if ends is not None and not isinstance(inv, np.ndarray):
        low, high = clamps_that_bite(ends, inv, lo, kmin, kmax, codes is None)
        low = low and not y_nonnegative
    for bites, bound, clamp in ((low, kmin, np.maximum), (high, kmax, np.minimum)):
        if bites and (ends is not None or isinstance(bound, np.ndarray)):
            clamp(y, bound, out=y)  # PTQ's bounds change with the data: not worth keeping
        elif bites:  # a fixed bound (0, B) is a kept constant array (see constant_like)
            clamp(y, constant_like(y, bound), out=y)
    if lo is None:
        np.multiply(y, step, out=out2)
    else:
        np.multiply(y, step, out=y)
        np.add(y, lo, out=out2)


U_ENDS = (2.0 ** -(NOISE_BITS + 1), 1.0 - 2.0 ** -(NOISE_BITS + 1))
"""The smallest and largest noise ``u = (m + ½)/2¹⁶`` (m = 0 and 2¹⁶ − 1)."""


def clamps_that_bite(
    ends: tuple[float, float], inv: Any, lo: Any, kmin: Any, kmax: Any, nearest: bool
) -> tuple[bool, bool]:
    """Whether the lower / upper clamp can change any level ``⌊(x − lo)·inv + u⌋`` of a one-number grid.

    Why the answer is exact: each step of the rounding -- ``x − lo``, ``·inv``
    with ``inv > 0``, ``+ u``, ``⌊·⌋`` -- is one correctly rounded operation in
    the working dtype, and rounding to nearest never reverses an order, so
    every level lies between that of the smallest ``x`` with the smallest
    ``u`` and that of the largest ``x`` with the largest (:data:`U_ENDS`;
    ``u = ½`` when ``nearest``). Those two levels are computed here with the
    same scalar operations in the working dtype (float16 ends are exact in
    float32), so a clamp reported as not biting would have changed nothing.
    Used by PTQ, whose one grid comes with its range; on a Gaussian (640, 32)
    gradient its clamps do not bite at 5 or 8 bits: two 2 µs passes saved for
    a 2 µs check (a ``clip`` of both was 5 µs).
    """
    work = type(inv)
    u_lo, u_hi = (0.5, 0.5) if nearest else U_ENDS
    if lo is None:
        y_lo, y_hi = work(ends[0]) * inv, work(ends[1]) * inv
    else:
        y_lo, y_hi = (work(ends[0]) - lo) * inv, (work(ends[1]) - lo) * inv
    k_lo, k_hi = y_lo + work(u_lo), y_hi + work(u_hi)  # working-dtype scalars, rounded as the arrays are
    if not (math.isfinite(k_lo) and math.isfinite(k_hi)):
        return True, True
    return bool(math.floor(k_lo) < kmin), bool(math.floor(k_hi) > kmax)

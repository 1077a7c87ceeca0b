"""Both gradient paths of an FQT layer from one pass over its output gradient.

An FQT layer's backward quantizes its output gradient G twice, independently
(docs/theory/qat-vs-fqt.md): ``Q_b`` on the rows of G for the input gradient,
then ``Q_w`` for the weight gradient, each call drawing its noise from a fresh
:class:`~refqt.quant.rounding.NoiseStream` on the layer's generator
(:meth:`refqt.fqt.layer.LayerQuantizer.bifurcate`). On a small NumPy G
(:func:`refqt.quant.fast.is_small`) :func:`quantize_pair` gives the same two
arrays, bit for bit, for the same generator state, sharing what both calls
would compute:

* the noise: one generator call for both paths' codes
  (:func:`~refqt.quant.rounding.fresh_stream_codes`);
* PTQ + PTQ (the per-tensor mode): one tensor range, and its finiteness
  check, for both grids (the grids differ when the bits do, 5 and 8 by default);
* PSQ + PSQ per column on short rows (D ≤ ``fast.SHORT_ROW``, a token
  gradient): one transposed copy of G gives both the row ranges and the column
  ranges ((640, 32): the column ranges in 5 µs instead of 23 by folding).

:func:`pairs` says which quantizer pairs these are; any other pair, a large or
empty G, or another backend keeps the two calls.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from refqt.backend import check_generator
from refqt.quant import fast
from refqt.quant.base import GradientQuantizer
from refqt.quant.checks import NonFiniteInputError, check_finite_ranges, check_float_array, work_dtype
from refqt.quant.psq import PSQ, channels_of_columns
from refqt.quant.ptq import PTQ
from refqt.quant.rounding import fresh_stream_codes


def pairs(q_b: GradientQuantizer, q_w: GradientQuantizer, g: np.ndarray) -> bool:
    """Whether :func:`quantize_pair` handles ``Q_b = q_b``, ``Q_w = q_w`` on the NumPy gradient ``g``."""
    if not (g.size and fast.is_small(g.size)):
        return False
    if type(q_b) is PTQ and type(q_w) is PTQ:
        return True
    return type(q_b) is PSQ and type(q_w) is PSQ and q_b.axis == "row" and q_w.axis != "row"


def quantize_pair(
    q_b: GradientQuantizer,
    q_w: GradientQuantizer,
    g: np.ndarray,
    rows: tuple[int, int],
    rng: np.random.Generator,
    out_w: np.ndarray,
) -> np.ndarray:
    """``Q_b(G)`` and, into ``out_w``, ``Q_w(G)``, as two calls ``q_b``, ``q_w`` with ``rng`` would give them.

    ``g``: the output gradient (NumPy, any strides, at most ``fast.SMALL``
    entries); ``rows``: the (N, D) shape ``q_b`` sees it in (all leading axes,
    or the samples of a conv gradient), also the row view ``q_w`` rounds in;
    ``out_w``: the array ``q_w`` quantizes into, of the shape ``q_w`` sees G in
    (its channels are axis 1 of it: (rows, out) for a linear layer, G's own
    (N, F, Ho, Wo) for a conv).
    Returns ``Q_b(G)``, a new array of g's shape; the generator advances as
    over the two calls, also when one of them refuses G: both grids are found
    before any noise is drawn, and when only ``Q_w``'s refuses (a range too
    wide for it), ``Q_b``'s noise is drawn first, as its call would have.
    """
    check_generator(q_b.label, rng)
    check_float_array(q_b.label, g.reshape(rows))
    if not pairs(q_b, q_w, g):
        raise ValueError(f"quantize_pair: no one-pass path for Q_b = {q_b!r}, Q_w = {q_w!r} on {g.shape}")
    work = work_dtype(np, g.dtype)
    x2 = np.ascontiguousarray(g.reshape(rows), dtype=work)  # one copy at most (float16, a strided G)
    pair_grids = _ptq_grids if isinstance(q_b, PTQ) else _psq_grids
    grid_b, grid_w_of, round_small = pair_grids(q_b, q_w, x2, work, out_w.shape)
    try:
        grid_w = grid_w_of()
    except NonFiniteInputError:  # Q_w refuses G: in the two calls Q_b had drawn its noise before that
        fresh_stream_codes(rng, (x2.size,))
        raise
    codes_b, codes_w = _codes(rng, rows)
    out_b = np.empty(g.shape, dtype=g.dtype)
    round_small(x2, grid_b, codes_b, out_b.reshape(rows))
    round_small(x2, grid_w, codes_w, out_w.reshape(rows))
    return out_b


def _ptq_grids(q_b: PTQ, q_w: PTQ, x2: np.ndarray, work: Any, shape_w: tuple[int, ...]) -> tuple[Any, ...]:
    """PTQ + PTQ: ``Q_b``'s grid, a function giving ``Q_w``'s, the rounding; one tensor range for both."""
    ends = q_b._tensor_range(x2, fast_path=True)
    return q_b.small_grid(ends, work), lambda: q_w.small_grid(ends, work), PTQ.round_small


def _psq_grids(q_b: PSQ, q_w: PSQ, x2: np.ndarray, work: Any, shape_w: tuple[int, ...]) -> tuple[Any, ...]:
    """PSQ + PSQ per column: ``Q_b``'s grid, a function giving ``Q_w``'s, the rounding.

    With short rows one transposed copy of G gives both the row and the column ranges.
    """
    row_mins, row_maxs, column_ranges = _row_and_column_ranges(q_b, x2)
    grid_b = q_b._grid_of_ranges(row_mins, row_maxs, x2.shape, work, fast_path=True)

    def grid_w() -> Any:
        if column_ranges is None:
            mins, maxs = q_w._channel_ranges(x2, True, shape_w)
        else:
            mins, maxs = channels_of_columns(*column_ranges, shape_w, np)
        return q_w._grid_of_ranges(mins, maxs, shape_w, work, fast_path=True)

    return grid_b, grid_w, fast.round_small


def _codes(rng: np.random.Generator, rows: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The noise codes of the two calls, each (N, D), from one generator call."""
    n = rows[0] * rows[1]
    codes_b, codes_w = fresh_stream_codes(rng, (n, n))
    return codes_b.reshape(rows), codes_w.reshape(rows)


def _row_and_column_ranges(
    q_b: PSQ, x2: np.ndarray
) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """Per-row ``(min, max)`` of (N, D) ``x2``, checked as ``q_b`` checks them, and per-column ones if cheap.

    With short rows the row ranges are reduced from a transposed (D, N) copy
    (:func:`refqt.quant.fast.row_ranges`); its rows are x2's columns, so the
    column ranges are two fast reductions more. Otherwise None for them.
    """
    n, d = x2.shape
    if d > fast.SHORT_ROW:
        mins, maxs = q_b._ranges(x2, fast_path=True, axis=1)
        return mins, maxs, None
    xt = np.ascontiguousarray(x2.T)
    mins, maxs = xt.min(axis=0), xt.max(axis=0)
    check_finite_ranges(q_b.label, mins, maxs, (n, d))
    return mins, maxs, (xt.min(axis=1), xt.max(axis=1))


"""Exact conditional variance of stochastic rounding, fused into one device reduction.

For the rows ``y2`` of ``T x`` on an affine grid (docs/theory/variance.md,
docs/theory/stochastic-rounding.md)::

    E‖SR(y) − y‖²·step² = Σ p(1 − p)·step²,    p = y − ⌊y⌋,  y = clip((x − lo)·inv_step, kmin, kmax)

On CuPy one ``ReductionKernel`` maps every element to ``p(1 − p)·step²`` (in
the working dtype, as :meth:`refqt.quant.grid.AffineGrid.elementwise_variance`
computes it) and sums in float64 -- over the whole matrix or per row -- so no
(N, D) array of variances is ever stored. On NumPy the mirror computes the
same per-element numbers and sums them with NumPy; the two sums differ only
in their order (float64 round-off).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from refqt.gpu.rounding import KERNEL_OPTIONS
from refqt.quant.grid import AffineGrid

VARIANCE_SOURCE = r"""
// refqt/gpu/variance.py: Var of stochastic rounding of one element, y in grid units.
template <typename F>
__host__ __device__ inline double refqt_sr_variance(F y, F kmin, F kmax, F step) {
    y = y < kmin ? kmin : y;
    y = y > kmax ? kmax : y;
    F p = y - floor(y);
    return (double)(p * ((F)1.0 - p) * (step * step));
}
"""
"""Preamble of the variance reduction: one element's ``p(1 − p)·step²`` (host and device)."""

VARIANCE_MAP = "refqt_sr_variance<W>(has_lo ? ((W)x - lo) * inv_step : (W)x * inv_step, kmin, kmax, step)"
"""The map expression of the reduction."""

VARIANCE_PARAMS = ("X x, W lo, W inv_step, W step, W kmin, W kmax, int32 has_lo", "float64 total")
"""In / out parameters of the reduction."""


@functools.cache
def _variance_kernel() -> Any:
    import cupy

    return cupy.ReductionKernel(
        *VARIANCE_PARAMS,
        map_expr=VARIANCE_MAP,
        reduce_expr="a + b",
        post_map_expr="total = a",
        identity="0",
        name="refqt_sr_variance_sum",
        reduce_type="double",
        preamble=VARIANCE_SOURCE,
        options=KERNEL_OPTIONS,
    )


def variance_sums(y2: Any, grid: AffineGrid, axis: int | None = None) -> Any:
    """``Σ p(1 − p)·step²`` of the (N, D) rows ``y2`` on ``grid``: float64, 0-d, or (N,) per row (axis=1).

    CuPy: one fused reduction. NumPy: :func:`variance_sums_mirror`.
    """
    if isinstance(y2, np.ndarray):
        return variance_sums_mirror(y2, grid, axis)
    lo = grid.lo if grid.lo is not None else grid.kmin * 0  # unused when has_lo is 0
    return _variance_kernel()(
        y2, lo, grid.inv_step, grid.step, grid.kmin, grid.kmax, np.int32(grid.lo is not None), axis=axis
    )


def variance_sums_mirror(y2: np.ndarray, grid: AffineGrid, axis: int | None = None) -> np.ndarray:
    """NumPy mirror of the reduction: the same per-element numbers, summed in float64."""
    work = grid.step.dtype
    v = grid.elementwise_variance(y2.astype(work, copy=False)).astype(np.float64)
    return np.sum(v, axis=axis)

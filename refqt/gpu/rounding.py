"""Fused stochastic rounding onto an affine grid, noise made in the kernel.

One elementwise pass per quantize-dequantize (docs/theory/stochastic-rounding.md)::

    y = (x − lo)·inv_step                    (x·inv_step when the grid's origin is 0)
    m = code(key, start + i)                 (i: the element's row-major index; refqt/gpu/noise.py)
    k = clip(⌊y + (m + ½)/2¹⁶⌋, kmin, kmax)
    x̂ = k·step + lo                          (k·step when the origin is 0)

on CuPy one ``ElementwiseKernel`` (grid numbers broadcast from (1, 1), (N, 1)
or (1, D) arrays; compiled with ``--fmad=false`` so ``k·step + lo`` is two
roundings, as in NumPy), on NumPy (:func:`refqt.backend.emulate_device`) the
same operations as :class:`refqt.quant.grid.AffineGrid` does them, on codes
from :func:`refqt.gpu.noise.codes_at`. For the same key both give the same
bits; they are the same operations as the reference path
``q.quantize(x, q.uniform(x, rng))`` too, so the device path keeps
``q(x, rng) == q.quantize(x, q.uniform(x, rng))``.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from refqt.gpu.noise import CUDA_SOURCE, codes_at
from refqt.quant.grid import AffineGrid
from refqt.quant.rounding import NOISE_BITS

ROUND_SOURCE = (
    CUDA_SOURCE
    + r"""
// refqt/gpu/rounding.py: the level k of one element, y in grid units, m its noise code.
template <typename F>
__host__ __device__ inline F refqt_round_level(F y, unsigned int m, F kmin, F kmax) {
    F u = ((F)m + (F)0.5) * (F)(1.0 / 65536.0);
    F k = floor(y + u);
    k = k < kmin ? kmin : k;
    return k > kmax ? kmax : k;
}
"""
)
"""Preamble of the rounding kernel: the noise code and the rounding of one element (host and device)."""

ROUND_BODY = r"""
W y = has_lo ? ((W)x - lo) * inv_step : (W)x * inv_step;
W k = refqt_round_level<W>(y, refqt_noise_code(key, COUNTER), kmin, kmax);
q = (X)(has_lo ? k * step + lo : k * step);
"""
"""Body of the rounding ``ElementwiseKernel``; ``COUNTER`` is one of :data:`COUNTERS`."""

COUNTERS = {
    "flat": "start + (unsigned long long)i",
    "rows": "start + (unsigned long long)row * (unsigned long long)d + (unsigned long long)(i % d)",
}
"""Element counter: ``flat``, the element's own row-major index ``i`` (CuPy's loop index);
``rows``, for rows held in another order (BHQ's groups), row ``r`` of the array being row
``row[r]`` of the matrix the codes are defined on (``d`` columns)."""

ROUND_PARAMS = {
    "flat": ("X x, W lo, W inv_step, W step, W kmin, W kmax, uint64 key, uint64 start, int32 has_lo", "X q"),
    "rows": (
        "X x, W lo, W inv_step, W step, W kmin, W kmax, uint64 key, uint64 start, int32 has_lo, "
        "int64 row, int64 d",
        "X q",
    ),
}
"""In / out parameters of the two rounding kernels."""

KERNEL_OPTIONS = ("--fmad=false",)
"""No fused multiply-add: every product and sum rounded once, as NumPy does."""


def round_body(counter: str) -> str:
    """The kernel body with the ``flat`` or ``rows`` element counter."""
    return ROUND_BODY.replace("COUNTER", COUNTERS[counter])


@functools.cache
def _round_kernel(counter: str) -> Any:
    import cupy

    return cupy.ElementwiseKernel(
        *ROUND_PARAMS[counter],
        round_body(counter),
        f"refqt_stochastic_round_{counter}",
        preamble=ROUND_SOURCE,
        options=KERNEL_OPTIONS,
    )


def round_on_device(
    x2: Any, grid: AffineGrid, key: int, start: int, out2: Any, rows: Any | None = None
) -> Any:
    """``out2 = x̂`` of the (N, D) rows ``x2`` on ``grid``, noise codes ``start … start + N·D − 1`` of ``key``.

    ``x2``: NumPy or CuPy, any float dtype (computed in the grid's working
    dtype); ``out2`` (N, D) of x2's dtype (the kernel's ``X x``, ``X q``), may
    be ``x2``. ``rows``:
    optional (N,) integer array, row r of ``x2`` being row ``rows[r]`` of the
    matrix whose row-major order numbers the codes (None: ``x2`` itself).
    CuPy: one fused kernel. NumPy: its mirror, :func:`round_mirror`.
    """
    if out2.dtype != x2.dtype:  # CuPy's kernel refuses it ("Type is mismatched"): so does the mirror
        raise TypeError(f"round_on_device: out2 must have x2's dtype {x2.dtype}, got {out2.dtype}")
    if isinstance(x2, np.ndarray):
        return round_mirror(x2, grid, key, start, out2, rows)
    lo = grid.lo if grid.lo is not None else grid.kmin * 0  # unused when has_lo is 0
    args = [x2, lo, grid.inv_step, grid.step, grid.kmin, grid.kmax]
    args += [np.uint64(key), np.uint64(start), np.int32(grid.lo is not None)]
    if rows is None:
        return _round_kernel("flat")(*args, out2)
    return _round_kernel("rows")(*args, rows.reshape(-1, 1), np.int64(x2.shape[1]), out2)


def round_mirror(
    x2: np.ndarray, grid: AffineGrid, key: int, start: int, out2: np.ndarray, rows: np.ndarray | None = None
) -> np.ndarray:
    """NumPy mirror of the rounding kernels: the same float operations, element by element."""
    work = grid.step.dtype
    n, d = x2.shape
    row = np.arange(n, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
    counters = start + row[:, None] * d + np.arange(d, dtype=np.int64)
    u = (codes_at(key, counters).astype(work) + work.type(0.5)) * work.type(2.0**-NOISE_BITS)
    y = grid.scaled(x2.astype(work, copy=False))
    out2[...] = grid.values(grid.round(y, u))
    return out2

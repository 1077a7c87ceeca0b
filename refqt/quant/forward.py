"""Deterministic forward quantizers for activations and weights (QAT and FQT).

Per-tensor, round-to-nearest, ``b`` bits (default 8), two grids:

* ``kind="affine"``: ``lo = min x``, ``step = (max − min)/B`` -- the min/max
  range, nothing clipped;
* ``kind="zero_aligned"``: PTQ's grid with 0 exactly on it (used for weights,
  so a zero weight stays zero).

The gradient passes straight through (STE, :mod:`refqt.quant.ste`).

Host synchronisation: a grid rule runs on the host, so each call reads the
tensor's ``min`` and ``max`` back from the device -- on the device path in one
transfer of two numbers (:func:`tensor_range`), one sync per quantized activation or
weight per step (44 in a QAT step of ResNet-20).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from refqt.backend import backend_of, device_path, is_array
from refqt.quant import fast
from refqt.quant.checks import (
    as_rows,
    check_bits,
    check_finite_range,
    check_float_array,
    host_min_max,
    work_dtype,
)
from refqt.quant.grid import AffineGrid, tensor_minmax_grid, zero_aligned_grid

KINDS = ("affine", "zero_aligned")


def _check_args(x: Any, bits: Any, kind: Any) -> tuple[str, int]:
    """``(owner, bits)`` after checking bits, kind and x's dtype (ValueError / TypeError)."""
    owner = f"quantize_forward(bits={bits}, kind={kind!r})"
    bits = check_bits(owner, bits)
    if kind not in KINDS:
        raise ValueError(f"quantize_forward: kind must be one of {KINDS}, got {kind!r}")
    check_float_array(owner, x)
    return owner, bits


def tensor_range(x: Any) -> tuple[float, float]:
    """``(min, max)`` of ``x`` as Python floats; on the device path in one device-to-host copy."""
    if device_path(x):
        return host_min_max(x)
    xp = backend_of(x).xp
    return float(xp.min(x)), float(xp.max(x))


def forward_grid(x: Any, bits: int = 8, kind: str = "affine") -> AffineGrid:
    """The per-tensor grid :func:`quantize_forward` rounds ``x`` onto."""
    owner, bits = _check_args(x, bits, kind)
    xp = backend_of(x).xp
    work = work_dtype(xp, x.dtype)
    mn, mx = tensor_range(x)
    check_finite_range(owner, mn, mx, tuple(x.shape))
    levels = 2**bits - 1
    if kind == "affine":
        return tensor_minmax_grid(mn, mx, levels, xp, work, owner)
    return zero_aligned_grid(mn, mx, levels, xp, work, owner)


def quantize_forward_reference(x: Any, bits: int = 8, kind: str = "affine") -> Any:
    """Plain array-API path of :func:`quantize_forward`."""
    if not is_array(x) or x.size == 0:
        _check_args(x, bits, kind)
        return x * 1
    grid = forward_grid(x, bits, kind)
    xp = backend_of(x).xp
    x2 = xp.astype(as_rows(x), grid.step.dtype)
    out = grid.values(grid.round(grid.scaled(x2), None))
    return xp.astype(xp.reshape(out, tuple(x.shape)), x.dtype)


def quantize_forward(x: Any, bits: int = 8, kind: str = "affine") -> Any:
    """Round ``x`` to the nearest point of its per-tensor ``b``-bit grid; same shape and dtype.

    Parameters
    ----------
    x : array
        Any shape, float16/32/64, any backend.
    bits : int
        1 … 16.
    kind : {"affine", "zero_aligned"}
        Min/max grid, or the grid with 0 on it.
    """
    if not is_array(x) or x.size == 0 or backend_of(x).name != "numpy":
        return quantize_forward_reference(x, bits, kind)  # (which rejects a non-array clearly)
    grid = forward_grid(x, bits, kind)
    x2 = as_rows(x)
    out = np.empty(x.shape, dtype=x.dtype)
    fast.round_onto_grid(x2, grid, None, out.reshape(x2.shape))
    return out

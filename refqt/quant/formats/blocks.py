"""Blocks and their scales: per tensor, MX (E8M0 per 32) and NVFP4 (E4M3 per 16 × FP32).

A block format stores each block of ``b`` elements as element-format values
``q`` and one shared scale; the value is ``x̂ = q · d`` with the block's
decode scale ``d``, and the elements are rounded from ``t = x · e``,
``e = 1/d`` the encode scale (docs/theory/formats.md).

Where the blocks are -- the *layout* -- on the (N, D) row view of an array:

* ``"row"``: ``b`` consecutive entries of a row (along D);
* ``"column"``: ``b`` consecutive entries of a column (along N);
* ``"tile"``: ``b × b`` tiles (2D blocks; the matrix and its transpose then
  share their blocks, so a backward pass can reuse the forward's quantized
  weights);
* per tensor: one block.

Each layout is turned into a *block matrix* (M, b) -- one block per row,
zero-padded where D or N is not a multiple of ``b`` (zeros do not change a
block's maximum) -- and back.

Scale rules, from the block maximum ``amax_b`` (and the tensor's ``amax``):

* ``tensor``: ``d = amax / max`` in the working float (FP8 "current scaling");
* ``mx`` (OCP Microscaling): ``d = 2^E``, an E8M0 power of two,
  ``E ∈ [−127, 127]``:

  - ``floor`` (the spec): ``E = ⌊log2 amax_b⌋ − emax``, so
    ``amax_b/d ∈ [2^emax, 2^(emax+1))`` -- above ``max`` it is clipped;
  - ``ceil``: the smallest ``E`` with ``amax_b/2^E ≤ max`` (nothing clipped,
    coarser grid);
  - ``even``: ``floor`` applied to ``amax_b`` rounded to the element's
    mantissa bits (to nearest even): one binade up when that rounding
    carries, so less is clipped than with ``floor``;

* ``nvfp4``: tensor encode scale ``S = max·448 / amax`` (FP32; 448 the largest
  E4M3), block scale ``s_b = E4M3(amax_b/max · S)`` rounded to nearest even,
  ``d = s_b / S``, ``e = S / s_b``. Rounding ``s_b`` down makes
  ``amax_b · e`` exceed ``max`` (clipped); a block far below the tensor's
  maximum gets a subnormal or zero ``s_b`` (a zero block scale gives 0).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from refqt.backend import namespace
from refqt.quant.formats.elements import FORMATS, ElementFormat

LAYOUTS = ("row", "column", "tile")
SCALINGS = ("tensor", "mx", "nvfp4")
SCALE_ROUNDINGS = ("floor", "ceil", "even")
E8M0_RANGE = (-127, 127)
E4M3 = FORMATS["e4m3"]


def _ceil_to(n: int, b: int) -> int:
    return -(-n // b) * b


def to_blocks(x2: Any, layout: str, block: int) -> Any:
    """The (M, b) block matrix of the (N, D) matrix ``x2`` (``b = block``, ``block²`` for tiles).

    Row-major over blocks: for ``"row"`` it is a reshape of the padded matrix
    (row r, then blocks along the row); for ``"column"`` that of its
    transpose; for ``"tile"`` tile rows, then tiles along them, each tile
    read row by row.
    """
    xp = namespace(x2)
    n, d = x2.shape
    if layout == "column":
        x2 = xp.permute_dims(x2, (1, 0)) if hasattr(xp, "permute_dims") else x2.T
        n, d = d, n
    rows = _ceil_to(n, block) if layout == "tile" else n
    cols = _ceil_to(d, block)
    if (rows, cols) != (n, d):
        padded = xp.zeros((rows, cols), dtype=x2.dtype)
        padded[:n, :d] = x2
        x2 = padded
    if layout == "tile":
        t = xp.reshape(x2, (rows // block, block, cols // block, block))
        t = xp.permute_dims(t, (0, 2, 1, 3)) if hasattr(xp, "permute_dims") else t.transpose(0, 2, 1, 3)
        return xp.reshape(t, (-1, block * block))
    return xp.reshape(x2, (-1, block))


def from_blocks(bm: Any, layout: str, block: int, shape: tuple[int, int]) -> Any:
    """Inverse of :func:`to_blocks`: the (N, D) matrix ``shape`` from its block matrix."""
    xp = namespace(bm)
    n, d = shape
    if layout == "column":
        n, d = d, n
    rows = _ceil_to(n, block) if layout == "tile" else n
    cols = _ceil_to(d, block)
    if layout == "tile":
        t = xp.reshape(bm, (rows // block, cols // block, block, block))
        t = xp.permute_dims(t, (0, 2, 1, 3)) if hasattr(xp, "permute_dims") else t.transpose(0, 2, 1, 3)
        m = xp.reshape(t, (rows, cols))
    else:
        m = xp.reshape(bm, (rows, cols))
    m = m[:n, :d]
    if layout == "column":
        m = xp.permute_dims(m, (1, 0)) if hasattr(xp, "permute_dims") else m.T
    return m


def block_amax(bm: Any) -> Any:
    """``max |x|`` of each block: (M, 1) from the (M, b) block matrix."""
    xp = namespace(bm)
    return xp.max(xp.abs(bm), axis=1, keepdims=True)


def _floor_log2(a: Any) -> Any:
    """``⌊log2 a⌋`` exactly, for ``a > 0`` (integers in a float array; ``frexp``)."""
    xp = namespace(a)
    _, e = xp.frexp(a)
    return xp.astype(e, a.dtype) - 1.0


def _pow2(e: Any) -> Any:
    xp = namespace(e)
    return xp.ldexp(xp.ones_like(e), xp.astype(e, xp.int32))


def mx_exponent(amax: Any, fmt: ElementFormat, mode: str) -> Any:
    """The E8M0 exponent ``E`` of each block's scale ``2^E`` (float array of amax's shape).

    ``amax = 0`` gives the smallest exponent, −127 (the block is all zeros).
    """
    xp = namespace(amax)
    safe = xp.where(amax > 0, amax, xp.ones_like(amax))
    e = _floor_log2(safe) - fmt.emax
    if mode == "ceil":
        e = xp.where(safe / _pow2(e) > fmt.max_value, e + 1.0, e)  # one binade up suffices
    elif mode == "even":
        if fmt.is_int:  # amax_b in element units, in [2^emax, 2^(emax+1)), rounded to an integer
            carried = xp.round(safe / _pow2(e)) >= 2.0 ** (fmt.emax + 1)
        else:  # amax_b's mantissa rounded to the element's m bits
            m = fmt.mantissa_bits
            carried = xp.round(safe / _pow2(_floor_log2(safe)) * 2.0**m) >= 2.0 ** (m + 1)
        e = xp.where(carried, e + 1.0, e)
    elif mode != "floor":
        raise ValueError(f"MX scale rounding must be one of {SCALE_ROUNDINGS}, got {mode!r}")
    e = xp.clip(e, *E8M0_RANGE)
    return xp.where(amax > 0, e, xp.full_like(e, float(E8M0_RANGE[0])))


def block_scales(
    bm: Any, fmt: ElementFormat, scaling: str, scale_rounding: str = "floor", amax_tensor: float | None = None
) -> tuple[Any, Any]:
    """``(encode, decode)`` scales of the blocks, each (M, 1) (per tensor: (1, 1)).

    ``amax_tensor``: the tensor's ``max |x|`` (computed here if None).
    Working dtype of ``bm``.
    """
    xp = namespace(bm)
    if scaling == "tensor":
        amax = float(xp.max(xp.abs(bm))) if amax_tensor is None else amax_tensor
        return scales_from_amax(xp.zeros((1, 1), dtype=bm.dtype), fmt, scaling, scale_rounding, amax)
    amax_b = block_amax(bm)
    amax = float(xp.max(amax_b)) if amax_tensor is None else amax_tensor
    return scales_from_amax(amax_b, fmt, scaling, scale_rounding, amax)


def scales_from_amax(
    amax_b: Any, fmt: ElementFormat, scaling: str, scale_rounding: str, amax_tensor: float
) -> tuple[Any, Any]:
    """``(encode, decode)`` scales shaped like ``amax_b``, from block and tensor maxima (module docstring)."""
    xp = namespace(amax_b)
    work = amax_b.dtype
    if scaling == "tensor":
        if amax_tensor == 0.0:
            return xp.zeros_like(amax_b), xp.zeros_like(amax_b)
        enc = xp.full(amax_b.shape, fmt.max_value / amax_tensor, dtype=work)
        return enc, xp.full(amax_b.shape, amax_tensor / fmt.max_value, dtype=work)
    if scaling == "mx":
        d = _pow2(mx_exponent(amax_b, fmt, scale_rounding))
        return 1.0 / d, d
    if scaling != "nvfp4":
        raise ValueError(f"block scaling must be one of {SCALINGS}, got {scaling!r}")
    s_enc = tensor_encode_scale(amax_tensor, fmt, work)
    s_b = E4M3.round_nearest_even(amax_b * (s_enc / fmt.max_value))
    nonzero = s_b > 0
    enc = xp.where(nonzero, s_enc / xp.where(nonzero, s_b, 1.0), 0.0)
    return xp.astype(enc, work), xp.astype(s_b / s_enc, work)


def tensor_encode_scale(amax: float, fmt: ElementFormat, work: Any) -> Any:
    """NVFP4's FP32 tensor scale ``S = max·448 / amax`` (1 for an all-zero tensor), as a ``work`` scalar."""
    host = np.float64 if work == np.float64 else np.float32
    if amax == 0.0:
        return host(1.0)
    return host(fmt.max_value * E4M3.max_value / amax)

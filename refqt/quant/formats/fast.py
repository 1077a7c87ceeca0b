"""NumPy fast path of a row-block format quantizer: the same steps, chunk by chunk in cache.

The reference (:meth:`BlockFormatQuantizer.quantize`) works on the (M, b)
block matrix, one block per row. Here it runs a chunk of ``R`` blocks at a
time (about ``BLOCK_CHUNK`` elements, in the CPU cache), in two passes:

1. **block maxima** from a *block-major* copy of the chunk, a (b, R) array
   with one block per column: the maximum of a block is then a maximum over
   b contiguous rows (NumPy reduces a long axis fast and a short one -- the
   16 entries of a block in the row layout -- about 20× slower);
2. **scale, round, scale back** in the row layout, where the noise codes
   (drawn in row-major order) are contiguous and a block's scale is a column
   vector broadcast along its row.

* Without a transform the float operations are those of the reference, one
  for one, so the result is the same bit for bit.
* With the random Hadamard transform ``T`` (size b = d) each block row ``x``
  becomes ``(T x)ᵀ = xᵀ Tᵀ``, one matrix product per chunk kept in ``out``
  between the passes, and goes back as ``vᵀ T``. BLAS sums the 16 products
  in its own order, the reference's butterflies in theirs: the transformed
  values agree to a few ulps, so a rounding decision that falls within
  round-off of a threshold can differ (tests/test_formats.py measures how
  rarely).

Element rounding (exact stochastic rounding, :meth:`ElementFormat.stochastic_round`)
reads the spacing off the float's exponent bits: ``2^⌊log2|t|⌋`` is ``t``'s
bits with the sign and mantissa masked off -- exact, as ``frexp`` is.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from refqt.quant.fast import CHUNK
from refqt.quant.formats.blocks import scales_from_amax
from refqt.quant.formats.elements import EXPONENT_BITS, ElementFormat
from refqt.quant.rounding import NOISE_BITS, NoiseStream

_EXPONENT = EXPONENT_BITS

BLOCK_CHUNK = 1 << 15
"""Elements per chunk: with its noise, scratch and constant buffers (~0.9 MiB at float32)."""


def spacing_into(t: np.ndarray, fmt: ElementFormat, s: np.ndarray, floor: np.ndarray) -> np.ndarray:
    """``s = 2^(max(⌊log2|t|⌋, emin) − m)`` (the element spacing at |t|) from t's exponent bits.

    ``floor``: an array like t filled with ``2^emin`` (NumPy's maximum is
    several times faster between two arrays than against a scalar).
    """
    itype, mask = _EXPONENT[t.dtype]
    bits = s.view(itype)
    np.bitwise_and(t.view(itype), itype(mask), out=bits)  # |t| with its mantissa cleared: 2^⌊log2|t|⌋
    np.maximum(s, floor, out=s)
    np.multiply(s, t.dtype.type(2.0**-fmt.mantissa_bits), out=s)
    return s


class Scratch:
    """Buffers of one chunk: spacing, noise, and the constants ``2^emin`` and ``±max`` as full arrays."""

    def __init__(self, fmt: ElementFormat, size: int, work: np.dtype):
        self.s = np.empty(size, dtype=work)
        self.u = np.empty(size, dtype=work)
        self.floor = np.full(size, 2.0**fmt.emin, dtype=work)
        self.hi = np.full(size, fmt.max_value, dtype=work)
        self.lo = np.full(size, -fmt.max_value, dtype=work)

    def take(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        buf = getattr(self, name)
        return buf[: math.prod(shape)].reshape(shape)


def stochastic_round_into(t: np.ndarray, codes: np.ndarray, fmt: ElementFormat, scratch: Scratch) -> None:
    """In place: ``t ← clip(⌊t/s + u⌋·s, ±max)``, ``u = (m + ½)/2¹⁶`` from uint16 ``codes`` of t's shape."""
    s, u = scratch.take("s", t.shape), scratch.take("u", t.shape)
    work = t.dtype.type
    if fmt.is_int:
        s.fill(1.0)
    else:
        spacing_into(t, fmt, s, scratch.take("floor", t.shape))
    np.copyto(u, codes, casting="unsafe")  # uint16 → float: exact
    np.add(u, work(0.5), out=u)
    np.multiply(u, work(2.0**-NOISE_BITS), out=u)
    np.divide(t, s, out=t)
    np.add(t, u, out=t)
    np.floor(t, out=t)
    np.multiply(t, s, out=t)
    np.minimum(t, scratch.take("hi", t.shape), out=t)
    np.maximum(t, scratch.take("lo", t.shape), out=t)


def block_scales_chunked(quantizer: Any, amax_b: np.ndarray, amax: float) -> tuple[np.ndarray, np.ndarray]:
    """``scales_from_amax`` of the (M,) block maxima, ``CHUNK`` at a time (in cache; the same numbers)."""
    enc, dec = np.empty_like(amax_b), np.empty_like(amax_b)
    for i in range(0, amax_b.size, CHUNK):
        part = amax_b[i : i + CHUNK]
        e, d = scales_from_amax(part, quantizer.element, quantizer.scaling, quantizer.scale_rounding, amax)
        enc[i : i + CHUNK], dec[i : i + CHUNK] = e, d
    return enc, dec


def quantize_rows(quantizer: Any, x2: np.ndarray, stream: NoiseStream, out2: np.ndarray) -> None:
    """``out2 = Q(x2)`` for a row-layout format quantizer whose blocks tile the rows exactly.

    ``x2``/``out2``: (N, D) with ``D % b == 0`` (``out2`` may be ``x2``);
    noise codes from ``stream`` in row-major order of x2. Two passes over the
    chunks: the first finds the block maxima from a block-major copy (and,
    with a transform, leaves ``T x`` in ``out2``), the second scales, rounds
    and scales back in the row layout, where the noise codes are contiguous.
    """
    fmt = quantizer.element
    b = quantizer.block
    work = np.dtype(np.float64 if x2.dtype == np.float64 else np.float32)
    src = x2.reshape(-1, b)
    dst = out2.reshape(-1, b)
    m = src.shape[0]
    rows = max(1, BLOCK_CHUNK // b)
    rht = quantizer.hadamard
    dense = None if rht is None else rht.matrix().astype(work)  # T, (b, b); T⁻¹ = Tᵀ
    y_buf = np.empty(rows * b, dtype=work)
    scratch = Scratch(fmt, rows * b, work)
    amax_b = np.empty(m, dtype=work)

    for r0 in range(0, m, rows):  # pass 1: block maxima (out may be x: each chunk is read before written)
        r1 = min(m, r0 + rows)
        x = src[r0:r1]
        if dense is not None:  # each block row x ↦ (T x)ᵀ = xᵀ Tᵀ, kept in out
            np.matmul(x.astype(work, copy=False), dense.T, out=dst[r0:r1])
            x = dst[r0:r1]
        a = y_buf[: (r1 - r0) * b].reshape(b, r1 - r0)  # block-major: a block's maximum is a column's
        np.copyto(a, x.T, casting="same_kind")
        np.abs(a, out=a)
        np.max(a, axis=0, out=amax_b[r0:r1])
    amax = float(np.max(amax_b)) if m else 0.0
    enc, dec = block_scales_chunked(quantizer, amax_b, amax)
    for r0 in range(0, m, rows):  # pass 2: scale, round, scale back, in the row layout
        r1 = min(m, r0 + rows)
        n = r1 - r0
        y = y_buf[: n * b].reshape(n, b) if dense is not None else dst[r0:r1]
        np.multiply(dst[r0:r1] if dense is not None else src[r0:r1], enc[r0:r1, None], out=y)
        stochastic_round_into(y, stream.take(n * b).reshape(n, b), fmt, scratch)
        np.multiply(y, dec[r0:r1, None], out=y)
        if dense is not None:
            np.matmul(y, dense, out=dst[r0:r1])  # (T⁻¹ v)ᵀ = vᵀ T for each block row


def moments_rows(quantizer: Any, x2: np.ndarray, mean2: np.ndarray, var2: np.ndarray) -> None:
    """Exact ``E[Q(x2)]`` into ``mean2`` (working dtype) and ``Var[Q(x2)]`` into ``var2`` (float64).

    The row layout of :func:`quantize_rows`, exact stochastic rounding: the
    mean of the rounding is ``clip(t, ±max)``, its variance ``p(1 − p)s²``
    (``p`` the fractional part of ``min(|t|, max)/s``), both scaled by the
    block's decode scale; with the transform the mean goes back through
    ``Tᵀ`` and each entry's variance is the mean over its block of 16.
    """
    fmt = quantizer.element
    b = quantizer.block
    work = mean2.dtype
    src = x2.reshape(-1, b)
    m = src.shape[0]
    rows = max(1, BLOCK_CHUNK // b)
    rht = quantizer.hadamard
    dense = None if rht is None else rht.matrix().astype(work)
    y_buf = np.empty(rows * b, dtype=work)
    scratch = Scratch(fmt, rows * b, work)
    amax_b = np.empty(m, dtype=work)

    def block_major(r0: int, r1: int) -> np.ndarray:
        y = y_buf[: (r1 - r0) * b].reshape(b, r1 - r0)
        if dense is None:
            np.copyto(y, src[r0:r1].T, casting="same_kind")
        else:
            np.matmul(dense, src[r0:r1].T.astype(work, copy=False), out=y)
        return y

    for r0 in range(0, m, rows):  # pass 1: block maxima
        r1 = min(m, r0 + rows)
        y = block_major(r0, r1)
        np.max(np.abs(y), axis=0, out=amax_b[r0:r1])
    amax = float(np.max(amax_b)) if m else 0.0
    enc, dec = block_scales_chunked(quantizer, amax_b, amax)
    mean_rows = mean2.reshape(-1, b)
    var_rows = var2.reshape(-1, b)
    for r0 in range(0, m, rows):  # pass 2: the moments of each chunk
        r1 = min(m, r0 + rows)
        y = block_major(r0, r1)
        np.multiply(y, enc[None, r0:r1], out=y)  # t
        a = np.minimum(np.abs(y), scratch.take("hi", y.shape))
        s = fmt.spacing(a)
        p = a / s
        p -= np.floor(p)
        var_t = p * (1.0 - p) * s * s
        np.minimum(y, scratch.take("hi", y.shape), out=y)  # mean of the rounding: clip(t, ±max)
        np.maximum(y, scratch.take("lo", y.shape), out=y)
        np.multiply(y, dec[None, r0:r1], out=y)
        d2 = (dec[r0:r1] * dec[r0:r1]).astype(np.float64)
        var = var_t.astype(np.float64) * d2[None, :]
        if dense is None:
            np.copyto(mean_rows[r0:r1], y.T)
            np.copyto(var_rows[r0:r1], var.T)
        else:
            np.matmul(y.T, dense, out=mean_rows[r0:r1])
            var_rows[r0:r1] = np.mean(var, axis=0)[:, None]

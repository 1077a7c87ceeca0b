"""Rounding to an integer grid: to nearest, and stochastic with explicit noise.

Stochastic rounding is ``SR(y) = ⌊y + u⌋`` with ``u ~ U[0, 1)``: it rounds up
with probability ``p = y − ⌊y⌋``, so ``E[SR(y)] = y`` and
``Var[SR(y)] = p (1 − p) ≤ 1/4`` (docs/theory/stochastic-rounding.md).

The noise is always passed in. On the CPU paths refqt draws it in one
documented way, so the fast NumPy path and the plain array-API path (and every
CPU backend) see the same numbers for the same generator (the GPU path makes
its codes on the device instead, from the same ``u`` formula:
:mod:`refqt.gpu.noise`):

* the generator's raw 64-bit outputs (``rng.bit_generator.random_raw``) are
  cut into four little-endian 16-bit pieces, in order: ``m = 0 … 65535``;
* ``u = (m + ½) / 2¹⁶``, exact in float32 and float64, in ``[2⁻¹⁷, 1 − 2⁻¹⁷]``.

:class:`NoiseStream` hands these codes out in order; splitting one draw into
pieces of any sizes gives the same sequence, which is what lets the fast path
draw chunk by chunk and still match the reference bit for bit.

Bias of the rounding itself, in quantization steps (``y`` already computed):
``|E[⌊y + u⌋] − y| ≤ 2⁻¹⁷`` from the 16-bit resolution of ``u`` (``u`` takes
the midpoints of 2¹⁶ equal cells), plus at most half an ulp of ``y + u`` from
the floating-point add: ``2^(b−25)`` in float32 (``2⁻¹⁷`` at 8 bits, ``2⁻⁹``
at 16 bits), ``2^(b−54)`` in float64. The clamp to ``[0, B]`` only acts on
values within round-off of the ends of the range.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from refqt.backend import check_generator, namespace

NOISE_BITS = 16
"""Random bits per element of stochastic-rounding noise."""


class NoiseStream:
    """16-bit noise codes drawn from ``rng`` in order.

    ``take(a)`` then ``take(b)`` returns the same codes as one ``take(a + b)``;
    the generator advances by whole 64-bit draws (leftover pieces are kept
    for the next ``take``).

    Parameters
    ----------
    rng : numpy.random.Generator
    """

    def __init__(self, rng: np.random.Generator):
        check_generator("NoiseStream", rng)
        self._bits = rng.bit_generator
        self._left = np.empty(0, dtype=np.uint16)

    def take(self, n: int) -> np.ndarray:
        """The next ``n`` codes, a host ``uint16`` array of shape (n,)."""
        have = self._left.size
        if n <= have:
            out, self._left = self._left[:n], self._left[n:]
            return out
        words = -(-(n - have) // 4)
        raw = self._bits.random_raw(words).astype("<u8", copy=False).view("<u2")
        if have:
            raw = np.concatenate([self._left, raw])
        out, self._left = raw[:n], raw[n:]
        return out


def noise_codes(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` noise codes ``m`` (host uint16), as the quantizers draw them: ``NoiseStream(rng).take(n)``."""
    return fresh_stream_codes(rng, (n,), owner="noise_codes")[0]  # no stream object: 1 µs a call


def fresh_stream_codes(
    rng: np.random.Generator, sizes: tuple[int, ...], owner: str = "fresh_stream_codes"
) -> list[np.ndarray]:
    """``[NoiseStream(rng).take(n) for n in sizes]`` (a fresh stream per size), from one generator call.

    Each fresh stream draws ``⌈n/4⌉`` 64-bit words and drops its leftover
    pieces, so the codes of size ``n_k`` start at piece ``4·Σ_{j<k} ⌈n_j/4⌉``
    of one draw of ``Σ ⌈n_j/4⌉`` words. Two quantizations in a row (the two
    gradient paths of a layer, :mod:`refqt.quant.pair`) draw their noise at
    once this way, bit for bit as two calls would. A bad ``rng`` is a
    TypeError naming ``owner``.
    """
    check_generator(owner, rng)
    words = [-(-n // 4) for n in sizes]
    raw = rng.bit_generator.random_raw(sum(words)).astype("<u8", copy=False).view("<u2")
    codes, start = [], 0
    for n, w in zip(sizes, words, strict=True):
        codes.append(raw[start : start + n])
        start += 4 * w
    return codes


def uniform_from_codes(m: Any, dtype: Any) -> Any:
    """``u = (m + ½) / 2¹⁶`` as an array of ``dtype`` (same backend as ``m``).

    Exact in float32 and float64.
    """
    xp = namespace(m)
    return (xp.astype(m, dtype) + 0.5) * (2.0**-NOISE_BITS)


def stochastic_round(y: Any, u: Any) -> Any:
    """``⌊y + u⌋``: rounds ``y`` up with probability ``y − ⌊y⌋`` when ``u ~ U[0, 1)``.

    ``u`` must broadcast against ``y`` (a leading sample axis gives many
    independent roundings at once). Any backend; float result.
    """
    xp = namespace(y)
    return xp.floor(y + u)


def round_nearest(y: Any) -> Any:
    """``⌊y + ½⌋``: round to nearest, ties up (deterministic, biased)."""
    xp = namespace(y)
    return xp.floor(y + 0.5)

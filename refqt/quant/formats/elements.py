"""Element formats as value grids: FP8, FP6, FP4 and INT, with their rounding rules.

A low-precision element format is a finite set of values, symmetric about 0
(sign-magnitude). Its non-negative half is a grid whose spacing doubles from
one binade to the next (docs/theory/formats.md):

* a float format ``EeMm`` with exponent bias ``2^(e−1) − 1`` has, for a
  magnitude ``a`` in the binade ``[2^k, 2^(k+1))``, the spacing
  ``2^(max(k, emin) − m)``, ``emin = 1 − bias`` (below ``2^emin`` the
  subnormals share the spacing of the first binade); values stop at ``max``;
* ``INTb`` (symmetric) is the integers ``−(2^(b−1) − 1) … 2^(b−1) − 1``,
  spacing 1.

=========  ====  ====  =========  ===========================================
format     e     m     max        values (positive half)
=========  ====  ====  =========  ===========================================
e4m3       4     3     448        FP8 (OCP "fn": no infinities, 448 largest)
e5m2       5     2     57344      FP8
e3m2       3     2     28         FP6
e2m3       2     3     7.5        FP6
e2m1       2     1     6          FP4: 0, 0.5, 1, 1.5, 2, 3, 4, 6
int8       --    --    127        integers
int4       --    --    7          integers
=========  ====  ====  =========  ===========================================

Rounding a magnitude ``a`` that lies between two neighbours ``lo ≤ a ≤ hi``
(``hi − lo`` the spacing at ``a``, ``p = (a − lo)/(hi − lo)``):

* round to nearest, ties to even (the last mantissa bit 0) -- ``rint(a/s)·s``;
* stochastic rounding, exact: to ``hi`` with probability ``p``, so
  ``E = a`` and ``Var = p(1 − p)(hi − lo)²``; refqt's noise has 16 bits
  (``u = (m + ½)/2¹⁶``, docs/theory/stochastic-rounding.md), which leaves
  at most ``2⁻¹⁷`` of a spacing, plus half an ulp of ``y/s + u``;
* stochastic rounding with ``k`` random bits, as hardware does it: ``p`` is
  truncated to ``k`` bits and a random ``k``-bit integer ``r`` is added, up
  when it carries: probability ``p_k = ⌊p·2^k⌋/2^k`` -- a bias of
  ``−(p − p_k)·(hi − lo)`` towards 0, between ``−2^(−k)`` spacings and 0.

Magnitudes above ``max`` saturate to ``max`` (as the block formats'
"satfinite" conversions do); :mod:`refqt.quant.formats.blocks` decides the
scale so that this clipping happens only where a scale rule allows it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from refqt.backend import namespace
from refqt.quant.rounding import NOISE_BITS

EXPONENT_BITS = {
    np.dtype(np.float32): (np.int32, 0x7F800000),
    np.dtype(np.float64): (np.int64, 0x7FF0000000000000),
}
"""Integer view and exponent-field mask of each float dtype: ``bits & mask`` is ``2^⌊log2 |a|⌋``."""


@dataclass(frozen=True)
class ElementFormat:
    """One element format: its grid, and rounding onto it.

    Attributes
    ----------
    name : str
        ``"e4m3"``, ``"e5m2"``, ``"e3m2"``, ``"e2m3"``, ``"e2m1"``, ``"int8"``, ``"int4"``.
    exponent_bits, mantissa_bits : int
        ``e`` and ``m`` of a float format; 0 and ``b − 1`` for ``INTb``.
    max_value : float
        The largest finite value.
    """

    name: str
    exponent_bits: int
    mantissa_bits: int
    max_value: float

    @property
    def is_int(self) -> bool:
        return self.exponent_bits == 0

    @property
    def bits(self) -> int:
        """Bits per element, sign included."""
        return 1 + self.exponent_bits + self.mantissa_bits

    @property
    def emin(self) -> int:
        """Exponent of the smallest normal value (float formats): ``1 − bias``."""
        return 2 - 2 ** (self.exponent_bits - 1)

    @property
    def emax(self) -> int:
        """Exponent of the largest value's binade, ``⌊log2 max⌋`` (the MX scale rule uses it)."""
        return math.floor(math.log2(self.max_value))

    @property
    def smallest_spacing(self) -> float:
        """Spacing of the lowest binade: ``2^(emin − m)`` (1 for integers)."""
        return 1.0 if self.is_int else 2.0 ** (self.emin - self.mantissa_bits)

    def values(self) -> np.ndarray:
        """All non-negative values, ascending (float64): the grid, built from the definition."""
        if self.is_int:
            return np.arange(int(self.max_value) + 1, dtype=np.float64)
        m = self.mantissa_bits
        out = [j * 2.0 ** (self.emin - m) for j in range(2**m)]  # 0 and the subnormals
        k = self.emin
        while True:
            binade = [2.0**k * (1 + j / 2**m) for j in range(2**m)]
            out += [v for v in binade if v <= self.max_value]
            if binade[-1] >= self.max_value:
                return np.array(out)
            k += 1

    # -- rounding ----------------------------------------------------------------------
    def spacing(self, a: Any) -> Any:
        """The grid spacing at magnitudes ``a ≥ 0`` (array): ``2^(max(⌊log2 a⌋, emin) − m)``.

        Exact: ``frexp`` reads the exponent, ``ldexp`` builds the power of two
        (on NumPy float32/float64 the exponent bits are read directly, the same numbers).
        """
        xp = namespace(a)
        if self.is_int:
            return xp.ones_like(a)
        if isinstance(a, np.ndarray) and a.dtype in EXPONENT_BITS:
            itype, mask = EXPONENT_BITS[a.dtype]
            pow2 = (np.ascontiguousarray(a).view(itype) & itype(mask)).view(a.dtype)  # 2^⌊log2 a⌋
            return np.maximum(pow2, a.dtype.type(2.0**self.emin)) * a.dtype.type(2.0**-self.mantissa_bits)
        return self.spacing_frexp(a)

    def spacing_frexp(self, a: Any) -> Any:
        """:meth:`spacing` through ``frexp``/``ldexp``, on any backend that has them."""
        xp = namespace(a)
        if self.is_int:
            return xp.ones_like(a)
        _, e = xp.frexp(a)  # a = f·2^e, f in [½, 1): ⌊log2 a⌋ = e − 1 (frexp(0) = (0, 0): a subnormal)
        e = xp.where(a == 0, self.emin + 1, e)
        return xp.ldexp(xp.ones_like(a), xp.maximum(e - 1, self.emin) - self.mantissa_bits)

    def split(self, a: Any) -> tuple[Any, Any, Any]:
        """``(n, p, s)`` for magnitudes ``a`` (clipped to ``max``): ``a = (n + p)·s``, ``p ∈ [0, 1)``.

        ``s`` is the spacing, ``n = ⌊a/s⌋`` the lower neighbour in spacings
        (``a/s`` is exact: ``s`` is a power of two).
        """
        xp = namespace(a)
        a = xp.minimum(a, self.max_value)
        s = self.spacing(a)
        t = a / s
        n = xp.floor(t)
        return n, t - n, s

    def round_nearest_even(self, y: Any) -> Any:
        """``y`` rounded to the nearest value, ties to even, saturating at ``±max``."""
        xp = namespace(y)
        a = xp.minimum(xp.abs(y), self.max_value)
        s = self.spacing(a)
        v = xp.minimum(xp.round(a / s) * s, self.max_value)  # round: half to even
        return xp.where(y < 0, -v, v)

    def stochastic_round(self, y: Any, u: Any, random_bits: int | None = None) -> Any:
        """``y`` rounded stochastically with noise ``u ∈ (0, 1)`` (array broadcasting with y).

        ``random_bits=None`` (exact): ``clip(⌊y/s + u⌋·s, ±max)``, ``s`` the
        spacing at ``|y|`` -- the neighbour above ``y`` with probability equal
        to ``y``'s distance from the one below, in spacings; a magnitude above
        ``max`` gives ``max`` (both neighbours clip to it). ``random_bits=k``
        (sign-magnitude, as hardware): ``r = ⌊u·2^k⌋`` (the top k bits of the
        noise), the magnitude goes up when ``⌊p·2^k⌋ + r ≥ 2^k``.
        """
        xp = namespace(y)
        if random_bits is None:
            s = self.spacing(xp.abs(y))
            return xp.clip(xp.floor(y / s + u) * s, -self.max_value, self.max_value)
        n, p, s = self.split(xp.abs(y))
        scale = float(2**random_bits)
        up = xp.floor((xp.floor(p * scale) + xp.floor(u * scale)) / scale)
        v = xp.minimum((n + up) * s, self.max_value)
        return xp.where(y < 0, -v, v)

    def moments(self, y: Any, random_bits: int | None = None, nearest: bool = False) -> tuple[Any, Any]:
        """Exact ``(E[R(y)], Var[R(y)])`` per element of the rounding ``R`` (same options as above).

        ``nearest=True``: round to nearest even (variance 0, mean the rounded
        value). Stochastic: ``P(up) = p`` (exact) or ``⌊p·2^k⌋/2^k`` (k bits);
        above ``max`` the result is ``max`` with variance 0.
        """
        xp = namespace(y)
        if nearest:
            return self.round_nearest_even(y), xp.zeros_like(y)
        n, p, s = self.split(xp.abs(y))
        if random_bits is not None:
            scale = float(2**random_bits)
            p = xp.floor(p * scale) / scale
        mean = (n + p) * s
        var = p * (1.0 - p) * s * s
        return xp.where(y < 0, -mean, mean), var

    def __str__(self) -> str:
        return self.name.upper()


FORMATS = {
    "e4m3": ElementFormat("e4m3", 4, 3, 448.0),
    "e5m2": ElementFormat("e5m2", 5, 2, 57344.0),
    "e3m2": ElementFormat("e3m2", 3, 2, 28.0),
    "e2m3": ElementFormat("e2m3", 2, 3, 7.5),
    "e2m1": ElementFormat("e2m1", 2, 1, 6.0),
    "int8": ElementFormat("int8", 0, 7, 127.0),
    "int4": ElementFormat("int4", 0, 3, 7.0),
}
"""The element formats by name."""


def element_format(name: str | ElementFormat) -> ElementFormat:
    """The :class:`ElementFormat` called ``name`` (ValueError listing the names otherwise)."""
    if isinstance(name, ElementFormat):
        return name
    if name not in FORMATS:
        raise ValueError(f"unknown element format {name!r}; expected one of {tuple(FORMATS)}")
    return FORMATS[name]


def uniform_noise(codes: Any, dtype: Any) -> Any:
    """``u = (m + ½)/2¹⁶`` from 16-bit codes ``m`` (refqt's stochastic-rounding noise)."""
    xp = namespace(codes)
    return (xp.astype(codes, dtype) + 0.5) * (2.0**-NOISE_BITS)

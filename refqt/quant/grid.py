"""The affine integer grid every quantizer in refqt rounds onto.

A grid is ``x̂ = lo + k·step`` with integer ``k`` in ``[kmin, kmin + B]``,
``B = 2^b − 1``. ``lo``, ``step`` and ``kmin`` broadcast against the (N, D)
matrix of rows: shape (1, 1) per tensor, (N, 1) per row, (1, D) per column.
``lo = None`` means the origin is 0, so that 0 itself is a grid point and is
kept exactly (PTQ, the zero-aligned forward quantizer, PerSampleShift).

The plain reference path, for any backend and any leading sample axes::

    y = (x − lo) / step            (computed as (x − lo) · inv_step)
    k = clip(⌊y + u⌋, kmin, kmax)   (u: stochastic-rounding noise, or ½ for round-to-nearest)
    x̂ = lo + k · step

and its exact conditional variance, ``Σ p(1 − p)·step²`` with ``p = y − ⌊y⌋``.
:mod:`refqt.quant.fast` does the same float operations chunk by chunk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from refqt.backend import get_backend, namespace
from refqt.quant.checks import NonFiniteInputError
from refqt.quant.rounding import round_nearest, stochastic_round


@dataclass(frozen=True)
class AffineGrid:
    """``x̂ = lo + k·step``, ``k ∈ [kmin, kmax]``, ``kmax = kmin + levels``.

    Attributes
    ----------
    step, inv_step, kmin, kmax : array
        Broadcastable to the (N, D) rows, in the working dtype (float32 for
        float16/float32 input, float64 for float64). ``kmin``/``kmax`` hold
        integer values.
    levels : int
        ``B = 2^b − 1``: the number of bins.
    lo : array or None
        Grid origin; None means 0.
    y_nonnegative : bool
        True when ``lo`` is the minimum of each row/column/tensor, so
        ``(x − lo)·inv_step ≥ 0`` is guaranteed and the lower clamp is a no-op
        (the fast path skips it).
    """

    step: Any
    inv_step: Any
    kmin: Any
    kmax: Any
    levels: int
    lo: Any = None
    y_nonnegative: bool = False

    def scaled(self, x: Any) -> Any:
        """``y = (x − lo) · inv_step``: x in grid units (x already in the working dtype)."""
        if self.lo is None:
            return x * self.inv_step
        return (x - self.lo) * self.inv_step

    def clamp(self, k: Any) -> Any:
        xp = namespace(k)
        return xp.minimum(xp.maximum(k, self.kmin), self.kmax)

    def round(self, y: Any, u: Any | None) -> Any:
        """Integer levels ``k`` (float array): stochastic with noise ``u``, nearest if ``u`` is None."""
        k = round_nearest(y) if u is None else stochastic_round(y, u)
        return self.clamp(k)

    def values(self, k: Any) -> Any:
        """``lo + k·step``."""
        if self.lo is None:
            return k * self.step
        return k * self.step + self.lo

    def codes(self, k: Any) -> Any:
        """Codes ``k − kmin`` in ``0 … B`` as uint8 (b ≤ 8) or uint16."""
        xp = namespace(k)
        return xp.astype(k - self.kmin, xp.uint8 if self.levels < 256 else xp.uint16)

    def from_codes(self, codes: Any, dtype: Any) -> Any:
        """Values of integer ``codes`` (inverse of :meth:`codes`), in ``dtype``."""
        xp = namespace(codes)
        return self.values(xp.astype(codes, dtype) + self.kmin)

    def elementwise_variance(self, x: Any) -> Any:
        """``p (1 − p) step²`` per element: the exact Var of stochastic rounding of ``x``."""
        xp = namespace(x)
        y = xp.minimum(xp.maximum(self.scaled(x), self.kmin), self.kmax)
        p = y - xp.floor(y)
        return p * (1.0 - p) * (self.step * self.step)


_LIMITS: dict[Any, tuple[float, float]] = {}


def float_limits(dtype: Any) -> tuple[float, float]:
    """``(largest, smallest normal)`` of a float dtype, as Python floats (``np.finfo``, looked up once)."""
    limits = _LIMITS.get(dtype)
    if limits is None:
        info = np.finfo(dtype)
        limits = _LIMITS[dtype] = (float(info.max), float(info.smallest_normal))
    return limits


def finite_step(step: float, dtype: Any) -> float:
    """``step`` raised to the smallest normal number of ``dtype`` if it is below it.

    A range narrower than ``B`` times that number (e.g. a vanishing float32
    gradient, ~1e-36) would otherwise get a step whose inverse overflows, and
    ``(x − lo)·inv_step`` would be Inf / NaN. The wider step still covers the
    range, so the quantizer stays unbiased; only its grid is coarser than the
    range asks for.
    """
    return max(float(step), float_limits(dtype)[1])


def host_float(xp: Any, work: Any) -> Any:
    """The NumPy float type of the working dtype ``work`` of namespace ``xp`` (any backend)."""
    return np.float64 if work == xp.float64 else np.float32


def host_grid(
    step: np.ndarray, kmin: np.ndarray, levels: int, backend: Any, work: Any, lo: np.ndarray | None = None
) -> AffineGrid:
    """Grid from host (NumPy) ``step``, ``kmin`` and ``lo``, already in their broadcast shape.

    Shapes (N, 1) per row, (1, D) per column, (1, 1) per tensor. Each step is
    raised to the smallest normal number of ``work`` (as :func:`finite_step`),
    the arrays are moved to ``backend`` in ``work``, and ``kmax = kmin + B``.
    ``lo`` None: the origin is 0.
    """
    xp = backend.xp
    step = np.maximum(step, np.finfo(host_float(xp, work)).smallest_normal)  # as finite_step, per entry
    step_w = xp.astype(backend.asarray(step), work)
    kmin_w = xp.astype(backend.asarray(kmin), work)
    return AffineGrid(
        step=step_w,
        inv_step=1.0 / step_w,
        kmin=kmin_w,
        kmax=kmin_w + float(levels),
        levels=levels,
        lo=None if lo is None else xp.astype(backend.asarray(lo), work),
    )


def check_span(owner: str, half_widest: float, dtype: Any) -> None:
    """NonFiniteInputError unless a range max − min fits ``dtype``; given ``max/2 − min/2``.

    ``x − lo`` is computed in ``dtype``: a wider range would overflow to Inf.
    Halves are compared so that the check itself cannot overflow (float64).
    """
    limit = float_limits(dtype)[0]
    if not half_widest <= limit / 2:
        raise NonFiniteInputError(
            f"{owner}: a range max − min of {2 * half_widest:.4g} overflows {np.dtype(dtype).name} "
            f"(largest {limit:.4g}); refusing to quantize it"
        )


def check_level_span(owner: str, widest_negative: float, levels: int) -> None:
    """NonFiniteInputError unless ``−min·B`` fits float64, for the ranges that hold both signs.

    The zero-aligned rule puts 0 on level ``⌊−min·B/(max − min)⌋``
    (docs/theory/quantizers.md, "PTQ"); ``widest_negative`` is the largest
    ``−min`` among the ranges with both signs (0 if none).
    """
    limit = float_limits(np.float64)[0]
    if not widest_negative <= limit / levels:
        raise NonFiniteInputError(
            f"{owner}: a range from {-widest_negative:.4g} across 0, times B = {levels}, overflows float64 "
            f"(largest {limit:.4g}); refusing to quantize it"
        )


def minmax_grid(mins: Any, maxs: Any, levels: int, work: Any, owner: str = "minmax_grid") -> AffineGrid:
    """Grid from ``lo = min`` with ``step = (max − min) / B`` (1 where the range is 0).

    ``mins``/``maxs`` already have the broadcast shape ((1, 1), (N, 1) or (1, D)).
    The step is never below the dtype's smallest normal number (see :func:`finite_step`);
    a range too wide for ``work`` raises NonFiniteInputError naming ``owner``.
    ``kmin = 0`` and ``kmax = B`` are (1, 1): one number for every row.
    """
    if isinstance(mins, np.ndarray):
        return _minmax_grid_numpy(mins, maxs, levels, work, owner)
    xp = namespace(mins)
    lo = xp.astype(mins, xp.float64)
    hi = xp.astype(maxs, xp.float64)
    check_span(owner, float(xp.max(hi * 0.5 - lo * 0.5)), host_float(xp, work))
    span = hi - lo
    step = xp.where(span > 0, span / levels, xp.ones_like(span))
    step_w = xp.clip(xp.astype(step, work), min=float(xp.finfo(work).smallest_normal))  # see finite_step
    bounds = xp.asarray([[0.0, float(levels)]], dtype=work)
    return AffineGrid(
        step=step_w,
        inv_step=1.0 / step_w,
        kmin=bounds[:, :1],
        kmax=bounds[:, 1:],
        levels=levels,
        lo=mins if mins.dtype == work else xp.astype(mins, work),
        y_nonnegative=True,
    )


def _minmax_grid_numpy(mins: np.ndarray, maxs: np.ndarray, levels: int, work: Any, owner: str) -> AffineGrid:
    """:func:`minmax_grid` spelled with NumPy itself: the same numbers in fewer calls.

    On a few hundred rows each NumPy call costs more than its arithmetic. The
    span check reads the widest ``max − min`` once: halving is exact, so
    ``(max − min)/2 ≤ limit/2`` exactly when ``max/2 − min/2 ≤ limit/2``
    (the float64 difference of float32 ends cannot overflow; float64 ends are
    checked by their halves first), and the exact halves are recomputed only
    to word the error. The bounds
    ``kmin = 0``, ``kmax = B`` are shared read-only arrays.
    """
    lo = mins.astype(np.float64)
    if mins.dtype == np.float64:  # max − min itself may overflow: check the halves first
        check_span(owner, float(np.max(maxs * 0.5 - lo * 0.5)), work)
    span = maxs.astype(np.float64)
    span -= lo
    largest, smallest_normal = float_limits(work)
    widest = float(span.max()) if span.size else 0.0
    if mins.dtype != np.float64 and not widest * 0.5 <= largest / 2:
        check_span(owner, float(np.max(maxs.astype(np.float64) * 0.5 - lo * 0.5)), work)
    flat = span <= 0  # before dividing: a subnormal span / B may round to 0 and must stay its quotient
    step = np.divide(span, levels, out=span)
    step[flat] = 1.0  # as np.where(span > 0, span / levels, 1.0): a zero range has step 1
    step_w = step.astype(work)
    np.maximum(step_w, smallest_normal, out=step_w)  # see finite_step
    kmin, kmax = _bounds(levels, work)
    return AffineGrid(
        step=step_w,
        inv_step=np.divide(1.0, step_w, dtype=step_w.dtype),
        kmin=kmin,
        kmax=kmax,
        levels=levels,
        lo=mins if mins.dtype == work else mins.astype(work),
        y_nonnegative=True,
    )


_BOUNDS: dict[tuple[int, Any], tuple[np.ndarray, np.ndarray]] = {}


def _bounds(levels: int, work: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(kmin, kmax) = (0, B)`` as read-only (1, 1) arrays of ``work``, made once per (B, work)."""
    key = (levels, work)
    if key not in _BOUNDS:
        bounds = np.array([[0.0, float(levels)]], dtype=work)
        bounds.flags.writeable = False
        _BOUNDS[key] = (bounds[:, :1], bounds[:, 1:])
    return _BOUNDS[key]


def tensor_minmax_grid(
    mn: float, mx: float, levels: int, xp: Any, work: Any, owner: str = "tensor_minmax_grid"
) -> AffineGrid:
    """:func:`minmax_grid` for one range over the whole tensor, from Python floats.

    The same float operations (float64 span and step, rounded once to
    ``work``; ``1/step`` in ``work``), so the same numbers, with a handful of
    scalar operations instead of a dozen array calls: a forward quantizer on a
    small layer is dominated by such fixed costs. Shape (1, 1) arrays.
    """
    host = host_float(xp, work)
    check_span(owner, float(mx) * 0.5 - float(mn) * 0.5, host)
    span = float(mx) - float(mn)
    step_w = host(finite_step(span / levels if span > 0 else 1.0, host))
    inv_w = host(1.0) / step_w

    row = [[float(step_w), float(inv_w), 0.0, float(levels), float(mn)]]
    on_numpy = xp is get_backend("numpy").xp
    values = np.array(row, dtype=work) if on_numpy else xp.asarray(row, dtype=work)  # NumPy: no wrapper
    step, inv_step, kmin, kmax, lo = (values[:, i : i + 1] for i in range(5))  # (1, 1) views
    return AffineGrid(
        step=step, inv_step=inv_step, kmin=kmin, kmax=kmax, levels=levels, lo=lo, y_nonnegative=True
    )


def zero_aligned_params(
    mn: float, mx: float, levels: int, owner: str = "zero_aligned_params"
) -> tuple[float, float, int]:
    """``(lo, step, kmin)`` of a per-tensor grid with 0 exactly on it.

    The authors' rule: widen the range to contain 0 (``mn = min(min x, 0)``,
    ``mx = max(max x, 0)``), put 0 on level ``q0 = ⌊−mn·B/(mx − mn)⌋``, step
    ``−mn/q0``. Their ``s = −q0/mn`` divides by zero when there is no negative
    entry (``mn = 0``); here that case (and no positive entry) gets the plain
    one-sided grid. When the negative side is narrower than one step
    (``q0 = 0`` with ``mn < 0``) it gets one level: ``q0 = 1`` and the step is
    widened to still reach ``mx``. Symmetrically, when the positive side is so
    narrow that the division rounds ``q0`` up to ``B`` (which would leave no
    level above 0 and divide by zero), ``q0 = B − 1``. With 1 bit and both signs present no
    two-level grid holds 0 and both ends, so that case falls back to the plain
    min/max grid (``lo = mn``), where 0 is not a grid point.

    Returns
    -------
    lo : float
        0.0, except in the 1-bit fallback.
    step : float
        Grid step; the grid covers ``[mn, mx]``.
    kmin : int
        ``−q0``: the level of the lowest grid point.
    """
    mn, mx = min(float(mn), 0.0), max(float(mx), 0.0)
    check_span(owner, mx * 0.5 - mn * 0.5, np.float64)
    check_level_span(owner, -mn if mn < 0.0 < mx else 0.0, levels)
    if mx == mn:
        return 0.0, 1.0, 0
    if mn == 0.0:
        return 0.0, mx / levels, 0
    if mx == 0.0:
        return 0.0, -mn / levels, -levels
    q0 = min(math.floor(-mn * levels / (mx - mn)), levels - 1)  # = B only by round-off (mx ≪ −mn)
    if q0 == 0:
        if levels == 1:
            return mn, mx - mn, 0
        q0 = 1
    step = max(-mn / q0, mx / (levels - q0))
    return 0.0, step, -q0


def zero_aligned_grid(
    mn: float, mx: float, levels: int, xp: Any, work: Any, owner: str = "zero_aligned_grid"
) -> AffineGrid:
    """Per-tensor grid with 0 on it (see :func:`zero_aligned_params`), shape (1, 1) arrays.

    The numbers are found as Python / NumPy scalars (``1/step`` in ``work``,
    as an array division would round it) and moved into one small array.
    """
    lo, step, kmin = zero_aligned_params(mn, mx, levels, owner)
    host = host_float(xp, work)
    step_w = host(finite_step(step, host))
    inv_w = host(1.0) / step_w
    row = [[float(step_w), float(inv_w), float(kmin), float(kmin + levels), lo]]
    on_numpy = xp is get_backend("numpy").xp
    values = np.array(row, dtype=work) if on_numpy else xp.asarray(row, dtype=work)  # NumPy: no wrapper
    step_a, inv_a, kmin_a, kmax_a, lo_a = (values[:, i : i + 1] for i in range(5))  # (1, 1) views
    return AffineGrid(
        step=step_a,
        inv_step=inv_a,
        kmin=kmin_a,
        kmax=kmax_a,
        levels=levels,
        lo=None if lo == 0.0 else lo_a,
        y_nonnegative=lo != 0.0,
    )

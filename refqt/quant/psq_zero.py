"""Zero-preserving PSQ: one grid per row (or channel) with 0 exactly on it.

PSQ (``refqt/quant/psq.py``) puts row i's grid at ``lo_i = min x_i``, so an
exact zero of a row that holds both signs lands between two levels and is
rounded up or down at random: the ~75 % exact zeros of a gradient that has
passed a ReLU become noise. PTQ avoids this per tensor by shifting its grid
so that 0 is a level (the authors' rule, docs/theory/quantizers.md). This
module does the same per row: row i gets the zero-aligned grid of its own
range ``[min(x_i, 0), max(x_i, 0)]`` --
``x̂ = k·step_i``, ``k ∈ [−q0_i, B − q0_i]`` with
``q0_i = ⌊−min_i·B / (max_i − min_i)⌋`` and ``step_i = max(−min_i/q0_i,
max_i/(B − q0_i))`` (:func:`refqt.quant.grid.zero_aligned_params`, row by
row). An exact 0 is then a level and is returned exactly (probability 1).

Cost: one level is spent on putting 0 on the grid, so the step can be coarser
than PSQ's ``R_i/B``: at most ``2·R_i/B`` (``q0 = 1`` with the negative side
just short of two steps), so the bound is at most 4× PSQ's. On iid Gaussian
rows the exact variance is 2.25× PSQ's at 2 bits, 1.19× at 4, 1.09× at 5
(docs/theory/quantizers.md). Unbiased as every stochastic rounding onto a
grid that covers the input.

Exact conditional variance: the same ``Σ p(1 − p)·step_i²`` as every affine
grid (:meth:`refqt.quant.grid.AffineGrid.elementwise_variance`), with
``p = 0`` at every exact zero; bound ``D/4·Σ_i step_i²``
(``N·S/4·Σ_c step_c²`` per channel).

With 1 bit a row holding both signs has no two-level grid with 0 and both
ends on it; such a row falls back to PSQ's ``lo_i = min x_i`` grid (as PTQ does).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from refqt.backend import backend_of, device_path
from refqt.quant.checks import work_dtype
from refqt.quant.grid import AffineGrid, check_level_span, check_span, host_grid
from refqt.quant.psq import PSQ, channel_layout


def zero_aligned_rows(
    mins: np.ndarray, maxs: np.ndarray, levels: int, owner: str = "zero_aligned_rows"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`~refqt.quant.grid.zero_aligned_params` for each range ``[mins[i], maxs[i]]``.

    Host float64 arrays of shape (M,) in, ``(lo, step, kmin)`` (M,) float64
    arrays out. Vectorised; element i equals
    ``zero_aligned_params(mins[i], maxs[i], levels)`` exactly.
    """
    mn = np.minimum(np.asarray(mins, dtype=np.float64), 0.0)
    mx = np.maximum(np.asarray(maxs, dtype=np.float64), 0.0)
    check_span(owner, float(np.max(mx * 0.5 - mn * 0.5, initial=0.0)), np.float64)
    span = mx - mn
    both = (mn < 0.0) & (mx > 0.0)
    check_level_span(owner, float(np.max(np.where(both, -mn, 0.0), initial=0.0)), levels)
    with np.errstate(divide="ignore", invalid="ignore"):
        q0 = np.minimum(np.floor(np.where(both, -mn * levels / np.where(both, span, 1.0), 1.0)), levels - 1)
        fallback = both & (q0 == 0) & (levels == 1)
        q0 = np.where(both & (q0 == 0), 1.0, q0)
        step_both = np.maximum(-mn / q0, mx / np.maximum(levels - q0, 1.0))
    lo = np.zeros_like(mn)
    step = np.ones_like(mn)
    kmin = np.zeros_like(mn)
    only_pos = (mn == 0.0) & (mx > 0.0)
    only_neg = (mx == 0.0) & (mn < 0.0)
    step = np.where(only_pos, mx / levels, step)
    step = np.where(only_neg, -mn / levels, step)
    kmin = np.where(only_neg, -float(levels), kmin)
    step = np.where(both, step_both, step)
    kmin = np.where(both, -q0, kmin)
    lo = np.where(fallback, mn, lo)
    step = np.where(fallback, span, step)
    kmin = np.where(fallback, 0.0, kmin)
    return lo, step, kmin


class ZeroPSQ(PSQ):
    """PSQ with 0 on every row's (or channel's) grid: ``ZeroPSQ(bits)``, ``ZeroPSQ(bits, axis="channel")``.

    Same interface and parameters as :class:`~refqt.quant.psq.PSQ`; only the
    grid differs (see the module docstring). Exact zeros stay exactly zero.
    """

    @property
    def name(self) -> str:  # type: ignore[override]
        return "psq-zero" if self.axis == "row" else "psq-zero-column"

    def __repr__(self) -> str:
        extra = "" if self.axis == "row" else f", axis={self.axis!r}"
        return f"ZeroPSQ(bits={self.bits}{extra})"

    def _host_ranges(self, y2: Any, fast_path: bool, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Host float64 ``(mins, maxs)`` per row (N,) or per channel (C,) of ``y2``."""
        if self.axis == "row":  # on the device path one copy, one sync
            return self._ranges_on_host(y2, fast_path, axis=1)
        backend = backend_of(y2)
        xp = backend.xp
        mins, maxs = self._channel_ranges(y2, fast_path, shape)
        return backend.to_numpy(xp.astype(mins, xp.float64)), backend.to_numpy(xp.astype(maxs, xp.float64))

    def _zero_grid(self, y2: Any, fast_path: bool, shape: tuple[int, ...]) -> tuple[np.ndarray, ...]:
        """Host ``(lo, step, kmin)`` per row (N,) or per channel (C,), from the ranges of ``y2``."""
        return zero_aligned_rows(*self._host_ranges(y2, fast_path, shape), self.levels, self.label)

    def _grid(self, y2: Any, fast_path: bool, shape: tuple[int, ...]) -> AffineGrid:
        backend = backend_of(y2)
        xp = backend.xp
        work = work_dtype(xp, y2.dtype)
        lo, step, kmin = self._zero_grid(y2, fast_path, shape)
        _, _, positions = channel_layout(shape)

        def as_grid(a: np.ndarray) -> np.ndarray:  # per row (N,) -> (N, 1); per channel (C,) -> (1, C·S)
            return a[:, None] if self.axis == "row" else np.repeat(a, positions)[None, :]

        has_lo = bool(np.any(lo != 0.0))
        if self.axis != "row" and device_path(y2):  # (1, C) to the device, spread over the S positions there
            lo_c = lo[None, :] if has_lo else None
            grid = host_grid(step[None, :], kmin[None, :], self.levels, backend, work, lo_c)

            def spread(a: Any) -> Any:
                return None if a is None else backend.native.repeat(a, positions, axis=1)

            return replace(
                grid,
                step=spread(grid.step),
                inv_step=spread(grid.inv_step),
                kmin=spread(grid.kmin),
                kmax=spread(grid.kmax),
                lo=spread(grid.lo),
            )
        return host_grid(
            as_grid(step), as_grid(kmin), self.levels, backend, work, as_grid(lo) if has_lo else None
        )

    def variance_bound(self, x: Any) -> float:
        """``D/4·Σ_i step_i²`` per row (``N·S/4·Σ_c step_c²`` per channel), 0 for all-zero rows."""
        _, x2, _ = self._rows(x)
        if x2.size == 0:
            return 0.0
        mins, maxs = self._host_ranges(x2, False, tuple(x.shape))
        _, step, _ = zero_aligned_rows(mins, maxs, self.levels, self.label)
        nonzero = (mins != 0) | (maxs != 0)
        length = x2.size // step.shape[0]
        return float(length * np.sum(step[nonzero] ** 2) / 4.0)


__all__ = ["ZeroPSQ", "zero_aligned_rows"]

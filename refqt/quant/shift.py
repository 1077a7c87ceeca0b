"""PerSampleShift: one per-tensor grid, refined per sample by a power-of-two shift.

The hardware-friendly variant the authors' rebuttal proposes (and leave as
future work): instead of an FP32 range per sample, keep PTQ's per-tensor grid
``step·{−q0, …, B − q0}`` (0 on it) and give row i the finer step
``step_i = step·2^(−k_i)``, ``k_i ∈ {0, …, 4}`` the largest shift whose
scaled grid still covers the row. In hardware the integer row products are
shifted by ``k_i`` in the accumulator before the final sum.

Variance ``Σ_ij p_ij(1 − p_ij)·step_i² ≤ D/4·Σ_i step_i²``: between PSQ and
PTQ. A row needing no shift costs what PTQ costs; a row 16× smaller than the
tensor costs 256× less.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from refqt.backend import backend_of
from refqt.quant.base import GradientQuantizer
from refqt.quant.checks import work_dtype
from refqt.quant.grid import AffineGrid, host_grid, zero_aligned_grid, zero_aligned_params

MAX_SHIFT = 4
"""Largest per-sample shift (the rebuttal: "[0, 4] is enough")."""


def row_shifts(mins: np.ndarray, maxs: np.ndarray, low: float, high: float) -> np.ndarray:
    """Largest ``k ∈ {0, …, MAX_SHIFT}`` per row with ``[min_i, max_i] ⊆ 2^(−k)·[low, high]``."""
    shifts = np.zeros(mins.shape, dtype=np.int64)
    for k in range(1, MAX_SHIFT + 1):
        f = 2.0**-k
        fits = (mins >= low * f) & (maxs <= high * f)
        shifts = np.where(fits, k, shifts)
    return shifts


class PerSampleShift(GradientQuantizer):
    """Per-tensor grid with a per-sample power-of-two shift in [0, 4], ``PerSampleShift(bits)``."""

    name = "shift"

    def _shifted_steps(self, y2: Any, fast_path: bool) -> tuple[np.ndarray, float, int, bool]:
        """Host (N,) float64 steps, the tensor step, ``kmin`` and whether 0 is on the grid."""
        mins_h, maxs_h = self._ranges_on_host(y2, fast_path)
        lo, step, kmin = zero_aligned_params(
            float(mins_h.min()), float(maxs_h.max()), self.levels, self.label
        )
        if lo != 0.0:  # 1-bit grid with both signs: no zero-aligned grid exists, no shifts
            return np.full(mins_h.shape, step), step, kmin, False
        shifts = row_shifts(mins_h, maxs_h, kmin * step, (kmin + self.levels) * step)
        return step * np.exp2(-shifts.astype(np.float64)), step, kmin, True

    def _grid(self, y2: Any, fast_path: bool, shape: tuple[int, ...]) -> AffineGrid:
        backend = backend_of(y2)
        xp = backend.xp
        work = work_dtype(xp, y2.dtype)
        steps, _, kmin, zero_on_grid = self._shifted_steps(y2, fast_path)
        if not zero_on_grid:
            mins, maxs = self._ranges(y2, fast_path)
            return zero_aligned_grid(
                float(xp.min(mins)), float(xp.max(maxs)), self.levels, xp, work, self.label
            )
        return host_grid(steps[:, None], np.full((1, 1), float(kmin)), self.levels, backend, work)

    def shifts(self, x: Any) -> np.ndarray:
        """The per-sample shifts ``k_i`` (host int array, (N,)) chosen for ``x``."""
        _, x2, _ = self._rows(x)
        steps, step, _, _ = self._shifted_steps(x2, fast_path=False)
        return np.rint(np.log2(step / steps)).astype(np.int64)

    def variance_bound(self, x: Any) -> float:
        """``D/4·Σ_i step_i²`` over rows that are not all zero."""
        backend, x2, _ = self._rows(x)
        if x2.size == 0:
            return 0.0
        steps, _, _, _ = self._shifted_steps(x2, fast_path=False)
        mins, maxs = self._ranges(x2, fast_path=False)
        nonzero = backend.to_numpy((mins != 0) | (maxs != 0))
        return float(x2.shape[1] * np.sum(steps[nonzero] ** 2) / 4.0)

"""PTQ: per-tensor stochastic quantization, with 0 kept exactly on the grid.

docs/theory/quantizers.md, "PTQ". One grid for the whole gradient, ``x̂ = k·step``,
``k ∈ [−q0, B − q0]``, from the tensor's range widened to contain 0 (the
authors' rule, made safe where it divides by zero: see
:func:`refqt.quant.grid.zero_aligned_params`). Exact zeros stay exactly zero.

Variance ``Σ p(1 − p)·step² ≤ N·D·R²/(4B²)`` with ``R = B·step``, the range
the grid covers (``max − min`` of the widened range when 0 falls on a level
naturally, slightly more when it had to be moved).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from refqt.backend import backend_of, device_path
from refqt.quant import fast
from refqt.quant.base import GradientQuantizer
from refqt.quant.checks import as_rows, check_finite_range, host_min_max, work_dtype
from refqt.quant.grid import AffineGrid, finite_step, zero_aligned_grid, zero_aligned_params
from refqt.quant.rounding import noise_codes


class SmallGrid(NamedTuple):
    """A per-tensor grid as working-dtype scalars (:meth:`PTQ.small_grid`); ``lo`` None: origin 0."""

    inv: Any
    step: Any
    kmin: Any
    kmax: Any
    lo: Any
    ends: tuple[float, float]


class PTQ(GradientQuantizer):
    """Per-tensor quantizer, ``PTQ(bits)``; ``q(x, rng)`` on an (N, ...) array.

    Also the 8-bit weight-gradient quantizer of the per-tensor mode.
    """

    name = "ptq"

    def _tensor_range(self, y2: Any, fast_path: bool) -> tuple[float, float]:
        """``(min, max)`` of the whole tensor (Python floats); NaN/Inf → NonFiniteInputError."""
        if fast_path:  # min and max are exact: the whole array at once, or the row ranges' extremes
            mn, mx = fast.tensor_range(y2)
            check_finite_range(self.label, mn, mx, tuple(y2.shape))
            return mn, mx
        xp = backend_of(y2).xp
        if device_path(y2):  # one device-to-host copy of (min, max), checked on the host
            mn, mx = host_min_max(y2)
            check_finite_range(self.label, mn, mx, tuple(y2.shape))
            return mn, mx
        mins, maxs = self._ranges(y2, fast_path)
        return float(xp.min(mins)), float(xp.max(maxs))

    def _grid(self, y2: Any, fast_path: bool, shape: tuple[int, ...]) -> AffineGrid:
        xp = backend_of(y2).xp
        mn, mx = self._tensor_range(y2, fast_path)
        return zero_aligned_grid(mn, mx, self.levels, xp, work_dtype(xp, y2.dtype), self.label)

    def _fast(self, x: np.ndarray, rng: np.random.Generator, out: np.ndarray) -> np.ndarray:
        """A small array (:func:`refqt.quant.fast.is_small`) is rounded on the grid's numbers as scalars.

        The grid is found before the noise is drawn, so a refused input leaves
        the generator where it was. Larger arrays take the shared blocked path.
        """
        x2 = as_rows(x)
        if not fast.is_small(x2.size):
            return super()._fast(x, rng, out)
        ends = self._tensor_range(x2, fast_path=True)
        grid = self.small_grid(ends, x2.dtype)
        self.round_small(x2, grid, noise_codes(rng, x2.size).reshape(x2.shape), out.reshape(x2.shape))
        return out

    def small_grid(self, ends: tuple[float, float], dtype: Any) -> SmallGrid:
        """The grid of a tensor of ``(min, max) = ends``, in working-dtype scalars; refuses too wide a range.

        The same numbers as :func:`~refqt.quant.grid.zero_aligned_grid` (``step``
        rounded once to the working dtype, ``1/step`` in it), without building
        the grid's arrays: on a (640, 32) gradient those cost about as much as
        a rounding pass. One range can serve two grids (:mod:`refqt.quant.pair`).
        """
        work = np.float64 if dtype == np.float64 else np.float32
        lo, step, kmin = zero_aligned_params(*ends, self.levels, self.label)
        step_w = work(finite_step(step, work))
        origin = None if lo == 0.0 else work(lo)
        return SmallGrid(work(1.0) / step_w, step_w, work(kmin), work(kmin + self.levels), origin, ends)

    @staticmethod
    def round_small(x2: np.ndarray, grid: SmallGrid, codes: np.ndarray, out2: np.ndarray) -> None:
        """``out2 = Q(x2)`` for a small NumPy (N, D) ``x2`` on ``grid`` (:meth:`small_grid`), noise ``codes``.

        A clamp that cannot change a level is skipped
        (:func:`refqt.quant.fast.clamps_that_bite`, from the range ends).
        """
        work = np.result_type(grid.inv)
        inv, step, kmin, kmax, lo, ends = grid
        x2 = x2 if x2.dtype == work else x2.astype(work)
        fast.round_values(x2, inv, step, kmin, kmax, lo, lo is not None, codes, out2, ends)

    def variance_bound(self, x: Any) -> float:
        """``N·D·R²/(4B²)`` with ``R = B·step`` (0 for an all-zero tensor)."""
        _, x2, _ = self._rows(x)
        if x2.size == 0:
            return 0.0
        mn, mx = self._tensor_range(x2, fast_path=False)
        if min(mn, 0.0) == max(mx, 0.0):
            return 0.0
        _, step, _ = zero_aligned_params(mn, mx, self.levels, self.label)
        return x2.size * step * step / 4.0

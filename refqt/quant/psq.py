"""PSQ: per-sample (per-row) stochastic quantization, and its per-column variant.

THEORY.md §3. Row i of the (N, D) matrix gets its own grid from its own
range: ``x̂_i = z_i + k·R_i/B``, ``z_i = min x_i``, so
``Var ≤ D/(4B²)·Σ_i R_i²`` -- never worse than PTQ, much better when a few
rows carry most of the gradient. A constant row is returned unchanged.

``axis="column"`` gives one grid per column instead, for the weight-gradient
path ``∇W = Q_w(G)ᵀ X``: that product sums over samples, so only per-column
scales factor out of an integer GEMM (``Var ≤ N/(4B²)·Σ_j R_j²``). The
column is a column of the (N, D) row view; a caller wanting per-channel
scales of a conv gradient passes it as (N·H·W, C).
"""

from __future__ import annotations

from typing import Any

from refqt.backend import backend_of
from refqt.quant.base import GradientQuantizer
from refqt.quant.checks import work_dtype
from refqt.quant.grid import AffineGrid, minmax_grid

AXES = ("row", "column")


class PSQ(GradientQuantizer):
    """Per-sample quantizer, ``PSQ(bits)``; ``PSQ(bits, axis="column")`` per column.

    Parameters
    ----------
    bits : int
        1 … 16.
    axis : {"row", "column"}
        One grid per row (samples, the paper's PSQ) or per column.
    """

    def __init__(self, bits: int = 8, axis: str = "row"):
        super().__init__(bits)
        if axis not in AXES:
            raise ValueError(f"PSQ: axis must be one of {AXES}, got {axis!r}")
        self.axis = axis

    @property
    def name(self) -> str:  # type: ignore[override]
        return "psq" if self.axis == "row" else "psq-column"

    def __repr__(self) -> str:
        extra = "" if self.axis == "row" else ", axis='column'"
        return f"PSQ(bits={self.bits}{extra})"

    def _grid(self, y2: Any, fast_path: bool) -> AffineGrid:
        xp = backend_of(y2).xp
        work = work_dtype(xp, y2.dtype)
        if self.axis == "row":
            mins, maxs = self._ranges(y2, fast_path, axis=1)
            return minmax_grid(mins[:, None], maxs[:, None], self.levels, work)
        mins, maxs = self._ranges(y2, fast_path, axis=0)
        return minmax_grid(mins[None, :], maxs[None, :], self.levels, work)

    def variance_bound(self, x: Any) -> float:
        """``D/(4B²)·Σ_i R_i²`` per row (``N/(4B²)·Σ_j R_j²`` per column)."""
        _, x2, _ = self._rows(x)
        if x2.size == 0:
            return 0.0
        xp = backend_of(x2).xp
        axis = 1 if self.axis == "row" else 0
        mins, maxs = self._ranges(x2, fast_path=False, axis=axis)
        span = xp.astype(maxs, xp.float64) - xp.astype(mins, xp.float64)
        length = x2.shape[axis]
        return float(length * xp.sum(span * span)) / (4.0 * self.levels**2)

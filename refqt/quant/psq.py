"""PSQ: per-sample (per-row) stochastic quantization, and its per-channel variant.

THEORY.md §3. Row i of the (N, D) matrix gets its own grid from its own
range: ``x̂_i = z_i + k·R_i/B``, ``z_i = min x_i``, so
``Var ≤ D/(4B²)·Σ_i R_i²`` -- never worse than PTQ, much better when a few
rows carry most of the gradient. A constant row is returned unchanged.

``axis="channel"`` gives one grid per index c of axis 1 instead, its range
taken over every other axis: the columns of a (rows, out) matrix, the
channels F of an (N, F, Ho, Wo) conv gradient. It is the weight-gradient
path's quantizer, ``∇W = Q_w(G)ᵀ X``: that product sums over samples (and
positions), so only per-channel scales factor out of an integer GEMM
(``Var ≤ N·S/(4B²)·Σ_c R_c²``, S = Ho·Wo, 1 for a matrix). It works on the
array's own layout, no transposes; the matrix it rounds is

* (N, C) for an (N, C) array, with a (1, C) grid (one per column);
* (N·C, S) for an (N, C, ...) array with S > 1 positions per channel: row
  ``n·C + c`` holds sample n, channel c, and gets channel c's grid (an
  (N·C, 1) grid, each channel's ``(lo, step)`` repeated for every sample).

Either way the noise follows the array's row-major order, as for every
quantizer. ``axis="column"`` is the same quantizer under its matrix name.
"""

from __future__ import annotations

from typing import Any

from refqt.backend import backend_of
from refqt.quant.base import GradientQuantizer
from refqt.quant.checks import as_rows, work_dtype
from refqt.quant.grid import AffineGrid, minmax_grid

AXES = ("row", "channel", "column")


def channel_layout(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """``(N, C, S)`` of an (N, C, ...) shape: samples, channels (1 if none), positions per channel."""
    if len(shape) == 0:
        return 1, 1, 1
    n = shape[0]
    c = shape[1] if len(shape) > 1 else 1
    s = 1
    for extent in shape[2:]:
        s *= extent
    return n, c, s


class PSQ(GradientQuantizer):
    """Per-sample quantizer, ``PSQ(bits)``; ``PSQ(bits, axis="channel")`` per channel (axis 1).

    Parameters
    ----------
    bits : int
        1 … 16.
    axis : {"row", "channel", "column"}
        One grid per row (samples, the paper's PSQ) or per channel: per index
        of axis 1, the range over all other axes (``"column"``: the same).
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
        extra = "" if self.axis == "row" else f", axis={self.axis!r}"
        return f"PSQ(bits={self.bits}{extra})"

    def _matrix(self, x: Any) -> Any:
        """Rows of x; per channel: (N, C) for a matrix, else (N·C, S) (see the module docstring)."""
        n, c, s = channel_layout(tuple(x.shape))
        if self.axis == "row" or s == 1:
            return as_rows(x)
        return backend_of(x).xp.reshape(x, (n * c, s))

    def _channel_ranges(self, y2: Any, fast_path: bool, shape: tuple[int, ...]) -> tuple[Any, Any]:
        """Per-channel ``(min, max)`` of the matrix ``y2``, each (C,)."""
        xp = backend_of(y2).xp
        n, c, s = channel_layout(shape)
        if s == 1:
            return self._ranges(y2, fast_path, axis=0)
        mins, maxs = self._ranges(y2, fast_path, axis=1)  # per (sample, channel) row
        return xp.min(xp.reshape(mins, (n, c)), axis=0), xp.max(xp.reshape(maxs, (n, c)), axis=0)

    def _grid(self, y2: Any, fast_path: bool, shape: tuple[int, ...]) -> AffineGrid:
        xp = backend_of(y2).xp
        work = work_dtype(xp, y2.dtype)
        if self.axis == "row":
            mins, maxs = self._ranges(y2, fast_path, axis=1)
            return minmax_grid(mins[:, None], maxs[:, None], self.levels, work)
        n, c, s = channel_layout(shape)
        mins, maxs = self._channel_ranges(y2, fast_path, shape)
        if s == 1:
            return minmax_grid(mins[None, :], maxs[None, :], self.levels, work)

        def per_row(per_channel: Any) -> Any:  # (C,) -> (N·C, 1): row n·C + c gets channel c's value
            return xp.reshape(xp.broadcast_to(per_channel[None, :], (n, c)), (n * c, 1))

        return minmax_grid(per_row(mins), per_row(maxs), self.levels, work)

    def variance_bound(self, x: Any) -> float:
        """``D/(4B²)·Σ_i R_i²`` per row (``N·S/(4B²)·Σ_c R_c²`` per channel)."""
        _, x2, _ = self._rows(x)
        if x2.size == 0:
            return 0.0
        xp = backend_of(x2).xp
        if self.axis == "row":
            mins, maxs = self._ranges(x2, fast_path=False, axis=1)
            length = x2.shape[1]
        else:
            mins, maxs = self._channel_ranges(x2, fast_path=False, shape=tuple(x.shape))
            length = x2.size // mins.shape[0]
        span = xp.astype(maxs, xp.float64) - xp.astype(mins, xp.float64)
        return float(length * xp.sum(span * span)) / (4.0 * self.levels**2)

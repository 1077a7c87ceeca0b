"""BHQ: block Householder quantization (docs/theory/quantizers.md, "BHQ").

``Q(x) = T⁻¹(PSQ(T x))``: a block Householder transform ``T``
(:mod:`refqt.quant.householder`) spreads each large row over a group of small
rows, the transformed rows are quantized per row, and ``T⁻¹`` maps back. A
large row's errors are averaged over its group, while the small rows,
pre-scaled up, absorb little noise: the variance ≈ ``D/(4B²)·Σ_g λ_g²/G_g``,
up to N× below PSQ's when one sample dominates.

Exact conditional variance: ``Σ_i ‖T⁻¹[:, i]‖² Σ_j p_ij(1 − p_ij)·step_i²``
(``step_i`` the per-row step of ``Y = T x``); bound: ``p(1 − p) ≤ 1/4``,
``D/(4B²)·Σ_i ‖T⁻¹[:, i]‖²·R(Y_i)²``.

The transform is found on the host from the N row ranges (O(N log N)); the
Householder blocks are applied as rank-1 updates, O(N·D).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from refqt.backend import backend_of, device_path
from refqt.quant import fast
from refqt.quant.base import GradientQuantizer
from refqt.quant.checks import as_rows, work_dtype
from refqt.quant.grid import AffineGrid, check_span, minmax_grid
from refqt.quant.householder import BlockHouseholder, apply_transform, block_householder, householder_dense
from refqt.quant.householder_fast import apply_transform_fast
from refqt.quant.householder_small import position_major, transform_position_major
from refqt.quant.rounding import NoiseStream


class BHQ(GradientQuantizer):
    """Block Householder quantizer, ``BHQ(bits)``; ``q(x, rng)`` on an (N, ...) array.

    ``q.transform(x)`` gives the :class:`~refqt.quant.householder.BlockHouseholder`
    it would use (groups, pre-scales, dense ``T`` for tests).
    """

    name = "bhq"

    def _find_transform(self, x2: Any, fast_path: bool) -> BlockHouseholder:
        """``T`` from the float64 row ranges ``max − min`` of ``x2`` (N, D); a range too wide → error.

        The NumPy fast path (only it passes ``fast_path``) on float32 / float16
        rows takes the ranges as they are, in one call: their ends cannot
        overflow float64, so there is nothing to check.
        """
        if fast_path and x2.dtype != np.float64:
            lo, hi = self._ranges(x2, fast_path)
            return block_householder(np.subtract(hi, lo, dtype=np.float64))
        lo, hi = self._ranges_on_host(x2, fast_path)
        check_span(self.label, float(np.max(hi * 0.5 - lo * 0.5, initial=0.0)), np.float64)
        return block_householder(hi - lo)

    def transform(self, x: Any) -> BlockHouseholder:
        """The transform ``T`` for input ``x`` (found from its row ranges)."""
        _, x2, _ = self._rows(x)
        return self._find_transform(x2, fast_path=False)

    def _transform(self, x2: Any, fast_path: bool) -> tuple[Any, Any]:
        t = self._find_transform(x2, fast_path)
        if device_path(x2):  # all groups at once (refqt/gpu/householder.py)
            from refqt.gpu.householder import apply_transform_batched

            return apply_transform_batched(t, x2), t
        return apply_transform(t, x2), t

    def _untransform(self, v: Any, transform: Any) -> Any:
        if device_path(v) and v.ndim == 2:
            from refqt.gpu.householder import apply_transform_batched

            return apply_transform_batched(transform, v, inverse=True)
        return apply_transform(transform, v, inverse=True)

    def _grid(self, y2: Any, fast_path: bool, shape: tuple[int, ...]) -> AffineGrid:
        xp = backend_of(y2).xp
        mins, maxs = self._ranges(y2, fast_path)
        return minmax_grid(mins[:, None], maxs[:, None], self.levels, work_dtype(xp, y2.dtype), self.label)

    def _fast(self, x: np.ndarray, rng: np.random.Generator, out: np.ndarray) -> np.ndarray:
        """``T x`` into ``out``, PSQ in place, ``T⁻¹`` in place (float16: via a float32 buffer).

        A small array (:func:`refqt.quant.fast.is_small`) stays in ``T``'s
        position-major row order from the transform to its inverse
        (:meth:`_fast_small`).
        """
        x2 = as_rows(x)
        t = self._find_transform(x2, fast_path=True)
        work = np.float64 if x.dtype == np.float64 else np.float32
        if fast.is_small(x.size):
            return self._fast_small(x2, t, work, rng, out)
        buffer = out if out.dtype == work else np.empty(x.shape, dtype=work)
        y2 = buffer.reshape(x2.shape)
        apply_transform_fast(t, x2, y2)
        grid = self._grid(y2, fast_path=True, shape=tuple(x.shape))
        fast.round_onto_grid(y2, grid, NoiseStream(rng), y2)
        apply_transform_fast(t, y2, y2, inverse=True)
        if buffer is not out:
            np.copyto(out, buffer, casting="unsafe")
        return out

    def _fast_small(
        self, x2: np.ndarray, t: BlockHouseholder, work: Any, rng: np.random.Generator, out: np.ndarray
    ) -> np.ndarray:
        """Gather the rows position-major once, ``T``, round, ``T⁻¹``, scatter once.

        Rows are rounded per row (BHQ's grid is PSQ's, one grid per row of
        ``T x``), so rounding them in another order changes nothing as long
        as each row gets its own noise codes: the codes are drawn in the
        defined row-major order of ``T x`` and gathered with the rows.
        """
        c = position_major(t, work)
        perm = c["perm"]
        a = x2.take(perm, axis=0).astype(work, copy=False)  # take: several times faster than x2[perm]
        transform_position_major(t, a)
        grid = self._grid(a, fast_path=True, shape=tuple(x2.shape))
        codes = NoiseStream(rng).take(a.size).reshape(a.shape).take(perm, axis=0)
        fast.round_small(a, grid, codes, a)
        transform_position_major(t, a, inverse=True)
        out2 = out.reshape(x2.shape)
        if out2.dtype == work:
            a.take(c["unperm"], axis=0, out=out2)
        else:
            np.copyto(out2, a.take(c["unperm"], axis=0), casting="unsafe")
        return out

    # -- variance ---------------------------------------------------------------------
    def _rounding_variance(self, x: Any) -> tuple[Any, BlockHouseholder, AffineGrid, Any]:
        y2, grid, t = self._prepare(x)
        xp = backend_of(y2).xp
        return xp.astype(grid.elementwise_variance(y2), xp.float64), t, grid, y2

    def conditional_variance(self, x: Any) -> float:
        """``Σ_i ‖T⁻¹[:, i]‖² Σ_j p_ij(1 − p_ij)·step_i²``: exact, O(N·D)."""
        if x.size == 0:
            return 0.0
        backend = backend_of(x)
        if device_path(x):  # per-row sums fused on the device (refqt/gpu/variance.py): N numbers come back
            from refqt.gpu.variance import variance_sums

            y2, grid, t = self._prepare(x)
            row_sums = backend.to_numpy(variance_sums(y2, grid, axis=1))
        else:
            v, t, _, _ = self._rounding_variance(x)
            row_sums = backend.to_numpy(backend.xp.sum(v, axis=1))
        return float(row_sums @ t.inverse_column_norms_sq())

    def elementwise_variance(self, x: Any) -> Any:
        """``Var[Q(x)_rj] = Σ_i T⁻¹[r, i]² v_ij``, float64 array of x.shape (O(Σ G²·D): tests, stats)."""
        backend = backend_of(x)
        xp = backend.xp
        v, t, _, _ = self._rounding_variance(x)
        if device_path(x):
            from refqt.gpu.householder import elementwise_variance_batched

            return xp.reshape(elementwise_variance_batched(t, v), tuple(x.shape))
        pieces, order = [], []
        for idx in t.groups:
            weights = householder_dense(idx.size) ** 2 / (t.scales[idx] ** 2)[:, None]
            pieces.append(xp.matmul(backend.asarray(weights), xp.take(v, backend.asarray(idx), axis=0)))
            order.append(idx)
        back = np.argsort(np.concatenate(order))
        out = xp.take(xp.concat(pieces, axis=0), backend.asarray(back), axis=0)
        return xp.reshape(out, tuple(x.shape))

    def variance_bound(self, x: Any) -> float:
        """``D/(4B²)·Σ_i ‖T⁻¹[:, i]‖²·R(Y_i)²`` with ``Y = T x``."""
        if x.size == 0:
            return 0.0
        backend = backend_of(x)
        xp = backend.xp
        y2, _, t = self._prepare(x)
        mins, maxs = self._ranges(y2, fast_path=False)
        span = backend.to_numpy(xp.astype(maxs, xp.float64) - xp.astype(mins, xp.float64))
        return float(y2.shape[1] * np.sum(t.inverse_column_norms_sq() * span**2) / (4.0 * self.levels**2))

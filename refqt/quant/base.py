"""What every gradient quantizer offers, and the shared plain/fast plumbing.

A gradient quantizer ``q`` maps an array whose first axis is the row axis
(samples; (N, C, H, W) is seen as (N, C·H·W)) to an unbiased random
dequantized array of the same shape and dtype::

    q(x, rng, out=None)             NumPy fast path; refqt/gpu on CuPy and under emulate_device
    q.quantize(x, u)                reference path with explicit noise u, shape x.shape or (S, *x.shape)
    q.uniform(x, rng, samples=None) the noise q(x, rng) would use (so q(x, rng) == q.quantize(x, u))
    q.encode(x, u) -> Encoded       integer codes + grid + transform (bin-usage histograms)
    q.decode(enc)                   back to values
    q.conditional_variance(x)       exact E‖Q(x) − x‖² given x (float)
    q.elementwise_variance(x)       exact Var[Q(x)_ij] per element (array like x)
    q.variance_bound(x)             the paper's bound for that quantizer (float)
    q.bits, q.levels (B = 2^b − 1), q.name

Every quantizer here is ``Q(x) = T⁻¹(SR(T x))`` with an affine grid per row,
channel or tensor (:mod:`refqt.quant.grid`); ``T`` is the identity except in
BHQ. Subclasses say how the grid is found (``_grid``) and, for BHQ, what
``T`` is (``_transform`` / ``_untransform``).
"""

from __future__ import annotations

import functools
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from refqt.backend import Backend, backend_of, check_generator, device_path, is_array
from refqt.quant import fast
from refqt.quant.checks import (
    as_rows,
    check_bits,
    check_finite_ranges,
    check_float_array,
    work_dtype,
)
from refqt.quant.grid import AffineGrid
from refqt.quant.rounding import NoiseStream, uniform_from_codes


@dataclass(frozen=True)
class Encoded:
    """Integer codes of one quantization and what is needed to decode them.

    Attributes
    ----------
    codes : array
        (..., N, D) uint8 (b ≤ 8) or uint16 codes in ``0 … B`` of the rounded
        matrix (``T x`` for BHQ, else the rows of ``x``).
    grid : AffineGrid
        The grid the codes index.
    transform : object or None
        BHQ's :class:`~refqt.quant.householder.BlockHouseholder`, else None.
    shape : tuple of int
        Shape of the input ``x``.
    dtype : dtype
        Dtype of the input ``x`` (and of the decoded output).
    """

    codes: Any
    grid: AffineGrid
    transform: Any
    shape: tuple[int, ...]
    dtype: Any


class GradientQuantizer:
    """Base class: an unbiased stochastic quantizer of b bits (see module docstring).

    Parameters
    ----------
    bits : int
        1 … 16; ``B = 2^bits − 1`` bins.
    """

    name = "gradient-quantizer"
    has_codes = True
    """``encode`` gives affine integer codes (a layer capturing gradients keeps them)."""
    device_fused = True
    """Whether :func:`refqt.backend.device_path` arrays take :mod:`refqt.gpu.quantize` (affine grids)."""

    def __init__(self, bits: int = 8):
        self.bits = check_bits(type(self).__name__, bits)
        self.levels = 2**self.bits - 1

    def __repr__(self) -> str:
        return f"{type(self).__name__}(bits={self.bits})"

    @functools.cached_property
    def label(self) -> str:
        """Name used in errors, e.g. ``PSQ(bits=4)`` (found once: it is passed to every check)."""
        return repr(self)

    # -- hooks ------------------------------------------------------------------
    def _grid(self, y2: Any, fast_path: bool, shape: tuple[int, ...]) -> AffineGrid:
        """The grid for the (N, D) matrix ``y2`` to be rounded: the rows of ``T x``, x of ``shape``."""
        raise NotImplementedError

    def _transform(self, x2: Any, fast_path: bool) -> tuple[Any, Any]:
        """``(T x, T)``; the identity here."""
        return x2, None

    def _untransform(self, v: Any, transform: Any) -> Any:
        """``T⁻¹ v`` on axes (−2, −1); the identity here."""
        return v

    # -- shared plumbing -----------------------------------------------------------
    def _ranges(self, y2: Any, fast_path: bool, axis: int = 1) -> tuple[Any, Any]:
        """``(min, max)`` of ``y2`` along ``axis`` (1: per row, 0: per column); NaN/Inf → ValueError."""
        if fast_path:
            mins, maxs = fast.row_ranges(y2) if axis == 1 else fast.column_ranges(y2)
        else:
            xp = backend_of(y2).xp
            mins, maxs = xp.min(y2, axis=axis), xp.max(y2, axis=axis)
        check_finite_ranges(self.label, mins, maxs, tuple(y2.shape))
        return mins, maxs

    def _ranges_on_host(self, y2: Any, fast_path: bool, axis: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Host float64 ``(min, max)`` of ``y2`` along ``axis``; NaN/Inf → NonFiniteInputError.

        On the device path both come back in one device-to-host copy and are
        checked on the host: one sync, where :meth:`_ranges` and two copies take
        four (docs/gpu-quantizers.md, "Host synchronisation").
        """
        backend = backend_of(y2)
        if not device_path(y2):
            mins, maxs = self._ranges(y2, fast_path, axis)
            return backend.to_numpy(mins).astype(np.float64), backend.to_numpy(maxs).astype(np.float64)
        xp = backend.xp
        both = backend.to_numpy(xp.stack([xp.min(y2, axis=axis), xp.max(y2, axis=axis)])).astype(np.float64)
        check_finite_ranges(self.label, both[0], both[1], tuple(y2.shape))
        return both[0], both[1]

    def _rows(self, x: Any) -> tuple[Backend, Any, Any]:
        """Checks ``x``; returns (backend, (N, D) view in the working dtype, working dtype)."""
        check_float_array(self.label, x)
        backend = backend_of(x)
        xp = backend.xp
        work = work_dtype(xp, x.dtype)
        return backend, xp.astype(as_rows(x), work), work

    def _prepare(self, x: Any) -> tuple[Any, AffineGrid, Any]:
        """Reference path: ``(Y, grid, T)`` with ``Y = T x`` as an (N, D) working-dtype matrix."""
        _, x2, _ = self._rows(x)
        y2, transform = self._transform(x2, fast_path=False)
        return y2, self._grid(y2, fast_path=False, shape=tuple(x.shape)), transform

    def uniform(self, x: Any, rng: np.random.Generator, samples: int | None = None) -> Any:
        """The noise ``u`` that ``q(x, rng)`` uses: ``(m + ½)/2¹⁶``, row-major over the rounded matrix.

        Shape ``x.shape``, or ``(samples, *x.shape)`` for that many independent
        draws (consumed one sample after the other). Working dtype, x's backend.
        """
        check_float_array(self.label, x)
        check_generator(self.label, rng)
        if samples is not None and (
            isinstance(samples, bool) or not isinstance(samples, numbers.Integral) or samples < 1
        ):
            raise ValueError(f"{self.label}.uniform: samples must be None or an integer ≥ 1, got {samples!r}")
        if self.device_fused and device_path(x):  # counter noise made on x's device (refqt/gpu/noise.py)
            from refqt.gpu.quantize import uniform_on_device

            return uniform_on_device(x, rng, samples)
        backend = backend_of(x)
        shape = tuple(x.shape) if samples is None else (samples, *x.shape)
        n = int(np.prod(shape, dtype=np.int64))
        m = backend.asarray(NoiseStream(rng).take(n).reshape(shape))
        return uniform_from_codes(m, work_dtype(backend.xp, x.dtype))

    def _noise_rows(self, x: Any, u: Any, n: int, d: int) -> Any:
        check_float_array(f"{self.label}: noise u", u)
        lead = u.ndim - x.ndim
        if lead < 0 or tuple(u.shape[lead:]) != tuple(x.shape):
            raise ValueError(
                f"{self.label}: noise of shape {tuple(u.shape)} does not fit input {tuple(x.shape)}; "
                "expected x.shape or (samples, *x.shape)"
            )
        return backend_of(u).xp.reshape(u, (*u.shape[:lead], n, d))

    def encode(self, x: Any, u: Any) -> Encoded:
        """Integer codes of ``Q(x)`` for noise ``u`` (shape x.shape or (S, *x.shape))."""
        y2, grid, transform = self._prepare(x)
        u2 = self._noise_rows(x, u, *y2.shape)
        k = grid.round(grid.scaled(y2), u2)
        return Encoded(grid.codes(k), grid, transform, tuple(x.shape), x.dtype)

    def decode(self, enc: Encoded) -> Any:
        """Values of encoded codes, shape ``(..., *enc.shape)``, dtype ``enc.dtype``."""
        xp = backend_of(enc.codes).xp
        v = self._untransform(enc.grid.from_codes(enc.codes, enc.grid.step.dtype), enc.transform)
        lead = tuple(enc.codes.shape[:-2])
        return xp.astype(xp.reshape(v, (*lead, *enc.shape)), enc.dtype)

    def quantize(self, x: Any, u: Any) -> Any:
        """Reference path: ``Q(x) = T⁻¹(lo + clip(⌊(T x − lo)/step + u⌋)·step)``.

        ``u``: uniform noise in [0, 1), shape ``x.shape`` or ``(S, *x.shape)``
        (then S independent quantizations come back, shape ``(S, *x.shape)``).
        """
        if x.size == 0:
            return backend_of(x).xp.reshape(x, tuple(u.shape)) * 1
        y2, grid, transform = self._prepare(x)
        u2 = self._noise_rows(x, u, *y2.shape)
        v = self._untransform(grid.values(grid.round(grid.scaled(y2), u2)), transform)
        xp = backend_of(x).xp
        return xp.astype(xp.reshape(v, tuple(u.shape)), x.dtype)

    def __call__(self, x: Any, rng: np.random.Generator, out: Any | None = None) -> Any:
        """One quantize-dequantize of ``x`` with noise from ``rng``; same shape and dtype.

        ``out``: optional array of ``x``'s shape, dtype and backend to write the
        result into (and return); it may be ``x`` itself. On NumPy this saves
        allocating (and first touching) a fresh output.
        """
        check_float_array(self.label, x)
        check_generator(self.label, rng)
        backend = backend_of(x)
        if out is not None:
            self._check_out(x, out)
        if x.size == 0:
            return backend.xp.reshape(x, tuple(x.shape)) * 1 if out is None else out
        if self.device_fused and device_path(x):  # the GPU algorithm (refqt/gpu/quantize.py)
            from refqt.gpu.quantize import quantize_on_device

            return quantize_on_device(self, x, rng, out)
        if backend.name == "numpy":
            return self._fast(np.asarray(x), rng, np.empty(x.shape, dtype=x.dtype) if out is None else out)
        result = self.quantize(x, self.uniform(x, rng))
        if out is None:
            return result
        out[...] = result
        return out

    def _check_out(self, x: Any, out: Any) -> None:
        """ValueError unless ``out`` can take the result: x's backend, shape, dtype (NumPy: contiguous)."""
        numpy_pair = type(out) is np.ndarray and type(x) is np.ndarray
        if numpy_pair and out.shape == x.shape and out.dtype == x.dtype and out.flags.c_contiguous:
            return  # the common case in 0.3 µs (4 through the checks below)
        fits = (
            is_array(out)
            and backend_of(out).name == backend_of(x).name
            and tuple(out.shape) == tuple(x.shape)
            and out.dtype == x.dtype
        )
        if not fits or (isinstance(out, np.ndarray) and not out.flags.c_contiguous):
            got = f"{tuple(out.shape)} {out.dtype}" if is_array(out) else "(not an array)"
            raise ValueError(
                f"{self.label}: out= must be a contiguous array like x ({tuple(x.shape)} {x.dtype}); "
                f"got {type(out).__name__} {got}"
            )

    def _fast(self, x: np.ndarray, rng: np.random.Generator, out: np.ndarray) -> np.ndarray:
        """NumPy fast path into ``out``: same result as ``quantize(x, uniform(x, rng))``, bit for bit."""
        x2 = as_rows(x)
        grid = self._grid(x2, fast_path=True, shape=tuple(x.shape))
        fast.round_onto_grid(x2, grid, NoiseStream(rng), out.reshape(x2.shape))
        return out

    def reference(self, x: Any, rng: np.random.Generator) -> Any:
        """``quantize(x, uniform(x, rng))``: the plain path, for comparison with ``q(x, rng)``."""
        return self.quantize(x, self.uniform(x, rng))

    # -- variance ---------------------------------------------------------------------
    def elementwise_variance(self, x: Any) -> Any:
        """Exact ``Var[Q(x)_ij | x]`` per element, float64 array of ``x.shape``."""
        y2, grid, _ = self._prepare(x)
        xp = backend_of(y2).xp
        v = xp.astype(grid.elementwise_variance(y2), xp.float64)
        return xp.reshape(v, tuple(x.shape))

    def conditional_variance(self, x: Any) -> float:
        """Exact ``E‖Q(x) − x‖²`` given x: ``Σ p(1 − p)·step²`` (closed form, no sampling)."""
        if x.size == 0:
            return 0.0
        if self.device_fused and device_path(x):  # one fused reduction (refqt/gpu/variance.py)
            from refqt.gpu.variance import variance_sums

            y2, grid, _ = self._prepare(x)
            return float(variance_sums(y2, grid))
        return float(backend_of(x).xp.sum(self.elementwise_variance(x)))

    def variance_bound(self, x: Any) -> float:
        """The paper's bound on ``E‖Q(x) − x‖²`` for this quantizer."""
        raise NotImplementedError

"""``BlockFormatQuantizer``: an element format, block scales and an optional RHT, as a gradient quantizer.

``Q(x) = T⁻¹( R(T x · e) · d )`` on the block matrix of x
(:mod:`refqt.quant.formats.blocks`): ``T`` the random Hadamard transform or
the identity, ``e``/``d`` each block's encode/decode scale, ``R`` rounding
onto the element grid (:mod:`refqt.quant.formats.elements`) -- stochastic
(exact, or with ``k`` random bits) or to nearest even. Same interface as
PTQ/PSQ/BHQ (``q(x, rng)``, ``q.quantize(x, u)``, exact variances), plus the
exact per-element mean, so the bias that clipping, scale rounding or
``k``-bit noise leaves is a number: ``q.moments(x)`` (docs/theory/formats.md).

Exact moments given x (and the transform's signs). With ``t = T x · e`` per
block and ``R``'s mean and variance ``μ(t)``, ``σ²(t)`` per element:

    E[Q(x)] = T⁻¹(μ(t) · d),      Var[Q(x)_i] = (1/d_T) Σ_{j ∈ group(i)} σ²(t_j) · d²

(the rounding errors are independent, and every entry of ``T⁻¹`` is ``±1/√d_T``;
without a transform ``Var[Q(x)_i] = σ²(t_i)·d²``).

The noise ``u`` (refqt's 16-bit stream) is indexed like ``x``: entry ``(i, j)``
of the rounded matrix ``T x`` uses ``u[i, j]``. On NumPy with row blocks that
tile the rows exactly, ``q(x, rng)`` runs chunk by chunk in cache, the same
float operations as :meth:`quantize`, so the same numbers bit for bit.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from refqt.backend import backend_of, namespace
from refqt.quant.base import GradientQuantizer
from refqt.quant.checks import as_rows, check_finite_range
from refqt.quant.formats import fast
from refqt.quant.formats.blocks import (
    LAYOUTS,
    SCALE_ROUNDINGS,
    SCALINGS,
    block_scales,
    from_blocks,
    to_blocks,
)
from refqt.quant.formats.elements import element_format
from refqt.quant.formats.hadamard import RandomHadamard
from refqt.quant.rounding import NoiseStream

ROUNDINGS = ("stochastic", "nearest")


class BlockFormatQuantizer(GradientQuantizer):
    """A block-scaled low-precision format as a quantizer (see the module docstring).

    Parameters
    ----------
    element : str
        Element format: ``"e4m3"``, ``"e5m2"``, ``"e3m2"``, ``"e2m3"``, ``"e2m1"``, ``"int8"``, ``"int4"``.
    scaling : {"tensor", "mx", "nvfp4"}
        One FP scale per tensor; E8M0 per block (MX); E4M3 per block × FP32 per tensor (NVFP4).
    block : int or None
        Block length (a ``block × block`` tile for ``layout="tile"``); default
        32 for MX, 16 for NVFP4, the transform size (or 1) per tensor.
    layout : {"row", "column", "tile"}
        Blocks along the rows of the (N, D) view, along its columns, or 2D tiles.
    scale_rounding : {"floor", "ceil", "even"}
        MX only: how the E8M0 exponent is rounded.
    rounding : {"stochastic", "nearest"}
    random_bits : int or None
        Stochastic rounding with this many random bits (1 … 16); None: exact.
    hadamard : RandomHadamard or None
        Transform applied to each block (its size must divide the block);
        not with 2D tiles.
    name : str or None
        Name used in tables (default built from the options).
    """

    device_fused = False  # no affine grid: the reference path on every backend

    has_codes = False
    """No affine integer codes (``encode``): a layer capturing gradients skips them."""

    def __init__(
        self,
        element: str = "e2m1",
        scaling: str = "nvfp4",
        block: int | None = None,
        layout: str = "row",
        scale_rounding: str = "floor",
        rounding: str = "stochastic",
        random_bits: int | None = None,
        hadamard: RandomHadamard | None = None,
        name: str | None = None,
    ):
        self.element = element_format(element)
        super().__init__(self.element.bits)
        for what, value, allowed in (
            ("scaling", scaling, SCALINGS),
            ("layout", layout, LAYOUTS),
            ("scale_rounding", scale_rounding, SCALE_ROUNDINGS),
            ("rounding", rounding, ROUNDINGS),
        ):
            if value not in allowed:
                raise ValueError(f"BlockFormatQuantizer: {what} must be one of {allowed}, got {value!r}")
        if random_bits is not None and (
            isinstance(random_bits, bool) or not isinstance(random_bits, int) or not 1 <= random_bits <= 16
        ):
            raise ValueError(f"BlockFormatQuantizer: random_bits must be None or 1..16, got {random_bits!r}")
        if block is None:
            block = {"mx": 32, "nvfp4": 16}.get(scaling, hadamard.d if hadamard is not None else 1)
        if hadamard is not None and (layout == "tile" or block % hadamard.d):
            raise ValueError(
                f"BlockFormatQuantizer: a Hadamard transform of size {hadamard.d} needs 1D blocks "
                f"whose length it divides; got layout={layout!r}, block={block}"
            )
        self.scaling, self.block, self.layout = scaling, block, layout
        self.scale_rounding, self.rounding, self.random_bits = scale_rounding, rounding, random_bits
        self.hadamard = hadamard
        self._name = name

    @property
    def name(self) -> str:  # type: ignore[override]
        if self._name is not None:
            return self._name
        scale = {"mx": f"mx-{self.scale_rounding}", "nvfp4": "nvfp4", "tensor": "tensor"}[self.scaling]
        rht = "-rht" if self.hadamard is not None else ""
        return f"{self.element.name}-{scale}{rht}-{self.layout}"

    def __repr__(self) -> str:
        opts = [f"{self.element.name!r}", f"scaling={self.scaling!r}", f"block={self.block}"]
        if self.layout != "row":
            opts.append(f"layout={self.layout!r}")
        if self.scaling == "mx":
            opts.append(f"scale_rounding={self.scale_rounding!r}")
        if self.rounding != "stochastic":
            opts.append(f"rounding={self.rounding!r}")
        if self.random_bits is not None:
            opts.append(f"random_bits={self.random_bits}")
        if self.hadamard is not None:
            opts.append(f"hadamard={self.hadamard!r}")
        return f"BlockFormatQuantizer({', '.join(opts)})"

    # -- the pipeline on a block matrix ----------------------------------------------------
    def _check_backend(self, x: Any) -> None:
        xp = namespace(x)
        if xp is not np and not hasattr(xp, "frexp"):
            raise TypeError(f"{self.label}: element formats need frexp/ldexp (NumPy or CuPy arrays)")

    def _blocks(self, x2: Any) -> Any:
        """(M, b) block matrix of the (N, D) rows, transformed by ``T`` when there is one."""
        bm = to_blocks(x2, self.layout, self.block)
        return bm if self.hadamard is None else self.hadamard.forward(bm)

    def _scaled(self, bm: Any, amax: float | None = None) -> tuple[Any, Any]:
        """``(t, d)``: the elements in grid units ``T x · e`` and the decode scales."""
        enc, dec = block_scales(bm, self.element, self.scaling, self.scale_rounding, amax)
        return bm * enc, dec

    def _round(self, t: Any, u: Any | None) -> Any:
        if self.rounding == "nearest":
            return self.element.round_nearest_even(t)
        return self.element.stochastic_round(t, u, self.random_bits)

    def _back(self, v: Any, shape: tuple[int, int]) -> Any:
        if self.hadamard is not None:
            v = self.hadamard.inverse(v)
        return from_blocks(v, self.layout, self.block, shape)

    def _amax(self, x2: Any) -> None:
        xp = namespace(x2)
        check_finite_range(self.label, float(xp.min(x2)), float(xp.max(x2)), tuple(x2.shape))

    # -- reference path ----------------------------------------------------------------------
    def quantize(self, x: Any, u: Any) -> Any:
        """Reference path: ``T⁻¹(R(T x · e; u) · d)``; ``u`` of shape x.shape or (S, *x.shape)."""
        self._check_backend(x)
        xp = backend_of(x).xp
        if x.size == 0:
            return xp.reshape(x, tuple(u.shape)) * 1
        _, x2, work = self._rows(x)
        self._amax(x2)
        u2 = self._noise_rows(x, u, *x2.shape)
        t, dec = self._scaled(self._blocks(x2))
        lead = tuple(u2.shape[:-2])
        us = xp.reshape(u2, (-1, *x2.shape))
        outs = []
        for s in range(us.shape[0]):
            ub = to_blocks(xp.astype(us[s], work), self.layout, self.block)
            outs.append(self._back(self._round(t, ub) * dec, tuple(x2.shape)))
        v = xp.stack(outs) if lead else outs[0]
        return xp.astype(xp.reshape(v, (*lead, *x.shape)), x.dtype)

    def uniform(self, x: Any, rng: np.random.Generator, samples: int | None = None) -> Any:
        """The noise ``q(x, rng)`` uses; a per-call transform first draws its signs from ``rng``."""
        if self.hadamard is not None:
            self.hadamard.redraw(rng)
        return super().uniform(x, rng, samples)

    def encode(self, x: Any, u: Any) -> Any:
        raise TypeError(f"{self.label}: block formats have no affine integer codes; use quantize/q(x, rng)")

    # -- fast path -----------------------------------------------------------------------------
    def _fast(self, x: np.ndarray, rng: np.random.Generator, out: np.ndarray) -> np.ndarray:
        """Block-major, chunk by chunk (:mod:`refqt.quant.formats.fast`) where it applies, else the reference.

        It applies to float32/float64 input, row blocks that tile the rows
        exactly, exact stochastic rounding, and a transform (if any) as long as a block.
        """
        x2 = as_rows(x)
        simple = self._fast_applies(x)
        if not simple:
            out[...] = self.quantize(x, self.uniform(x, rng))
            return out
        if self.hadamard is not None:
            self.hadamard.redraw(rng)
        self._amax(x2)
        fast.quantize_rows(self, x2, NoiseStream(rng), out.reshape(x2.shape))
        return out

    # -- moments -----------------------------------------------------------------------------
    def _fast_applies(self, x: Any) -> bool:
        """Whether the block-major NumPy path (:mod:`refqt.quant.formats.fast`) handles ``x``."""
        return (
            isinstance(x, np.ndarray)
            and self.layout == "row"
            and x.dtype in (np.float32, np.float64)
            and x.ndim > 0
            and as_rows(x).shape[1] % self.block == 0
            and self.rounding == "stochastic"
            and self.random_bits is None
            and (self.hadamard is None or self.hadamard.d == self.block)
        )

    def moments(self, x: Any) -> tuple[Any, Any]:
        """Exact per-element ``(E[Q(x)], Var[Q(x)])`` given x (and the current signs), arrays of x.shape.

        Working dtype for the mean, float64 for the variance.
        """
        self._check_backend(x)
        xp = backend_of(x).xp
        _, x2, _ = self._rows(x)
        if x2.size == 0:
            return xp.reshape(x2, x.shape) * 1, xp.zeros(x.shape, dtype=xp.float64)
        self._amax(x2)
        if self._fast_applies(x):
            mean, var = np.empty(x.shape, dtype=x2.dtype), np.empty(x.shape, dtype=np.float64)
            fast.moments_rows(self, as_rows(x), mean.reshape(x2.shape), var.reshape(x2.shape))
            return mean, var
        return self.moments_reference(x)

    def moments_reference(self, x: Any) -> tuple[Any, Any]:
        """:meth:`moments` on the whole block matrix (any layout, rounding and backend)."""
        xp = backend_of(x).xp
        _, x2, _ = self._rows(x)
        t, dec = self._scaled(self._blocks(x2))
        mean_t, var_t = self.element.moments(t, self.random_bits, nearest=self.rounding == "nearest")
        var = xp.astype(var_t, xp.float64) * xp.astype(dec * dec, xp.float64)
        if self.hadamard is not None:
            g = self.hadamard.d
            m, b = var.shape
            group = xp.mean(xp.reshape(var, (m, b // g, g)), axis=2, keepdims=True)
            var = xp.reshape(xp.broadcast_to(group, (m, b // g, g)), (m, b))
        mean = self._back(mean_t * dec, tuple(x2.shape))
        var = from_blocks(var, self.layout, self.block, tuple(x2.shape))
        return xp.reshape(mean, x.shape), xp.reshape(var, x.shape)

    def elementwise_mean(self, x: Any) -> Any:
        """Exact ``E[Q(x)_ij | x]``, array of x.shape (working dtype)."""
        return self.moments(x)[0]

    def bias(self, x: Any) -> Any:
        """``E[Q(x)] − x`` per element (float64): what clipping, scale rounding or k-bit noise leave."""
        xp = backend_of(x).xp
        return xp.astype(self.moments(x)[0], xp.float64) - xp.astype(x, xp.float64)

    def elementwise_variance(self, x: Any) -> Any:
        """Exact ``Var[Q(x)_ij | x]`` per element, float64 array of x.shape."""
        return self.moments(x)[1]

    def variance_bound(self, x: Any) -> float:
        """``Σ s²·d²/4`` over the rounded elements (``s`` the element spacing at each; 0 to nearest)."""
        self._check_backend(x)
        xp = backend_of(x).xp
        _, x2, _ = self._rows(x)
        if x2.size == 0 or self.rounding == "nearest":
            return 0.0
        t, dec = self._scaled(self._blocks(x2))
        _, _, s = self.element.split(xp.abs(t))
        return float(xp.sum(xp.astype(s * dec, xp.float64) ** 2)) / 4.0

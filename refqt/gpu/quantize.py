"""The device path of every gradient quantizer: ranges, (transform), one fused rounding, (inverse).

:meth:`refqt.quant.base.GradientQuantizer.__call__` sends an array here when
:func:`refqt.backend.device_path` says so (CuPy arrays; NumPy arrays inside
:func:`refqt.backend.emulate_device`). The steps are the reference path's
(docs/theory/quantizers.md), done as a few large device operations:

1. ``T x`` (BHQ only: :mod:`refqt.gpu.householder`, a handful of batched
   operations; the identity for the others), its rows left in ``T``'s
   grouped order until ``T⁻¹`` (one gather, one scatter in all);
2. the quantizer's own grid from device reductions (``min``/``max`` per
   tensor, row or channel); the range numbers that a grid rule needs on the
   host (PTQ's zero-aligned rule, PerSampleShift's shifts, BHQ's grouping)
   come back in one copy, and the NaN/Inf and span checks read one number
   each: 1 to 3 host syncs per call (docs/gpu-quantizers.md, "Host
   synchronisation");
3. one fused rounding with noise made in the kernel
   (:func:`refqt.gpu.rounding.round_on_device`) from a 64-bit key drawn from
   the layer's generator (:func:`refqt.gpu.noise.draw_key`);
4. ``T⁻¹`` (BHQ only).

Noise: the codes are the counter noise of :mod:`refqt.gpu.noise`, not the
CPU's :class:`~refqt.quant.rounding.NoiseStream`, so on the device path
``q(x, rng)`` differs from the CPU's ``q(x, rng)`` (both unbiased, same
variance) but is the same on NumPy and CuPy, bit for bit, for the same
generator state; :meth:`~refqt.quant.base.GradientQuantizer.uniform` on the
device path returns these very codes, so ``q(x, rng) ==
q.quantize(x, q.uniform(x, rng))`` holds there as on the CPU.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from refqt.backend import backend_of
from refqt.gpu.householder import device_coefficients, gather_rows, householder_grouped, scatter_rows
from refqt.gpu.noise import CounterNoise, codes_at, draw_key
from refqt.gpu.rounding import round_on_device
from refqt.quant.bhq import BHQ
from refqt.quant.checks import work_dtype
from refqt.quant.rounding import uniform_from_codes


def rows_of(x: Any) -> Any:
    """The (N, D) view of ``x`` (N = first axis), without a copy."""
    native = backend_of(x).native
    n = x.shape[0] if x.ndim else 1
    return native.reshape(x, (n, x.size // n if n else 0))


def quantize_on_device(q: Any, x: Any, rng: np.random.Generator, out: Any | None = None) -> Any:
    """``Q(x)`` by the device algorithm, noise keyed by one draw of ``rng``; into ``out`` if given.

    ``q``: a :class:`~refqt.quant.base.GradientQuantizer` with an affine
    grid (its ``_grid`` says which); BHQ's ``T`` is applied batched
    (:func:`_bhq_grouped`), the others have none. Same shape and dtype as ``x``.
    """
    native = backend_of(x).native
    noise = CounterNoise(draw_key(rng))
    x2 = rows_of(x)
    work = work_dtype(native, x.dtype)
    target = out if out is not None and out.flags.c_contiguous else native.empty(x.shape, dtype=x.dtype)
    start = noise.reserve(x2.size)
    if isinstance(q, BHQ):
        _bhq_grouped(q, x2.astype(work, copy=False), noise.key, start, rows_of(target))
    else:
        grid = q._grid(x2.astype(work, copy=False), fast_path=False, shape=tuple(x.shape))
        round_on_device(x2, grid, noise.key, start, rows_of(target))
    if out is not None and target is not out:
        out[...] = target
    return target if out is None else out


def _bhq_grouped(q: BHQ, x2: Any, key: int, start: int, out2: Any) -> None:
    """BHQ with the rows kept in ``T``'s grouped order from ``T`` to ``T⁻¹`` (one gather, one scatter).

    BHQ's grid is one per row of ``T x``, so the order of the rows does not
    change it; each element still gets the code of its place in ``T x``
    (the ``rows`` counter), so the result is the same as through
    ``q._transform`` / ``q._untransform`` in the original order, bit for bit.
    """
    t = q._find_transform(x2, fast_path=False)
    a = householder_grouped(t, gather_rows(t, x2))
    grid = q._grid(a, fast_path=False, shape=tuple(x2.shape))
    order = device_coefficients(t, backend_of(a).native, a.dtype)["order"]
    round_on_device(a, grid, key, start, a, rows=order)
    scatter_rows(t, householder_grouped(t, a, inverse=True), out2)


def uniform_on_device(x: Any, rng: np.random.Generator, samples: int | None) -> Any:
    """The noise ``u`` of the device path's ``q(x, rng)``: shape ``x.shape`` or ``(samples, *x.shape)``.

    One key per sample, drawn in order (sample s is what the s-th call would
    use); codes ``0 … x.size − 1`` of each key, made on x's backend.
    """
    native = backend_of(x).native
    counts = native.arange(x.size, dtype=np.int64)
    keys = [draw_key(rng) for _ in range(1 if samples is None else samples)]
    codes = native.stack([native.reshape(codes_at(k, counts), x.shape) for k in keys])
    if samples is None:
        codes = codes[0]
    return uniform_from_codes(codes, work_dtype(native, x.dtype))

"""Inverted dropout: zero each entry with probability p, scale the rest by 1/(1−p).

The scaling keeps the expectation unchanged, E[out] = x, so evaluation needs
no rescaling (``training=False`` returns ``x`` itself). The keep-mask is drawn
from the ``rng`` passed in: the same generator state gives the same mask on
every backend.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from refqt.autodiff import Context, Function
from refqt.backend import backend_of, namespace
from refqt.tensor import Tensor, as_tensor


class Dropout(Function):
    """out = x · m,  m = [u ≥ p] / (1 − p) with u ~ U[0, 1);  g_x = g · m (the same mask)."""

    @staticmethod
    def forward(ctx: Context, x: Any, p: float, rng: Any) -> Any:
        xp = namespace(x)
        u = backend_of(x).uniform(rng, tuple(x.shape), x.dtype)
        scaled_mask = xp.astype(u >= p, x.dtype) / (1 - p)
        ctx.save_for_backward(scaled_mask)
        return x * scaled_mask

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        (scaled_mask,) = ctx.saved
        return (g * scaled_mask,)


def dropout(x: Tensor, p: float, rng: Any, training: bool = True) -> Tensor:
    """Inverted dropout of ``x`` with drop probability ``p`` in [0, 1), mask drawn from ``rng``.

    ``rng`` is a ``numpy.random.Generator`` (or a CuPy generator on the GPU);
    anything else is a TypeError, even in evaluation (only ``p == 0`` needs no
    generator). With ``training=False`` or ``p == 0`` the input is returned unchanged.
    """
    x = as_tensor(x)
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout: p must lie in [0, 1), got {p}")
    native = x.backend.native  # numpy or cupy; None on array_api_strict
    generators = (np.random.Generator,) if native is None else (np.random.Generator, native.random.Generator)
    if p > 0.0 and not isinstance(rng, generators):
        raise TypeError(
            f"dropout: rng must be a numpy.random.Generator (np.random.default_rng(seed)), "
            f"got {type(rng).__name__}"
        )
    if not training or p == 0.0:
        return x
    return Dropout.apply(x, p=p, rng=rng)

"""A format's round-to-nearest quantizer in the forward pass, with a straight-through gradient.

``format_fake_quant(x, q)`` returns ``Q(x)`` -- ``q`` a
:class:`~refqt.quant.formats.BlockFormatQuantizer` with ``rounding="nearest"``
(deterministic) -- and passes the gradient straight through, ``g_x = g``,
as :func:`refqt.quant.fake_quant` does for the integer grids. A recipe's
weights and activations are quantized this way (docs/theory/formats.md).
"""

from __future__ import annotations

from typing import Any

from refqt.autodiff import Context, Function
from refqt.backend import namespace
from refqt.tensor import Tensor, as_tensor


def round_to_format(x: Any, quantizer: Any, last_axis: bool) -> Any:
    """``Q(x)`` on raw arrays; ``last_axis``: blocks along x's last axis (rows = all leading axes).

    Otherwise x's own (N, ...) rows, as for a gradient.
    """
    if quantizer.rounding != "nearest":
        raise ValueError(f"round_to_format: {quantizer!r} is stochastic; forward quantizers round to nearest")
    xp = namespace(x)
    x2 = xp.reshape(x, (-1, x.shape[-1])) if last_axis and x.ndim > 1 else x
    return xp.reshape(quantizer.quantize(x2, xp.zeros_like(x2)), x.shape)


class FormatFakeQuant(Function):
    """out = Q(x) (round to nearest in the format);  g_x = g."""

    @staticmethod
    def forward(ctx: Context, x: Any, quantizer: Any = None, last_axis: bool = True) -> Any:
        return round_to_format(x, quantizer, last_axis)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        return (g,)


def format_fake_quant(x: Tensor, quantizer: Any, last_axis: bool = True) -> Tensor:
    """Quantize ``x`` to the format in the forward pass, identity in the backward pass (STE)."""
    return FormatFakeQuant.apply(as_tensor(x), quantizer=quantizer, last_axis=last_axis)

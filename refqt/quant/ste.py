"""FakeQuant: a forward quantizer on Tensors with a straight-through gradient.

``fake_quant(x, bits, kind)`` returns ``Q(x)`` (deterministic, per tensor,
:func:`refqt.quant.forward.quantize_forward`) and passes the gradient straight
through: ``g_x = g`` (STE, no clipping mask -- the range is min/max, so
nothing is clipped).
"""

from __future__ import annotations

from typing import Any

from refqt.autodiff import Context, Function
from refqt.quant.forward import quantize_forward
from refqt.tensor import Tensor, as_tensor


class FakeQuant(Function):
    """out = Q_b(x) (round to nearest on x's per-tensor grid);  g_x = g."""

    @staticmethod
    def forward(ctx: Context, x: Any, bits: int = 8, kind: str = "affine") -> Any:
        return quantize_forward(x, bits, kind)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        return (g,)


def fake_quant(x: Tensor, bits: int = 8, kind: str = "affine") -> Tensor:
    """Quantize ``x`` in the forward pass, identity in the backward pass (STE)."""
    return FakeQuant.apply(as_tensor(x), bits=bits, kind=kind)

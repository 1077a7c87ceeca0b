"""Quantizers: rounding, forward (STE) quantizers and unbiased gradient quantizers.

Gradient quantizers (docs/theory/quantizers.md), all with the interface of
:class:`GradientQuantizer` -- ``q(x, rng)``, ``q.quantize(x, u)``,
``q.encode`` / ``q.decode``, ``q.conditional_variance(x)`` (exact),
``q.variance_bound(x)``:

* :class:`PTQ` -- per tensor, 0 exactly on the grid;
* :class:`PSQ` -- per sample (row); ``PSQ(bits, axis="channel")`` per channel
  (axis 1: the columns of a matrix, the channels of a conv gradient);
* :class:`ZeroPSQ` -- PSQ with 0 exactly on every row's (channel's) grid;
* :class:`BHQ` -- block Householder transform, then per row;
* :class:`PerSampleShift` -- per-tensor grid with a power-of-two shift per sample;
* low-precision formats (FP8/FP6/FP4/INT elements, MX and NVFP4 block
  scales, random Hadamard transform): :mod:`refqt.quant.formats`, by the
  names in :data:`refqt.quant.formats.FORMAT_QUANTIZERS`.

Forward quantizers: :func:`quantize_forward` (raw arrays), :func:`fake_quant`
(Tensors, straight-through gradient).
"""

from __future__ import annotations

from refqt.quant.base import Encoded, GradientQuantizer
from refqt.quant.bhq import BHQ
from refqt.quant.checks import NonFiniteInputError
from refqt.quant.formats import FORMAT_QUANTIZERS, is_format_name, make_format_quantizer
from refqt.quant.forward import forward_grid, quantize_forward, quantize_forward_reference
from refqt.quant.grid import AffineGrid
from refqt.quant.householder import BlockHouseholder, block_householder
from refqt.quant.psq import PSQ
from refqt.quant.psq_zero import ZeroPSQ
from refqt.quant.ptq import PTQ
from refqt.quant.rounding import NoiseStream, noise_codes, round_nearest, stochastic_round, uniform_from_codes
from refqt.quant.shift import PerSampleShift
from refqt.quant.ste import FakeQuant, fake_quant

GRADIENT_QUANTIZERS = (
    "ptq", "psq", "psq-column", "psq-zero", "psq-zero-column", "bhq", "shift", *FORMAT_QUANTIZERS,
)


def make_gradient_quantizer(name: str, bits: int = 8) -> GradientQuantizer:
    """A gradient quantizer by name (:data:`GRADIENT_QUANTIZERS`) with ``bits`` bits.

    ``"psq-column"`` is PSQ per channel (axis 1), the weight path's quantizer:
    per output feature of a (rows, out) gradient, per channel F of a conv
    gradient (N, F, Ho, Wo) in its own layout. ``"psq-zero"`` / ``"psq-zero-column"``
    are the same with 0 exactly on each grid (:class:`ZeroPSQ`). The format names
    (``"nvfp4"``, ``"mxfp8-e4m3-ceil-rtn"``, ... see :mod:`refqt.quant.formats`)
    fix their own bits; ``bits`` is ignored.
    """
    if is_format_name(name):
        return make_format_quantizer(name)
    if name == "ptq":
        return PTQ(bits)
    if name == "psq":
        return PSQ(bits)
    if name == "psq-column":
        return PSQ(bits, axis="column")
    if name == "psq-zero":
        return ZeroPSQ(bits)
    if name == "psq-zero-column":
        return ZeroPSQ(bits, axis="column")
    if name == "bhq":
        return BHQ(bits)
    if name == "shift":
        return PerSampleShift(bits)
    raise ValueError(f"unknown gradient quantizer {name!r}; expected one of {GRADIENT_QUANTIZERS}")


__all__ = [
    "BHQ",
    "GRADIENT_QUANTIZERS",
    "PSQ",
    "PTQ",
    "AffineGrid",
    "BlockHouseholder",
    "Encoded",
    "FakeQuant",
    "GradientQuantizer",
    "NoiseStream",
    "NonFiniteInputError",
    "PerSampleShift",
    "ZeroPSQ",
    "block_householder",
    "fake_quant",
    "forward_grid",
    "make_gradient_quantizer",
    "noise_codes",
    "quantize_forward",
    "quantize_forward_reference",
    "round_nearest",
    "stochastic_round",
    "uniform_from_codes",
]

"""``LayerQuantizer``: what ``quantize`` hangs on one Linear / Conv2d layer.

Forward (QAT and FQT): the layer input is quantized per tensor (affine
min/max, ``act_bits``) and the weight zero-aligned (``weight_bits``), both
deterministic with a straight-through gradient; then the float op runs on the
quantized operands.

Backward (FQT only): :meth:`LayerQuantizer.bifurcate` quantizes the output
gradient G twice with independent noise -- ``Q_b`` for the input-gradient
path (rows = samples for a conv, tokens for a dense layer) and ``Q_w`` for the
weight-gradient path (per tensor, or per column = output feature / channel).
On a small NumPy G the per-tensor and per-sample modes quantize both paths
in one pass over G, with the same numbers as the two calls
(:mod:`refqt.quant.pair`). Each path can be switched off (``quantize_input_grad`` /
``quantize_weight_grad``), which the statistics use to isolate one quantizer
(Eq. 7) or to get the QAT gradient from the same forward pass.

When ``captured`` is a list, each backward appends what it saw: the layer's
kind ("linear" / "conv"), its output gradient G and the integer codes ``Q_b`` used (for bin-usage
histograms and the Eq. 8 design quantities).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from refqt import ops
from refqt.autodiff import is_grad_enabled
from refqt.backend import device_path, namespace
from refqt.fqt.config import QuantConfig
from refqt.fqt.functions import QuantConv2d, QuantLinear
from refqt.quant import fake_quant, make_gradient_quantizer
from refqt.quant.formats import make_format_quantizer
from refqt.quant.formats.ste import format_fake_quant, round_to_format
from refqt.quant.pair import pairs, quantize_pair
from refqt.tensor import Tensor


def gradient_rows(g: Any, kind: str) -> Any:
    """The (rows, cols) view of an output gradient that the input-path quantizer sees.

    ``kind="linear"``: G (..., out) -> (Π leading, out), one row per sample or token.
    ``kind="conv"``: G (N, F, Ho, Wo) -> (N, F·Ho·Wo), one row per sample.
    """
    return namespace(g).reshape(g, row_shape(tuple(g.shape), kind))


def row_shape(shape: tuple[int, ...], kind: str) -> tuple[int, int]:
    """The (rows, cols) shape of :func:`gradient_rows` for a gradient of ``shape``."""
    if kind == "linear":
        return math.prod(shape[:-1]), shape[-1]
    return shape[0], math.prod(shape[1:])  # explicit: (0, -1) is ambiguous


class LayerQuantizer:
    """The FQT hook of one layer (see the module docstring).

    Parameters
    ----------
    name : str
        The layer's dotted name in the model.
    config : QuantConfig
    rng : numpy.random.Generator
        This layer's own stream of gradient-quantization noise.
    """

    def __init__(self, name: str, config: QuantConfig, rng: np.random.Generator):
        self.name = name
        self.config = config
        self.rng = rng
        fqt = config.mode == "fqt"
        self.grad_quantizer = (
            make_gradient_quantizer(config.grad_quantizer, config.grad_bits)
            if fqt and config.grad_quantizer != "none"
            else None
        )
        wq = config.resolved_weight_grad_quantizer
        self.weight_grad_quantizer = (
            make_gradient_quantizer(wq, config.weight_grad_bits) if fqt and wq != "none" else None
        )
        self.act_format, self.weight_format, self.dgrad_weight_format, self.wgrad_act_format = (
            None if name in ("int", "forward") else make_format_quantizer(name, rounding="nearest")
            for name in (
                config.act_format,
                config.weight_format,
                config.dgrad_weight_format,
                config.wgrad_act_format,
            )
        )
        self.quantize_input_grad = True
        self.quantize_weight_grad = True
        self.captured: list[dict[str, Any]] | None = None
        self._weight_grad_buffer: Any = None  # reused output of Q_w (see _quantize_columns)

    def __repr__(self) -> str:
        return (
            f"LayerQuantizer({self.name!r}, mode={self.config.mode!r}, "
            f"Q_b={self.grad_quantizer!r}, Q_w={self.weight_grad_quantizer!r})"
        )

    # -- forward -------------------------------------------------------------------
    def _operands(self, x: Tensor, w: Tensor, last_axis: bool = True) -> tuple[Tensor, Tensor]:
        xq = (
            fake_quant(x, self.config.act_bits, kind="affine")
            if self.act_format is None
            else format_fake_quant(x, self.act_format, last_axis)
        )
        wq = (
            fake_quant(w, self.config.weight_bits, kind="zero_aligned")
            if self.weight_format is None
            else format_fake_quant(w, self.weight_format, last_axis=False)  # rows: output features
        )
        return xq, wq

    def _backward_operands(self, x: Tensor, w: Tensor) -> dict[str, Any]:
        """A recipe's re-quantized operands for the backward GEMMs (linear): ``x_wgrad``, ``w_dgrad``.

        Quantized from the float input and weight in the forward pass, as a
        recipe does; None where the backward reuses the forward's operand.
        Nothing under :func:`~refqt.autodiff.no_grad` (no backward will run).
        """
        if self.config.mode != "fqt" or not is_grad_enabled():
            return {}
        x_fmt, w_fmt = self.wgrad_act_format, self.dgrad_weight_format
        return {
            "x_wgrad": None if x_fmt is None else round_to_format(x.data, x_fmt, True),
            "w_dgrad": None if w_fmt is None else round_to_format(w.data, w_fmt, True),
        }

    def linear(self, x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
        """``x @ wᵀ + b`` on quantized operands; FQT backward when in fqt mode."""
        xq, wq = self._operands(x, w)
        if self.config.mode == "qat":
            return ops.linear(xq, wq, b)
        args = (xq, wq) if b is None else (xq, wq, b)
        return QuantLinear.apply(*args, hook=self, **self._backward_operands(x, w))

    def conv2d(self, x: Tensor, w: Tensor, b: Tensor | None, stride: Any = 1, padding: Any = 0) -> Tensor:
        """``conv(x, w) + b`` on quantized operands; FQT backward when in fqt mode."""
        xq, wq = self._operands(x, w, last_axis=False)
        if self.config.mode == "qat":
            return ops.conv2d(xq, wq, b, stride=stride, padding=padding)
        args = (xq, wq) if b is None else (xq, wq, b)
        return QuantConv2d.apply(*args, stride=stride, padding=padding, hook=self)

    # -- backward ------------------------------------------------------------------
    def bifurcate(self, g: Any, kind: str, need_input: bool, need_weight: bool) -> tuple[Any, Any]:
        """``(Q_b(G), Q_w(G))``, each of G's shape; ``G`` itself where a path is off.

        ``kind`` is ``"linear"`` (G (..., out): rows are all leading axes) or
        ``"conv"`` (G (N, F, Ho, Wo): rows are samples, columns channels).
        """
        xp = namespace(g)
        if self._pairs(g, need_input and need_weight):  # both paths in one pass over G (refqt/quant/pair.py)
            rows = row_shape(g.shape, kind)
            out_w = self._weight_buffer(g, rows if kind == "linear" else tuple(g.shape))
            g_in = quantize_pair(self.grad_quantizer, self.weight_grad_quantizer, g, rows, self.rng, out_w)
            return g_in, out_w.reshape(g.shape)
        g_in = g
        encoded = None
        if need_input and self.quantize_input_grad and self.grad_quantizer is not None:
            q = self.grad_quantizer
            rows = gradient_rows(g, kind)
            if self.captured is not None and q.has_codes:  # same noise, keeping the codes
                encoded = q.encode(rows, q.uniform(rows, self.rng))
                g_in = xp.reshape(q.decode(encoded), g.shape)
            else:
                g_in = xp.reshape(q(rows, self.rng), g.shape)
        g_w = g
        if need_weight and self.quantize_weight_grad and self.weight_grad_quantizer is not None:
            g_w = self._quantize_columns(g, kind)
        if self.captured is not None:
            self.captured.append({"layer": self.name, "kind": kind, "grad": g, "encoded": encoded})
        return g_in, g_w

    def _pairs(self, g: Any, both: bool) -> bool:
        """Whether this backward quantizes both paths at once (:func:`refqt.quant.pair.quantize_pair`).

        Only on the NumPy fast path (not the device path), with both paths on
        and nothing captured, for the pairs :func:`~refqt.quant.pair.pairs` names;
        the result is bit for bit that of the two calls below.
        """
        return (
            both
            and self.captured is None
            and self.quantize_input_grad
            and self.quantize_weight_grad
            and self.grad_quantizer is not None
            and self.weight_grad_quantizer is not None
            and type(g) is np.ndarray
            and not device_path(g)
            and pairs(self.grad_quantizer, self.weight_grad_quantizer, g)
        )

    def _weight_buffer(self, g: Any, shape: tuple[int, ...]) -> Any:
        """The array ``Q_w(G)`` is written into, of ``shape``, kept from one backward to the next."""
        out = self._weight_grad_buffer
        if out is None or type(out) is not type(g) or out.shape != shape or out.dtype != g.dtype:
            out = namespace(g).empty(shape, dtype=g.dtype)
            self._weight_grad_buffer = out
        return out

    def _quantize_columns(self, g: Any, kind: str) -> Any:
        """``Q_w(G)``: the weight path's quantizer on G's own layout (no transposes).

        Per column (``"psq-column"``: PSQ per channel, axis 1) means one scale
        per output feature of a linear G seen as (rows, out), and one per
        output channel F of a conv G (N, F, Ho, Wo); PTQ is per tensor.

        The result is written into a buffer this hook keeps from one backward
        to the next (no fresh allocation per step). That is safe because the
        layer's backward consumes ``Q_w(G)`` at once (``∇W = Q_w(G)ᵀ X``) and
        keeps no reference to it; it is never ``G`` itself, which autodiff
        may still hold.
        """
        xp = namespace(g)
        matrix = xp.reshape(g, (-1, g.shape[-1])) if kind == "linear" else g
        out = self._weight_buffer(g, tuple(matrix.shape))
        return xp.reshape(self.weight_grad_quantizer(matrix, self.rng, out=out), g.shape)

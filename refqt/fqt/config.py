"""``QuantConfig``: the whole quantization policy of a training run in one value.

The paper's three modes (docs/theory/qat-vs-fqt.md):

=========  =======================================  ====================================
mode       forward                                  backward
=========  =======================================  ====================================
exact      float                                    float
qat        inputs and weights of every conv/linear  float; forward quantizers pass g
           quantized (deterministic, 8 bits)        straight through (STE)
fqt        as qat                                   each conv/linear output gradient G is
                                                    quantized twice, independently: Q_b(G)
                                                    for ∇X, Q_w(G) for ∇W
=========  =======================================  ====================================

Low-precision *recipes* (docs/theory/formats.md) swap the forward's integer
grids for block formats (``act_format``, ``weight_format``), quantize G with
format quantizers, and may re-quantize an operand differently for one
backward GEMM (``dgrad_weight_format``, ``wgrad_act_format``: linear layers).
:data:`RECIPES` / :func:`recipe` hold published ones (NVFP4, MXFP8).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field, replace

from refqt.quant.formats import is_format_name

MODES = ("exact", "qat", "fqt")
GRAD_QUANTIZERS = ("ptq", "psq", "psq-zero", "bhq", "shift", "none")
WEIGHT_GRAD_QUANTIZERS = ("auto", "ptq", "psq-column", "psq-zero-column", "none")


def _check_bits(what: str, bits: int) -> None:
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 16:
        raise ValueError(f"QuantConfig: {what} must be an integer in 1..16, got {bits!r}")


@dataclass(frozen=True)
class QuantConfig:
    """How a model is quantized; pass it to :func:`refqt.fqt.quantize`.

    Parameters
    ----------
    mode : {"exact", "qat", "fqt"}
    act_bits, weight_bits : int
        Bits of the deterministic forward quantizers for layer inputs
        (per-tensor affine min/max) and weights (zero-aligned). Default 8.
    grad_quantizer : {"ptq", "psq", "psq-zero", "bhq", "shift", "none"}
        The unbiased quantizer ``Q_b`` of the input-gradient path (the one the
        paper studies); rows are samples (conv) or tokens (dense layers).
        ``"psq-zero"`` is PSQ with 0 exactly on each row's grid.
    grad_bits : int
        Bits of ``Q_b``.
    weight_grad_quantizer : {"auto", "ptq", "psq-column", "psq-zero-column", "none"}
        ``Q_w`` of the weight-gradient path. ``"auto"`` follows the authors:
        per column (output feature / channel) when ``grad_quantizer`` is
        per-sample (psq, bhq, shift), per tensor otherwise; with ``"psq-zero"``
        per column with 0 on each grid (``"psq-zero-column"``).
    weight_grad_bits : int
        Bits of ``Q_w``; 8 as in the authors' code.
    act_format, weight_format : str
        ``"int"`` (the integer grids above, ``act_bits`` / ``weight_bits``) or
        a block format (:mod:`refqt.quant.formats`, e.g. ``"nvfp4"``,
        ``"nvfp4-tile"``, ``"mxfp8-e4m3-ceil"``), rounded to nearest, STE.
        Activations are blocked along their last axis (linear) or rows (conv).
    dgrad_weight_format, wgrad_act_format : str
        ``"forward"`` (the backward GEMMs reuse the forward's quantized weight
        and input, as Theorem 1 assumes) or a format the float weight (for
        ∇X = Q_b(G)·W̃) or float input (for ∇W = Q_w(G)ᵀ·X̃) is re-quantized
        to, round to nearest (linear layers; conv layers reuse the forward's).
    skip : tuple of str
        ``fnmatch`` patterns of layer names (``model.named_modules()``) left
        in float, e.g. ``("conv1", "fc_out")``.
    seed : int
        Seed of the gradient-quantization noise. Each layer gets its own
        stream, independent of the data shuffling.
    """

    mode: str = "exact"
    act_bits: int = 8
    weight_bits: int = 8
    grad_quantizer: str = "bhq"
    grad_bits: int = 8
    weight_grad_quantizer: str = "auto"
    weight_grad_bits: int = 8
    skip: tuple[str, ...] = field(default_factory=tuple)
    seed: int = 0
    act_format: str = "int"
    weight_format: str = "int"
    dgrad_weight_format: str = "forward"
    wgrad_act_format: str = "forward"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"QuantConfig: mode must be one of {MODES}, got {self.mode!r}")
        if self.grad_quantizer not in GRAD_QUANTIZERS and not is_format_name(self.grad_quantizer):
            raise ValueError(
                f"QuantConfig: grad_quantizer must be one of {GRAD_QUANTIZERS}, got {self.grad_quantizer!r}"
            )
        if self.weight_grad_quantizer not in WEIGHT_GRAD_QUANTIZERS and not is_format_name(
            self.weight_grad_quantizer
        ):
            raise ValueError(
                "QuantConfig: weight_grad_quantizer must be one of "
                f"{WEIGHT_GRAD_QUANTIZERS}, got {self.weight_grad_quantizer!r}"
            )
        for what, default in (
            ("act_format", "int"),
            ("weight_format", "int"),
            ("dgrad_weight_format", "forward"),
            ("wgrad_act_format", "forward"),
        ):
            value = getattr(self, what)
            if value != default and not is_format_name(value):
                raise ValueError(
                    f"QuantConfig: {what} must be {default!r} or a format name "
                    f"(refqt.quant.formats.FORMAT_QUANTIZERS), got {value!r}"
                )
        for what in ("act_bits", "weight_bits", "grad_bits", "weight_grad_bits"):
            _check_bits(what, getattr(self, what))
        if isinstance(self.skip, str):
            raise TypeError("QuantConfig: skip must be a tuple of patterns, not one string")
        object.__setattr__(self, "skip", tuple(self.skip))
        if not all(isinstance(pattern, str) for pattern in self.skip):
            raise TypeError(f"QuantConfig: skip must hold layer-name patterns (str), got {self.skip!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral) or self.seed < 0:
            raise ValueError(
                f"QuantConfig: seed must be an integer ≥ 0 (same seed, same noise), got {self.seed!r}"
            )

    @property
    def resolved_weight_grad_quantizer(self) -> str:
        """``weight_grad_quantizer`` with ``"auto"`` resolved."""
        if self.weight_grad_quantizer != "auto":
            return self.weight_grad_quantizer
        if self.grad_quantizer == "psq-zero":
            return "psq-zero-column"
        if is_format_name(self.grad_quantizer):
            return self.grad_quantizer
        return "psq-column" if self.grad_quantizer in ("psq", "bhq", "shift") else "ptq"

    def with_(self, **changes: object) -> QuantConfig:
        """A copy with some fields changed (``dataclasses.replace``)."""
        return replace(self, **changes)


RECIPES = {
    "nvfp4": {
        "mode": "fqt",
        "act_format": "nvfp4",
        "weight_format": "nvfp4-tile",
        "grad_quantizer": "nvfp4",
        "weight_grad_quantizer": "nvfp4-rht-column",
        "wgrad_act_format": "nvfp4-rht-column",
    },
    "mxfp8": {
        "mode": "fqt",
        "act_format": "mxfp8-e4m3-ceil",
        "weight_format": "mxfp8-e4m3-ceil",
        "grad_quantizer": "mxfp8-e4m3-ceil-rtn",
        "weight_grad_quantizer": "mxfp8-e4m3-column-ceil-rtn",
        "dgrad_weight_format": "mxfp8-e4m3-column-ceil",
        "wgrad_act_format": "mxfp8-e4m3-column-ceil",
    },
}
"""Low-precision training recipes as :class:`QuantConfig` fields (docs/theory/formats.md).

* ``"nvfp4"`` -- NVIDIA's NVFP4 pretraining recipe: E2M1 in 16-blocks with
  E4M3 × FP32 scales; activations 1×16 and weights 16×16 (2D, so ∇X reuses
  the forward's weights), round to nearest; G stochastically rounded for
  both GEMMs; for ∇W both G and the (re-quantized) input get a 16-point
  random Hadamard transform along the tokens (signs fixed, seed 0).
* ``"mxfp8"`` -- MXFP8: E4M3 in 32-blocks with E8M0 scales rounded up (no
  clipping), everything round to nearest; each GEMM wants its operands
  blocked along its own reduction axis, so ∇X re-quantizes the weights
  along the output features and ∇W the inputs along the tokens.

Layers to keep in high precision go in ``skip``.
"""


def recipe(name: str, **changes: object) -> QuantConfig:
    """The :data:`RECIPES` entry ``name`` as a QuantConfig, with ``changes`` (e.g. ``seed``, ``skip``)."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; expected one of {tuple(RECIPES)}")
    return QuantConfig(**{**RECIPES[name], **changes})

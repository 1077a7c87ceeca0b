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
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field, replace

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

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"QuantConfig: mode must be one of {MODES}, got {self.mode!r}")
        if self.grad_quantizer not in GRAD_QUANTIZERS:
            raise ValueError(
                f"QuantConfig: grad_quantizer must be one of {GRAD_QUANTIZERS}, got {self.grad_quantizer!r}"
            )
        if self.weight_grad_quantizer not in WEIGHT_GRAD_QUANTIZERS:
            raise ValueError(
                "QuantConfig: weight_grad_quantizer must be one of "
                f"{WEIGHT_GRAD_QUANTIZERS}, got {self.weight_grad_quantizer!r}"
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
        return "psq-column" if self.grad_quantizer in ("psq", "bhq", "shift") else "ptq"

    def with_(self, **changes: object) -> QuantConfig:
        """A copy with some fields changed (``dataclasses.replace``)."""
        return replace(self, **changes)

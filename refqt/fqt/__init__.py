"""Transparent exact / QAT / FQT training: one config, any refqt.nn model.

model = quantize(model, QuantConfig(mode="fqt", grad_quantizer="bhq", grad_bits=5))
"""

from refqt.fqt.config import QuantConfig
from refqt.fqt.functions import QuantConv2d, QuantLinear
from refqt.fqt.layer import LayerQuantizer
from refqt.fqt.transform import (
    gradient_quantization,
    load_quantizer_state,
    quantizable_layers,
    quantize,
    quantized_layers,
    quantizer_state,
)

__all__ = [
    "LayerQuantizer",
    "QuantConfig",
    "QuantConv2d",
    "QuantLinear",
    "gradient_quantization",
    "load_quantizer_state",
    "quantizable_layers",
    "quantize",
    "quantized_layers",
    "quantizer_state",
]

"""``quantize(model, config)``: switch any refqt.nn model between exact, QAT and FQT.

The model's code is never touched: every ``Linear`` and ``Conv2d`` (the
attention projections included) has an ``fqt`` attribute that, when set, takes
over its forward and backward. ``quantize`` sets it to a fresh
:class:`~refqt.fqt.layer.LayerQuantizer` on each layer the config covers (or
to ``None`` in exact mode and on skipped layers). Parameters, their names and
the ``state_dict`` are unchanged, so one model can be trained, checkpointed
and switched between modes freely.
"""

from __future__ import annotations

import contextlib
import fnmatch
from collections.abc import Iterator

import numpy as np

from refqt.fqt.config import QuantConfig
from refqt.fqt.layer import LayerQuantizer
from refqt.nn.conv import Conv2d
from refqt.nn.linear import Linear
from refqt.nn.module import Module


def quantizable_layers(model: Module) -> list[tuple[str, Module]]:
    """Every ``Linear`` and ``Conv2d`` in ``model``, with dotted names, in registration order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, Linear | Conv2d)]


def quantize(model: Module, config: QuantConfig) -> Module:
    """Put ``model`` into the mode ``config`` describes; returns the same model.

    Layer ``i`` (in :func:`quantizable_layers` order) draws its gradient noise
    from ``SeedSequence(config.seed, spawn_key=(i,))``: one independent
    stream per layer, separate from any data shuffling. A ``config.skip``
    pattern that matches none of the layers raises ValueError (it is most
    likely a typo that would leave the layer it meant quantized).
    """
    if not isinstance(config, QuantConfig):
        raise TypeError(f"quantize: expected a QuantConfig, got {type(config).__name__}")
    if not isinstance(model, Module):
        raise TypeError(f"quantize: expected a refqt.nn.Module, got {type(model).__name__}")
    layers = quantizable_layers(model)
    names = [name for name, _ in layers]
    unused = [p for p in config.skip if not any(fnmatch.fnmatchcase(name, p) for name in names)]
    if unused:  # a typo would silently quantize the layer it meant to keep in float
        raise ValueError(
            f"quantize: skip pattern(s) {unused} match no Linear / Conv2d layer; the layers are {names}"
        )
    for i, (name, layer) in enumerate(layers):
        skipped = any(fnmatch.fnmatchcase(name, pattern) for pattern in config.skip)
        if config.mode == "exact" or skipped:
            layer.fqt = None
        else:
            rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(i,)))
            layer.fqt = LayerQuantizer(name, config, rng)
    return model


def quantized_layers(model: Module) -> list[tuple[str, Module]]:
    """The layers of ``model`` that currently carry a quantizer hook."""
    return [(name, m) for name, m in quantizable_layers(model) if m.fqt is not None]


@contextlib.contextmanager
def gradient_quantization(model: Module, enabled: bool | dict[str, bool]) -> Iterator[None]:
    """Temporarily switch the gradient quantizers of an FQT model on or off.

    ``enabled`` is one flag for every layer, or ``{layer name: flag}`` (layers
    not named are switched off). Both paths of a layer (Q_b and Q_w) follow
    its flag. With every flag off, FQT's gradients are bit-for-bit QAT's.
    """
    layers = quantized_layers(model)
    before = {name: (m.fqt.quantize_input_grad, m.fqt.quantize_weight_grad) for name, m in layers}
    if isinstance(enabled, dict):
        unknown = set(enabled) - {name for name, _ in layers}
        if unknown:
            raise KeyError(f"gradient_quantization: no quantized layer named {sorted(unknown)}")
    try:
        for name, m in layers:
            flag = enabled.get(name, False) if isinstance(enabled, dict) else bool(enabled)
            m.fqt.quantize_input_grad = flag
            m.fqt.quantize_weight_grad = flag
        yield
    finally:
        for name, m in layers:
            m.fqt.quantize_input_grad, m.fqt.quantize_weight_grad = before[name]


def quantizer_state(model: Module) -> dict[str, dict]:
    """The bit-generator state of each layer's gradient noise (for checkpoints)."""
    return {name: m.fqt.rng.bit_generator.state for name, m in quantized_layers(model)}


def load_quantizer_state(model: Module, state: dict[str, dict]) -> None:
    """Restore what :func:`quantizer_state` returned, so a resumed run draws the same noise."""
    layers = dict(quantized_layers(model))
    missing = set(layers) - set(state)
    if missing:
        raise KeyError(f"load_quantizer_state: no state for quantized layers {sorted(missing)}")
    for name, m in layers.items():
        m.fqt.rng.bit_generator.state = state[name]

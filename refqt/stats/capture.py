"""Capturing what each quantized layer's backward sees.

    with capture_gradients(model) as captured:
        loss.backward()
    captured["conv1"][0]["grad"]     # the output gradient G of conv1, (N, F, H, W)
    captured["conv1"][0]["encoded"]  # its Q_b codes (refqt.quant Encoded), or None

and :func:`bin_usage` turns codes into the histograms of the paper's figures:
how many entries fell into each of the 2^b − 1 + 1 levels.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from refqt.backend import backend_of
from refqt.fqt.transform import quantized_layers
from refqt.nn.module import Module


@contextlib.contextmanager
def capture_gradients(model: Module) -> Iterator[dict[str, list[dict[str, Any]]]]:
    """Record, per quantized layer, each backward's output gradient and Q_b codes.

    Yields ``{layer name: [record, ...]}``, one record per backward pass,
    each ``{"layer", "kind", "grad", "encoded"}`` (``encoded`` is None where the
    input-path quantizer was off or absent).
    """
    layers = quantized_layers(model)
    if not layers:
        raise ValueError("capture_gradients: the model has no quantized layer; call refqt.fqt.quantize first")
    captured: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in layers}
    try:
        for name, m in layers:
            m.fqt.captured = captured[name]
        yield captured
    finally:
        for _, m in layers:
            m.fqt.captured = None


def bin_usage(encoded: Any) -> np.ndarray:
    """Counts of each integer code 0 … B in an ``Encoded`` (length B + 1, int64)."""
    codes = backend_of(encoded.codes).to_numpy(encoded.codes).reshape(-1).astype(np.int64)
    return np.bincount(codes, minlength=int(encoded.grid.levels) + 1)

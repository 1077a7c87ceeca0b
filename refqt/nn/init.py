"""Standard weight initialisations, drawn from an explicit ``numpy.random.Generator``.

Every function returns a host NumPy array of the requested shape and dtype;
layers wrap it in a :class:`~refqt.nn.Parameter` (and ``Module.to`` moves it to
another backend). Drawing on the host makes initial weights identical on every
backend for the same seed.

Fan-in and fan-out of a weight ``(out, in)`` are ``in`` and ``out``; of a
convolution kernel ``(F, C, kh, kw)`` they are ``C·kh·kw`` and ``F·kh·kw``.

* Kaiming / He (He et al., 2015): variance ``gain² / fan`` keeps activations'
  scale through ReLU layers (gain √2 for ReLU).
* Xavier / Glorot (Glorot & Bengio, 2010): variance ``gain² · 2 / (fan_in +
  fan_out)`` balances forward and backward scale for tanh-like layers.

A uniform ``U(−b, b)`` has variance ``b²/3``, so ``b = √3 · std``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "calculate_gain",
    "fans",
    "kaiming_normal",
    "kaiming_uniform",
    "uniform",
    "xavier_normal",
    "xavier_uniform",
]


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight of ``shape`` (out, in, *kernel)."""
    if len(shape) < 2:
        raise ValueError(f"init: fan-in and fan-out need a weight of 2 or more dims, got shape {shape}")
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def calculate_gain(nonlinearity: str, negative_slope: float = 0.01) -> float:
    """Recommended gain: ``"linear"``/``"sigmoid"`` 1, ``"tanh"`` 5/3, ``"relu"`` √2,
    ``"leaky_relu"`` √(2 / (1 + slope²)), ``"gelu"`` √2 (treated as ReLU)."""
    gains = {
        "linear": 1.0,
        "sigmoid": 1.0,
        "tanh": 5.0 / 3.0,
        "relu": math.sqrt(2.0),
        "gelu": math.sqrt(2.0),
        "leaky_relu": math.sqrt(2.0 / (1.0 + negative_slope**2)),
    }
    if nonlinearity not in gains:
        raise ValueError(
            f"calculate_gain: unknown nonlinearity {nonlinearity!r}; expected one of {list(gains)}"
        )
    return gains[nonlinearity]


def _fan(shape: tuple[int, ...], mode: str) -> int:
    fan_in, fan_out = fans(shape)
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"init: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    return fan_in if mode == "fan_in" else fan_out


def uniform(
    shape: tuple[int, ...], rng: np.random.Generator, bound: float, dtype: Any = np.float32
) -> np.ndarray:
    """``U(−bound, bound)`` numbers of ``shape``."""
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def kaiming_normal(
    shape: tuple[int, ...],
    rng: np.random.Generator,
    gain: float = math.sqrt(2.0),
    mode: str = "fan_in",
    dtype: Any = np.float32,
) -> np.ndarray:
    """``N(0, std²)`` with ``std = gain / √fan`` (fan chosen by ``mode``)."""
    std = gain / math.sqrt(_fan(shape, mode))
    return (std * rng.standard_normal(shape)).astype(dtype)


def kaiming_uniform(
    shape: tuple[int, ...],
    rng: np.random.Generator,
    gain: float = math.sqrt(2.0),
    mode: str = "fan_in",
    dtype: Any = np.float32,
) -> np.ndarray:
    """``U(−b, b)`` with ``b = gain · √(3 / fan)`` (same variance as :func:`kaiming_normal`)."""
    return uniform(shape, rng, gain * math.sqrt(3.0 / _fan(shape, mode)), dtype)


def xavier_normal(
    shape: tuple[int, ...], rng: np.random.Generator, gain: float = 1.0, dtype: Any = np.float32
) -> np.ndarray:
    """``N(0, std²)`` with ``std = gain · √(2 / (fan_in + fan_out))``."""
    fan_in, fan_out = fans(shape)
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    return (std * rng.standard_normal(shape)).astype(dtype)


def xavier_uniform(
    shape: tuple[int, ...], rng: np.random.Generator, gain: float = 1.0, dtype: Any = np.float32
) -> np.ndarray:
    """``U(−b, b)`` with ``b = gain · √(6 / (fan_in + fan_out))``."""
    fan_in, fan_out = fans(shape)
    return uniform(shape, rng, gain * math.sqrt(6.0 / (fan_in + fan_out)), dtype)

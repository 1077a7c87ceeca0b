"""Normalisation layers: ``BatchNorm1d``, ``BatchNorm2d`` and ``LayerNorm``.

The math (and the fused VJPs) is in :mod:`refqt.ops.norm`. Batch norm keeps
running mean and variance as *buffers*: state saved by ``state_dict`` but not
learned. In training mode a forward normalises with the batch's statistics and
updates the buffers in place; in evaluation mode it normalises with them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from refqt import ops
from refqt.nn import checks
from refqt.nn.module import Module, Parameter
from refqt.tensor import Tensor, as_tensor


def _number(layer: str, name: str, value: Any) -> float:
    """``value`` as a float; TypeError naming the layer unless it is a real number (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{layer}: {name} must be a real number, got {value!r}")
    return float(value)


def _eps(layer: str, eps: Any) -> float:
    """``eps`` if it is a number > 0 (it keeps ``1/√(var + eps)`` finite)."""
    if not _number(layer, "eps", eps) > 0:
        raise ValueError(f"{layer}: eps must be > 0, got {eps}")
    return float(eps)


class _BatchNorm(Module):
    """Shared body of the batch norms; subclasses fix the input rank."""

    expected = ""  # the input layout, for error messages
    ndim = 0

    def __init__(
        self, num_features: int, *, eps: float = 1e-5, momentum: float = 0.1, dtype: Any = np.float32
    ):
        super().__init__()
        layer = type(self).__name__
        self.num_features = checks.int_at_least(layer, "num_features", num_features)
        if not 0 <= _number(layer, "momentum", momentum) <= 1:
            raise ValueError(f"{layer}: momentum must lie in [0, 1], got {momentum}")
        self.momentum = momentum
        self.eps = _eps(layer, eps)
        dtype = checks.float_dtype(layer, dtype)
        self.weight = Parameter(np.ones(num_features, dtype=dtype))
        self.bias = Parameter(np.zeros(num_features, dtype=dtype))
        self.register_buffer("running_mean", np.zeros(num_features, dtype=dtype))
        self.register_buffer("running_var", np.ones(num_features, dtype=dtype))

    def forward(self, x: Tensor) -> Tensor:
        """Normalise ``x`` (a list takes the weight's dtype and backend); shape unchanged."""
        x = as_tensor(x, like=self.weight)
        if x.ndim != self.ndim or x.shape[1] != self.num_features:
            raise ValueError(f"{self!r}: expected input of shape {self.expected}, got shape {tuple(x.shape)}")
        return ops.batch_norm(
            x,
            gamma=self.weight,
            beta=self.bias,
            running_mean=self.running_mean,
            running_var=self.running_var,
            training=self.training,
            momentum=self.momentum,
            eps=self.eps,
        )

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class BatchNorm1d(_BatchNorm):
    """Batch norm of (N, C) features, per feature over the batch.

    Parameters: weight γ (C,) = 1 and bias β (C,) = 0 initially; buffers
    ``running_mean`` (C,) = 0, ``running_var`` (C,) = 1. Training on a single
    row (N = 1) raises ``ValueError``: its variance is zero.

    ``eps`` and ``momentum`` are **keyword-only**: PyTorch's
    ``BatchNorm1d(C, eps, momentum)`` and an older refqt order
    ``(C, momentum, eps)`` disagree, so a positional call would silently swap
    them; here it raises ``TypeError`` instead. The meaning of both matches
    PyTorch (``momentum`` is the weight of the new batch in the running
    averages, default 0.1). There are no ``affine`` or
    ``track_running_stats`` switches: γ, β and the running statistics always
    exist.
    """

    ndim = 2

    def __init__(
        self, num_features: int, *, eps: float = 1e-5, momentum: float = 0.1, dtype: Any = np.float32
    ):
        super().__init__(num_features, eps=eps, momentum=momentum, dtype=dtype)
        self.expected = f"(N, {num_features})"


class BatchNorm2d(_BatchNorm):
    """Batch norm of (N, C, H, W) images, per channel over N·H·W values.

    Parameters and buffers as :class:`BatchNorm1d`; ``eps`` and ``momentum``
    are keyword-only, as there. A batch of one image is fine in training when
    H·W > 1.
    """

    ndim = 4

    def __init__(
        self, num_features: int, *, eps: float = 1e-5, momentum: float = 0.1, dtype: Any = np.float32
    ):
        super().__init__(num_features, eps=eps, momentum=momentum, dtype=dtype)
        self.expected = f"(N, {num_features}, H, W)"


class LayerNorm(Module):
    """Layer norm over the last axis: (..., D) -> (..., D).

    Parameters: weight γ (D,) = 1, bias β (D,) = 0 initially.
    """

    def __init__(self, normalized_shape: int, eps: float = 1e-5, *, dtype: Any = np.float32):
        super().__init__()
        self.normalized_shape = checks.int_at_least("LayerNorm", "normalized_shape", normalized_shape)
        self.eps = _eps("LayerNorm", eps)
        dtype = checks.float_dtype("LayerNorm", dtype)
        self.weight = Parameter(np.ones(normalized_shape, dtype=dtype))
        self.bias = Parameter(np.zeros(normalized_shape, dtype=dtype))

    def forward(self, x: Tensor) -> Tensor:
        """Normalise ``x`` (a list takes the weight's dtype and backend); shape unchanged."""
        x = as_tensor(x, like=self.weight)
        if x.ndim == 0 or x.shape[-1] != self.normalized_shape:
            raise ValueError(
                f"{self!r}: expected input of shape (..., {self.normalized_shape}), "
                f"got shape {tuple(x.shape)}"
            )
        return ops.layer_norm(x, self.weight, self.bias, eps=self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}"

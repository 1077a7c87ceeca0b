"""``Linear``: the fully connected layer ``y = x Wᵀ + b``, with the FQT hook."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from refqt import ops
from refqt.backend import check_generator
from refqt.nn import checks, init
from refqt.nn.module import Module, Parameter
from refqt.ops.linalg import check_linear_dtypes
from refqt.tensor import Tensor, as_tensor

# weight_init(shape, rng, dtype=dtype) -> host array, e.g. refqt.nn.init.kaiming_normal
WeightInit = Callable[..., np.ndarray]


class Linear(Module):
    """``y = x Wᵀ + b`` over the last axis.

    Shapes: x (..., in_features) -> y (..., out_features); weight
    (out_features, in_features); bias (out_features,).

    Parameters
    ----------
    in_features, out_features : int
    bias : bool
        Whether to learn a bias.
    rng : numpy.random.Generator
        Source of the initial weights.
    dtype : dtype or str
        Parameter dtype (float32 by default).
    weight_init : callable, optional
        ``weight_init(shape, rng, dtype=dtype) -> ndarray``, e.g.
        ``refqt.nn.init.kaiming_normal``. By default weight and bias are drawn
        from ``U(−1/√in, 1/√in)`` (PyTorch's default).

    Attributes
    ----------
    fqt : object or None
        The fully-quantized-training hook. When set, ``forward`` calls
        ``self.fqt.linear(x, self.weight, self.bias)`` instead of
        ``ops.linear``, so a quantizer can take over this layer's forward and
        backward. It is a plain attribute: not a sub-module, not in the state.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        rng: np.random.Generator,
        dtype: Any = np.float32,
        weight_init: WeightInit | None = None,
    ):
        super().__init__()
        self.in_features = checks.int_at_least("Linear", "in_features", in_features)
        self.out_features = checks.int_at_least("Linear", "out_features", out_features)
        check_generator("Linear", rng)
        dtype = checks.float_dtype("Linear", dtype)
        shape = (out_features, in_features)
        bound = 1.0 / math.sqrt(in_features)
        if weight_init is None:
            w = init.uniform(shape, rng, bound, dtype)
        else:
            w = weight_init(shape, rng, dtype=dtype)
        self.weight = Parameter(np.asarray(w, dtype=dtype))
        self.bias = Parameter(init.uniform((out_features,), rng, bound, dtype)) if bias else None
        self.fqt = None

    def forward(self, x: Tensor) -> Tensor:
        """x (..., in_features) -> (..., out_features); a list takes the weight's dtype and backend."""
        x = as_tensor(x, like=self.weight)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"{self!r}: expected input of shape (..., {self.in_features}), got shape {tuple(x.shape)}"
            )
        check_linear_dtypes(x, self.weight, self.bias)  # before the FQT hook too: no silent promotion
        if self.fqt is not None:
            return self.fqt.linear(x, self.weight, self.bias)
        return ops.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
        )

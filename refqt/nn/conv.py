"""``Conv2d``: 2-d convolution (cross-correlation) over NCHW images, with the FQT hook."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from refqt import ops
from refqt.backend import check_generator
from refqt.nn import checks, init
from refqt.nn.linear import WeightInit
from refqt.nn.module import Module, Parameter
from refqt.tensor import Tensor, as_tensor


def _pair(name: str, v: Any, minimum: int) -> tuple[int, int]:
    """``v``, an int or a pair of ints each ≥ ``minimum``, as a pair; else an error naming Conv2d."""
    pair = tuple(v) if isinstance(v, tuple | list) else (v, v)
    if len(pair) != 2 or not all(checks.is_int(a) for a in pair):
        raise TypeError(f"Conv2d: {name} must be an int or a pair of ints, got {v!r}")
    if min(pair) < minimum:
        raise ValueError(f"Conv2d: {name} must be >= {minimum}, got {v!r}")
    return (int(pair[0]), int(pair[1]))


class Conv2d(Module):
    """``y[n, f] = Σ_c x[n, c] ⋆ W[f, c] + b[f]``.

    Shapes: x (N, C, H, W) -> y (N, F, H', W') with
    ``H' = (H + 2·pad − kh) // stride + 1`` (likewise W'); weight
    (F, C, kh, kw); bias (F,).

    Parameters
    ----------
    in_channels, out_channels : int
        C and F.
    kernel_size : int or (kh, kw)
    stride, padding : int or (vertical, horizontal)
        Passed to :func:`refqt.ops.conv2d`; stride ≥ 1, padding ≥ 0.
    bias : bool
    rng : numpy.random.Generator
        Source of the initial weights.
    dtype : dtype or str
        float32 by default.
    weight_init : callable, optional
        ``weight_init(shape, rng, dtype=dtype) -> ndarray``; by default weight and
        bias are ``U(−1/√fan_in, 1/√fan_in)`` with ``fan_in = C·kh·kw``.

    Attributes
    ----------
    fqt : object or None
        The fully-quantized-training hook: when set, ``forward`` calls
        ``self.fqt.conv2d(x, self.weight, self.bias, stride=..., padding=...)``.
        A plain attribute, not part of the state.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        bias: bool = True,
        *,
        rng: np.random.Generator,
        dtype: Any = np.float32,
        weight_init: WeightInit | None = None,
    ):
        super().__init__()
        self.in_channels = checks.int_at_least("Conv2d", "in_channels", in_channels)
        self.out_channels = checks.int_at_least("Conv2d", "out_channels", out_channels)
        self.kernel_size = _pair("kernel_size", kernel_size, 1)
        _pair("stride", stride, 1)
        _pair("padding", padding, 0)
        self.stride = stride
        self.padding = padding
        check_generator("Conv2d", rng)
        dtype = checks.float_dtype("Conv2d", dtype)
        shape = (out_channels, in_channels, *self.kernel_size)
        bound = 1.0 / math.sqrt(init.fans(shape)[0])
        if weight_init is None:
            w = init.uniform(shape, rng, bound, dtype)
        else:
            w = weight_init(shape, rng, dtype=dtype)
        self.weight = Parameter(np.asarray(w, dtype=dtype))
        self.bias = Parameter(init.uniform((out_channels,), rng, bound, dtype)) if bias else None
        self.fqt = None

    def forward(self, x: Tensor) -> Tensor:
        """x (N, C_in, H, W) -> (N, C_out, H', W'); a list takes the weight's dtype and backend."""
        x = as_tensor(x, like=self.weight)
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{self!r}: expected input of shape (N, {self.in_channels}, H, W), got shape {tuple(x.shape)}"
            )
        if self.fqt is not None:
            return self.fqt.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding)
        return ops.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None}"
        )

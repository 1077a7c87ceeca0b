"""Transformer blocks: ``TransformerEncoderLayer`` and ``TransformerDecoderLayer``.

Both are **pre-LN** by default (Xiong et al., 2020, "On Layer Normalization in
the Transformer Architecture"): each sub-layer normalises its *input* and adds
its output to the residual stream, ``x ← x + f(LN(x))``. The residual path is
then an identity from input to output, which trains stably without learning
rate warm-up tricks. ``norm_first=False`` gives the original post-LN block of
Vaswani et al. (2017), ``x ← LN(x + f(x))``.

Shapes are batch first: (N, L, d_model).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from refqt.backend import check_generator
from refqt.nn.activation import GELU, ReLU
from refqt.nn.attention import MultiHeadAttention
from refqt.nn.dropout import Dropout
from refqt.nn.linear import Linear
from refqt.nn.module import Module
from refqt.nn.norm import LayerNorm
from refqt.tensor import Tensor

_ACTIVATIONS = {"relu": ReLU, "gelu": GELU}


class FeedForward(Module):
    """Position-wise MLP: ``Linear(d, ff) → activation → dropout → Linear(ff, d)``."""

    def __init__(
        self,
        d_model: int,
        dim_feedforward: int,
        dropout: float = 0.0,
        activation: str = "gelu",
        *,
        rng: np.random.Generator,
        dropout_rng: np.random.Generator | None = None,
        dtype: Any = np.float32,
    ):
        super().__init__()
        check_generator("FeedForward", rng)
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"FeedForward: activation must be one of {list(_ACTIVATIONS)}, got {activation!r}"
            )
        self.linear1 = Linear(d_model, dim_feedforward, rng=rng, dtype=dtype)
        self.activation = _ACTIVATIONS[activation]()
        self.dropout = Dropout(dropout, dropout_rng)
        self.linear2 = Linear(dim_feedforward, d_model, rng=rng, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear2(self.dropout(self.activation(self.linear1(x))))


class TransformerEncoderLayer(Module):
    """Self-attention then feed-forward, each with a residual connection.

    Pre-LN (default)::

        x ← x + Dropout(SelfAttn(LN₁(x)))
        x ← x + Dropout(FF(LN₂(x)))

    Post-LN (``norm_first=False``): ``x ← LN₁(x + Dropout(SelfAttn(x)))``, then
    ``x ← LN₂(x + Dropout(FF(x)))``.

    Parameters
    ----------
    d_model, num_heads, dim_feedforward : int
    dropout : float
        Dropout on each sub-layer's output and inside the feed-forward.
    activation : ``"gelu"`` or ``"relu"``
        ``"gelu"`` is the exact GELU (:class:`~refqt.nn.GELU`). PyTorch's
        layers default to ``"relu"``.
    norm_first : bool, keyword-only
        True (the default here) for pre-LN, False for post-LN (PyTorch's
        default). Keyword-only because PyTorch's sixth positional argument
        is ``layer_norm_eps``: a float there would silently switch pre-LN on.
    rng : numpy.random.Generator
        Initial weights.
    dropout_rng : numpy.random.Generator, optional
        Dropout masks (required when ``dropout > 0``).
    dtype : dtype or str
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        dim_feedforward: int,
        dropout: float = 0.0,
        activation: str = "gelu",
        *,
        norm_first: bool = True,
        rng: np.random.Generator,
        dropout_rng: np.random.Generator | None = None,
        dtype: Any = np.float32,
    ):
        super().__init__()
        check_generator("TransformerEncoderLayer", rng)
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(d_model, num_heads, rng=rng, dtype=dtype)
        self.ff = FeedForward(
            d_model, dim_feedforward, dropout, activation, rng=rng, dropout_rng=dropout_rng, dtype=dtype
        )
        self.norm1 = LayerNorm(d_model, dtype=dtype)
        self.norm2 = LayerNorm(d_model, dtype=dtype)
        self.dropout1 = Dropout(dropout, dropout_rng)
        self.dropout2 = Dropout(dropout, dropout_rng)

    def forward(self, x: Tensor, key_padding_mask: Any = None, causal: bool = False) -> Tensor:
        """x (N, L, d_model) -> (N, L, d_model); ``key_padding_mask`` (N, L), True = padding."""

        def attend(h: Tensor) -> Tensor:
            return self.dropout1(self.self_attn(h, key_padding_mask=key_padding_mask, causal=causal))

        if self.norm_first:
            x = x + attend(self.norm1(x))
            return x + self.dropout2(self.ff(self.norm2(x)))
        x = self.norm1(x + attend(x))
        return self.norm2(x + self.dropout2(self.ff(x)))

    def extra_repr(self) -> str:
        return f"norm_first={self.norm_first}"


class TransformerDecoderLayer(Module):
    """Masked self-attention, cross-attention to ``memory``, then feed-forward.

    Pre-LN (default)::

        x ← x + Dropout(SelfAttn(LN₁(x), causal))
        x ← x + Dropout(CrossAttn(LN₂(x), memory))
        x ← x + Dropout(FF(LN₃(x)))

    Post-LN (``norm_first=False``) applies each LN after its residual sum.
    Parameters as :class:`TransformerEncoderLayer`.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        dim_feedforward: int,
        dropout: float = 0.0,
        activation: str = "gelu",
        *,
        norm_first: bool = True,
        rng: np.random.Generator,
        dropout_rng: np.random.Generator | None = None,
        dtype: Any = np.float32,
    ):
        super().__init__()
        check_generator("TransformerDecoderLayer", rng)
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(d_model, num_heads, rng=rng, dtype=dtype)
        self.cross_attn = MultiHeadAttention(d_model, num_heads, rng=rng, dtype=dtype)
        self.ff = FeedForward(
            d_model, dim_feedforward, dropout, activation, rng=rng, dropout_rng=dropout_rng, dtype=dtype
        )
        self.norm1 = LayerNorm(d_model, dtype=dtype)
        self.norm2 = LayerNorm(d_model, dtype=dtype)
        self.norm3 = LayerNorm(d_model, dtype=dtype)
        self.dropout1 = Dropout(dropout, dropout_rng)
        self.dropout2 = Dropout(dropout, dropout_rng)
        self.dropout3 = Dropout(dropout, dropout_rng)

    def forward(
        self,
        x: Tensor,
        memory: Tensor,
        causal: bool = True,
        key_padding_mask: Any = None,
        memory_key_padding_mask: Any = None,
    ) -> Tensor:
        """x (N, L, d_model), memory (N, S, d_model) -> (N, L, d_model).

        ``key_padding_mask`` (N, L) and ``memory_key_padding_mask`` (N, S) mark
        padding with True; ``causal`` masks future positions in self-attention.
        """

        def self_attend(h: Tensor) -> Tensor:
            return self.dropout1(self.self_attn(h, key_padding_mask=key_padding_mask, causal=causal))

        def cross_attend(h: Tensor) -> Tensor:
            return self.dropout2(self.cross_attn(h, memory, key_padding_mask=memory_key_padding_mask))

        if self.norm_first:
            x = x + self_attend(self.norm1(x))
            x = x + cross_attend(self.norm2(x))
            return x + self.dropout3(self.ff(self.norm3(x)))
        x = self.norm1(x + self_attend(x))
        x = self.norm2(x + cross_attend(x))
        return self.norm3(x + self.dropout3(self.ff(x)))

    def extra_repr(self) -> str:
        return f"norm_first={self.norm_first}"

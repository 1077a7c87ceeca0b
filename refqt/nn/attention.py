"""``MultiHeadAttention``: scaled dot-product attention over several heads.

For inputs ``query`` (N, Lq, E) and ``key``, ``value`` (N, Lk, E), with H heads
of size d = E / H::

    Q = query Wqᵀ + bq,  K = key Wkᵀ + bk,  V = value Wvᵀ + bv   (N, L, E)
    split each into heads                                         (N, H, L, d)
    A = softmax(Q Kᵀ / √d + mask) V                               (N, H, Lq, d)
    out = concat_heads(A) Woᵀ + bo                                (N, Lq, E)

The four projections are plain :class:`~refqt.nn.Linear` sub-modules
(``q_proj``, ``k_proj``, ``v_proj``, ``out_proj``), so whatever hooks into
``Linear`` -- fully quantized training -- reaches them too. The attention
itself is :func:`refqt.ops.scaled_dot_product_attention`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from refqt import ops
from refqt.backend import check_generator, namespace
from refqt.nn import checks
from refqt.nn.linear import Linear
from refqt.nn.module import Module
from refqt.ops.shape import host_or_backend_array
from refqt.tensor import Tensor, as_tensor


class MultiHeadAttention(Module):
    """Multi-head attention, batch first.

    There is no dropout on the attention weights. Differences from PyTorch's
    ``nn.MultiheadAttention`` that would otherwise pass silently:

    * ``bias`` is **keyword-only** (PyTorch's third positional argument is
      ``dropout``: ``MultiHeadAttention(E, H, 0.1)`` raises ``TypeError``).
    * Always **batch first**: (N, L, E), as PyTorch with ``batch_first=True``
      (PyTorch's default is (L, N, E)).
    * :meth:`forward` returns the output alone, not ``(output, weights)``, and
      its ``causal`` is keyword-only (PyTorch's fifth positional is
      ``need_weights``).

    Parameters
    ----------
    embed_dim : int
        E, the model width; must be divisible by ``num_heads``.
    num_heads : int
        H.
    bias : bool, keyword-only
        Whether the projections have biases.
    rng : numpy.random.Generator
        Source of the initial weights (the projections' default init).
    dtype : dtype or str
        float32 by default.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        *,
        bias: bool = True,
        rng: np.random.Generator,
        dtype: Any = np.float32,
    ):
        super().__init__()
        checks.int_at_least("MultiHeadAttention", "embed_dim", embed_dim)
        checks.int_at_least("MultiHeadAttention", "num_heads", num_heads)
        check_generator("MultiHeadAttention", rng)
        checks.float_dtype("MultiHeadAttention", dtype)
        if embed_dim % num_heads != 0:
            raise ValueError(
                f"MultiHeadAttention: embed_dim {embed_dim} is not divisible by num_heads {num_heads}"
            )
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.q_proj = Linear(embed_dim, embed_dim, bias, rng=rng, dtype=dtype)
        self.k_proj = Linear(embed_dim, embed_dim, bias, rng=rng, dtype=dtype)
        self.v_proj = Linear(embed_dim, embed_dim, bias, rng=rng, dtype=dtype)
        self.out_proj = Linear(embed_dim, embed_dim, bias, rng=rng, dtype=dtype)

    def _split_heads(self, x: Tensor) -> Tensor:
        n, length, _ = x.shape
        return ops.permute(ops.reshape(x, (n, length, self.num_heads, self.head_dim)), (0, 2, 1, 3))

    def _merge_heads(self, x: Tensor) -> Tensor:
        n, _, length, _ = x.shape
        return ops.reshape(ops.permute(x, (0, 2, 1, 3)), (n, length, self.embed_dim))

    def forward(
        self,
        query: Tensor,
        key: Tensor | None = None,
        value: Tensor | None = None,
        key_padding_mask: Any = None,
        *,
        causal: bool = False,
    ) -> Tensor:
        """Attend from ``query`` to ``key``/``value`` (both default to ``query``: self-attention).

        Parameters
        ----------
        query : Tensor
            (N, Lq, E). Lists and host arrays are accepted (lists take the
            weights' dtype), as by the ops.
        key, value : Tensor, optional
            (N, Lk, E) with Lk ≥ 1; ``value`` defaults to ``key``.
        key_padding_mask : bool array (N, Lk), optional
            **True marks padding**: keys to ignore (PyTorch's convention). A
            Tensor, an array or a nested list of bools.
        causal : bool, keyword-only
            Position i attends only to keys j ≤ i (needs Lq == Lk).

        Returns
        -------
        Tensor
            (N, Lq, E).
        """
        like = self.q_proj.weight
        query = as_tensor(query, like=like)
        key = query if key is None else as_tensor(key, like=like)
        value = key if value is None else as_tensor(value, like=like)
        name = f"MultiHeadAttention(embed_dim={self.embed_dim}, num_heads={self.num_heads})"
        for arg, t in (("query", query), ("key", key), ("value", value)):
            if t.ndim != 3 or t.shape[-1] != self.embed_dim:
                raise ValueError(
                    f"{name}: {arg} must have shape (N, L, {self.embed_dim}), got {tuple(t.shape)}"
                )
        if key.shape[:2] != value.shape[:2] or key.shape[0] != query.shape[0]:
            raise ValueError(
                f"{name}: query {query.shape}, key {key.shape} and value {value.shape} do not match in N / Lk"
            )
        if key.shape[1] == 0:
            raise ValueError(
                f"{name}: cannot attend over 0 keys (Lk = 0): key {key.shape}, value {value.shape}; "
                f"expected key and value of shape (N, Lk, {self.embed_dim}) with Lk >= 1"
            )
        if causal and query.shape[1] != key.shape[1]:
            raise ValueError(
                f"{name}: causal=True needs as many queries as keys (Lq == Lk), "
                f"got query {query.shape} and key {key.shape}"
            )
        mask = None
        if key_padding_mask is not None:
            pad = host_or_backend_array(name, key_padding_mask, key.backend)
            if tuple(pad.shape) != key.shape[:2]:
                raise ValueError(
                    f"{name}: key_padding_mask must have shape {key.shape[:2]}, got {tuple(pad.shape)}"
                )
            if "bool" not in str(pad.dtype):
                raise TypeError(f"{name}: key_padding_mask must be boolean, got dtype {pad.dtype}")
            xp = namespace(pad)
            mask = xp.reshape(xp.logical_not(pad), (key.shape[0], 1, 1, key.shape[1]))
        q = self._split_heads(self.q_proj(query))
        k = self._split_heads(self.k_proj(key))
        v = self._split_heads(self.v_proj(value))
        attended = ops.scaled_dot_product_attention(q, k, v, mask=mask, causal=causal)
        return self.out_proj(self._merge_heads(attended))

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}"

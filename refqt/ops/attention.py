"""Scaled dot-product attention, composed from primitive ops.

``attention(q, k, v) = softmax(q kᵀ / √d) v``, each query row a weighted mean
of the value rows. It is built from :func:`matmul`, :func:`swapaxes`,
:func:`where` and :func:`softmax`, so its backward is theirs: no VJP of its
own to get wrong.

Masked-out scores are replaced by a very negative *finite* number rather than
``-inf``, so a query whose every key is masked gets uniform weights (the mean
of ``v``) instead of NaN.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from refqt.backend import Backend, namespace
from refqt.ops.arith import mul, where
from refqt.ops.linalg import matmul
from refqt.ops.shape import host_or_backend_array, swapaxes
from refqt.ops.softmax import softmax
from refqt.tensor import Tensor, as_tensor


def causal_mask(backend: Backend, lq: int, lk: int) -> Any:
    """Boolean (lq, lk) array of ``backend``, True where key j ≤ query i (``tril``).

    Needs ``lq == lk`` (ValueError otherwise), as causal attention does: with
    more keys than queries it is ambiguous whether the queries line up with
    the first or the last keys.
    """
    if lq != lk:
        raise ValueError(f"causal_mask: needs as many queries as keys (lq == lk), got lq={lq}, lk={lk}")
    xp = backend.xp
    return xp.arange(lk)[None, :] <= xp.arange(lq)[:, None]


def scaled_dot_product_attention(
    q: Tensor, k: Tensor, v: Tensor, mask: Any = None, *, causal: bool = False
) -> Tensor:
    """softmax(q kᵀ / √d + masking) v.

    ``mask`` is the fourth positional argument, as PyTorch's boolean
    ``attn_mask`` (True means "may attend" in both). ``causal`` is
    **keyword-only**: PyTorch's fifth positional is ``dropout_p``, so
    ``(q, k, v, None, 0.1)`` would otherwise turn on causal masking silently;
    here it raises ``TypeError``. There is no dropout and no ``scale``.

    Parameters
    ----------
    q : Tensor (..., Lq, d)
    k : Tensor (..., Lk, d)
    v : Tensor (..., Lk, dv)
        Leading (batch, head) axes broadcast as in :func:`matmul`.
    mask : boolean array, optional
        Broadcastable to (..., Lq, Lk); True means "may attend".
    causal : bool
        Also forbid query i to see keys j > i; needs Lq == Lk (ValueError otherwise).
        With no keys at all (Lk = 0) the softmax would be over 0 elements: ValueError.

    Returns
    -------
    Tensor (..., Lq, dv)
    """
    q, k, v = as_tensor(q), as_tensor(k), as_tensor(v)
    if q.ndim < 2 or k.ndim < 2 or v.ndim < 2 or q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"scaled_dot_product_attention: expected q (..., Lq, d), k (..., Lk, d), v (..., Lk, dv); "
            f"got q {q.shape}, k {k.shape}, v {v.shape}"
        )
    lq, lk = q.shape[-2], k.shape[-2]
    if lk == 0:
        raise ValueError(
            f"scaled_dot_product_attention: cannot attend over 0 keys (the softmax over axis -1 of the "
            f"scores would be over Lk = 0 elements); got q {q.shape}, k {k.shape}, v {v.shape}"
        )
    if causal and lq != lk:
        raise ValueError(
            f"scaled_dot_product_attention: causal=True needs Lq == Lk, got q {q.shape} and k {k.shape}"
        )
    scores = mul(matmul(q, swapaxes(k, -1, -2)), 1.0 / math.sqrt(q.shape[-1]))
    allowed = None
    if mask is not None:
        allowed = host_or_backend_array("scaled_dot_product_attention", mask, q.backend)
        if "bool" not in str(allowed.dtype):
            raise TypeError(f"scaled_dot_product_attention: mask must be boolean, got dtype {allowed.dtype}")
        try:
            np.broadcast_shapes(tuple(allowed.shape), scores.shape)
        except ValueError:
            raise ValueError(
                f"scaled_dot_product_attention: mask of shape {tuple(allowed.shape)} does not broadcast "
                f"to the scores {scores.shape}"
            ) from None
    if causal:
        tril = causal_mask(scores.backend, lq, lk)
        allowed = tril if allowed is None else allowed & tril
    if allowed is not None:
        very_negative = float(namespace(scores.data).finfo(scores.dtype).min) / 2
        scores = where(allowed, scores, very_negative)
    return matmul(softmax(scores, axis=-1), v)

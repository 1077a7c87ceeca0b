"""Embedding lookup: rows of a weight matrix picked by integer ids.

``out[..., :] = weight[ids[...], :]``. The VJP adds each output row's
cotangent into the row it came from; an id used several times collects the
sum (``Backend.scatter_add``, since plain ``g_w[ids] += g`` would keep only one
of the repeats).

**Host synchronisation** (on a GPU): one per call, the check that every id lies
in ``[0, V)``, kept so that a bad id is a clear ``IndexError``.
"""

from __future__ import annotations

import math
from typing import Any

from refqt.autodiff import Context, Function
from refqt.backend import backend_of, namespace
from refqt.ops.shape import host_or_backend_array
from refqt.tensor import Tensor, as_tensor


class Embedding(Function):
    """out = weight[ids]  (weight (V, D), ids (...) -> (..., D)).

    g_weight = zeros (V, D) with g_weight[ids[j]] += g[j] for every position j.
    """

    @staticmethod
    def forward(ctx: Context, weight: Any, ids: Any) -> Any:
        xp = namespace(weight)
        flat = xp.reshape(ids, (-1,))
        ctx.save_for_backward(flat, tuple(weight.shape))
        return xp.reshape(xp.take(weight, flat, axis=0), (*ids.shape, weight.shape[1]))

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        flat, shape = ctx.saved
        xp = namespace(g)
        rows = xp.reshape(g, (math.prod(flat.shape), shape[1]))
        return (backend_of(g).scatter_add(xp.zeros(shape, dtype=g.dtype), flat, rows),)


def embedding(weight: Tensor, ids: Any) -> Tensor:
    """Rows of ``weight`` (V, D) for integer ``ids`` of any shape (...) -> (..., D).

    ``ids`` may be a NumPy array, a list, an array of the weight's backend or
    a Tensor; every id must lie in ``[0, V)``.
    """
    weight = as_tensor(weight)
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be (V, D), got shape {weight.shape}")
    ids = host_or_backend_array("embedding", ids, weight.backend)
    xp = namespace(ids)
    if not xp.isdtype(ids.dtype, "integral"):
        raise TypeError(f"embedding: ids must be integers, got dtype {ids.dtype}")
    if ids.size and bool(xp.any((ids < 0) | (ids >= weight.shape[0]))):
        raise IndexError(
            f"embedding: ids must lie in [0, {weight.shape[0]}) for weight {weight.shape}; "
            f"got min {int(xp.min(ids))}, max {int(xp.max(ids))}"
        )
    return Embedding.apply(weight, ids=ids)

"""``Embedding``: a learned table of vectors looked up by integer id."""

from __future__ import annotations

from typing import Any

import numpy as np

from refqt import ops
from refqt.backend import check_generator
from refqt.nn import checks
from refqt.nn.module import Module, Parameter
from refqt.tensor import Tensor


class Embedding(Module):
    """Row lookup: ids (...) integer -> (..., embedding_dim).

    The weight (num_embeddings, embedding_dim) starts as ``N(0, 1)``; its
    gradient is ``g`` scattered back to the rows that were used (summed over
    repeats).
    """

    def __init__(
        self, num_embeddings: int, embedding_dim: int, *, rng: np.random.Generator, dtype: Any = np.float32
    ):
        super().__init__()
        self.num_embeddings = checks.int_at_least("Embedding", "num_embeddings", num_embeddings)
        self.embedding_dim = checks.int_at_least("Embedding", "embedding_dim", embedding_dim)
        check_generator("Embedding", rng)
        dtype = checks.float_dtype("Embedding", dtype)
        self.weight = Parameter(rng.standard_normal((num_embeddings, embedding_dim)).astype(dtype))

    def forward(self, ids: Any) -> Tensor:
        return ops.embedding(self.weight, ids)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"

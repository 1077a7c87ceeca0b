"""``Dropout`` with explicit randomness: the layer owns the Generator it draws masks from."""

from __future__ import annotations

import numpy as np

from refqt import ops
from refqt.backend import check_generator
from refqt.nn.module import Module
from refqt.tensor import Tensor


class Dropout(Module):
    """Inverted dropout: in training, zero each entry with probability ``p`` and
    scale the rest by ``1/(1 − p)``; in evaluation, the identity.

    Parameters
    ----------
    p : float
        Drop probability, in [0, 1).
    rng : numpy.random.Generator or None
        Where the masks come from (may be None only when ``p == 0``). Save
        ``rng.bit_generator.state`` with a checkpoint to resume bit for bit.
    """

    def __init__(self, p: float, rng: np.random.Generator | None):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        if p > 0.0 and rng is None:
            raise ValueError(f"Dropout(p={p}) needs a numpy Generator to draw its masks from")
        if rng is not None:
            check_generator(f"Dropout(p={p})", rng)
        self.p = p
        self.rng = rng

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        return ops.dropout(x, self.p, self.rng, training=True)

    def extra_repr(self) -> str:
        return f"p={self.p}"

"""``MLP``: a multilayer perceptron for flattened images."""

from __future__ import annotations

from typing import Any

import numpy as np

from refqt.nn import Flatten, Linear, Module, ReLU, Sequential
from refqt.tensor import Tensor


class MLP(Module):
    """``Flatten → (Linear → ReLU) × depth → Linear``.

    Shapes: x (N, ...) with Π(...) = ``in_features`` -> logits (N, classes).

    Parameters
    ----------
    in_features : int
        64 for the 8×8 digits, 784 for MNIST.
    hidden : int
        Width of every hidden layer.
    depth : int
        Number of hidden layers (the model has ``depth + 1`` Linear layers).
    classes : int
    rng : numpy.random.Generator
        Source of the initial weights.
    """

    def __init__(
        self,
        in_features: int = 64,
        hidden: int = 128,
        depth: int = 2,
        classes: int = 10,
        *,
        rng: np.random.Generator,
        dtype: Any = np.float32,
    ):
        super().__init__()
        layers: list[Module] = [Flatten()]
        width = in_features
        for _ in range(depth):
            layers += [Linear(width, hidden, rng=rng, dtype=dtype), ReLU()]
            width = hidden
        layers.append(Linear(width, classes, rng=rng, dtype=dtype))
        self.net = Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

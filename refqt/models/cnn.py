"""``SmallCNN``: two convolutions and two dense layers, for small images."""

from __future__ import annotations

from typing import Any

import numpy as np

from refqt.nn import Conv2d, Flatten, Linear, MaxPool2d, Module, ReLU, Sequential
from refqt.tensor import Tensor


class SmallCNN(Module):
    """``conv3×3 → ReLU → conv3×3 → ReLU → maxpool 2 → flatten → Linear → ReLU → Linear``.

    Shapes: x (N, C, S, S) -> logits (N, classes); S even (8 for the digits,
    28 for MNIST, 32 for CIFAR-10).

    Parameters
    ----------
    in_channels : int
    image_size : int
        Side S of the (square) input.
    channels : int
        Filters of both convolutions.
    hidden : int
        Width of the first dense layer.
    classes : int
    rng : numpy.random.Generator
        Source of the initial weights.
    """

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 8,
        channels: int = 16,
        hidden: int = 64,
        classes: int = 10,
        *,
        rng: np.random.Generator,
        dtype: Any = np.float32,
    ):
        super().__init__()
        if image_size % 2:
            raise ValueError(f"SmallCNN: image_size must be even, got {image_size}")
        side = image_size // 2
        self.features = Sequential(
            Conv2d(in_channels, channels, 3, padding=1, rng=rng, dtype=dtype),
            ReLU(),
            Conv2d(channels, channels, 3, padding=1, rng=rng, dtype=dtype),
            ReLU(),
            MaxPool2d(2),
        )
        self.classifier = Sequential(
            Flatten(),
            Linear(channels * side * side, hidden, rng=rng, dtype=dtype),
            ReLU(),
            Linear(hidden, classes, rng=rng, dtype=dtype),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))

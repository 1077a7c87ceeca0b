"""``PreActResNet``: a small pre-activation residual network.

He et al., 2016, "Identity Mappings in Deep Residual Networks".

Pre-activation puts batch norm and ReLU *before* each convolution, so the
skip path carries the block input through untouched::

    h   = ReLU(BN₁(x))
    out = conv₂(ReLU(BN₂(conv₁(h)))) + shortcut        shortcut = x, or conv1×1(h) when shape changes

The network: a 3×3 stem convolution, three stages of ``BasicBlock`` at widths
``w, 2w, 4w`` (stages 2 and 3 halve the resolution with stride 2), a final
BN-ReLU, global average pooling and a Linear classifier. ``depth = 6n + 2``
gives n blocks per stage (8 → 1, 14 → 2, 20 → 3, as in ResNet-20).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from refqt import ops
from refqt.nn import BatchNorm2d, Conv2d, GlobalAvgPool2d, Linear, Module, Sequential
from refqt.tensor import Tensor


class PreActBlock(Module):
    """BN → ReLU → conv3×3(stride) → BN → ReLU → conv3×3, plus the shortcut.

    Shapes: x (N, C_in, H, W) -> (N, C_out, ⌈H/stride⌉, ⌈W/stride⌉). The
    shortcut is the identity when stride is 1 and C_in = C_out, else a 1×1
    convolution (with the same stride) of the pre-activated input.
    """

    def __init__(
        self, in_channels: int, out_channels: int, stride: int = 1, *, rng: np.random.Generator, dtype: Any
    ):
        super().__init__()
        self.bn1 = BatchNorm2d(in_channels, dtype=dtype)
        self.conv1 = Conv2d(
            in_channels, out_channels, 3, stride=stride, padding=1, bias=False, rng=rng, dtype=dtype
        )
        self.bn2 = BatchNorm2d(out_channels, dtype=dtype)
        self.conv2 = Conv2d(out_channels, out_channels, 3, padding=1, bias=False, rng=rng, dtype=dtype)
        self.shortcut = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = Conv2d(
                in_channels, out_channels, 1, stride=stride, bias=False, rng=rng, dtype=dtype
            )

    def forward(self, x: Tensor) -> Tensor:
        h = ops.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(h)
        return self.conv2(ops.relu(self.bn2(self.conv1(h)))) + skip


class PreActResNet(Module):
    """Pre-activation ResNet for small images.

    Shapes: x (N, in_channels, H, W) -> logits (N, classes); any H, W ≥ 1
    (8×8 digits, 28×28 MNIST, 32×32 CIFAR-10).

    Parameters
    ----------
    depth : int
        ``6n + 2``: n blocks per stage (default 8, one block per stage).
    width : int
        Channels of the first stage; the others have 2× and 4×.
    in_channels, classes : int
    rng : numpy.random.Generator
        Initial weights.
    dtype : dtype or str
    """

    def __init__(
        self,
        depth: int = 8,
        width: int = 16,
        in_channels: int = 1,
        classes: int = 10,
        *,
        rng: np.random.Generator,
        dtype: Any = np.float32,
    ):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"PreActResNet: depth must be 6n + 2 with n >= 1 (8, 14, 20, ...), got {depth}")
        blocks = (depth - 2) // 6
        self.stem = Conv2d(in_channels, width, 3, padding=1, bias=False, rng=rng, dtype=dtype)
        layers: list[Module] = []
        channels = width
        for stage, stage_width in enumerate((width, 2 * width, 4 * width)):
            for b in range(blocks):
                stride = 2 if stage > 0 and b == 0 else 1
                layers.append(PreActBlock(channels, stage_width, stride, rng=rng, dtype=dtype))
                channels = stage_width
        self.stages = Sequential(*layers)
        self.final_bn = BatchNorm2d(channels, dtype=dtype)
        self.pool = GlobalAvgPool2d()
        self.fc = Linear(channels, classes, rng=rng, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        h = self.stages(self.stem(x))
        return self.fc(self.pool(ops.relu(self.final_bn(h))))

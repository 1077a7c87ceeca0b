"""Learning-rate schedules: small objects with ``lr_at(step)``.

A schedule does not touch the optimizer; the training loop applies it::

    schedule = WarmupSchedule(100, CosineSchedule(base_lr=0.1, total_steps=900))
    for step in range(1000):
        opt.lr = schedule.lr_at(step)
        ...  # forward, backward
        opt.step()

Steps count from 0. Schedules compose: :class:`WarmupSchedule` ramps up to
the wrapped schedule's first value, then hands over to it.
"""

from __future__ import annotations

import math


class Schedule:
    """A learning rate for every step."""

    def lr_at(self, step: int) -> float:
        raise NotImplementedError(f"{type(self).__name__} does not define lr_at()")


class ConstantSchedule(Schedule):
    """``lr_at(s) = lr``."""

    def __init__(self, lr: float):
        self.lr = lr

    def lr_at(self, step: int) -> float:
        return self.lr


class CosineSchedule(Schedule):
    """Cosine decay from ``base_lr`` to ``min_lr`` over ``total_steps``, then flat::

    lr_at(s) = min_lr + (base_lr − min_lr) · ½ (1 + cos(π · min(s, T) / T))
    """

    def __init__(self, base_lr: float, total_steps: int, min_lr: float = 0.0):
        if total_steps < 1:
            raise ValueError(f"CosineSchedule: total_steps must be >= 1, got {total_steps}")
        self.base_lr = base_lr
        self.total_steps = total_steps
        self.min_lr = min_lr

    def lr_at(self, step: int) -> float:
        progress = min(step, self.total_steps) / self.total_steps
        return self.min_lr + (self.base_lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


class StepSchedule(Schedule):
    """Multiply by ``gamma`` every ``step_size`` steps: ``lr_at(s) = base_lr · gamma^⌊s / step_size⌋``."""

    def __init__(self, base_lr: float, step_size: int, gamma: float = 0.1):
        if step_size < 1:
            raise ValueError(f"StepSchedule: step_size must be >= 1, got {step_size}")
        self.base_lr = base_lr
        self.step_size = step_size
        self.gamma = gamma

    def lr_at(self, step: int) -> float:
        return self.base_lr * self.gamma ** (step // self.step_size)


class WarmupSchedule(Schedule):
    """Linear warm-up for ``warmup_steps``, then ``after`` (shifted to start at 0)::

    lr_at(s) = after.lr_at(0) · (s + 1) / W     for s < W
    lr_at(s) = after.lr_at(s − W)               for s ≥ W
    """

    def __init__(self, warmup_steps: int, after: Schedule):
        if warmup_steps < 0:
            raise ValueError(f"WarmupSchedule: warmup_steps must be >= 0, got {warmup_steps}")
        self.warmup_steps = warmup_steps
        self.after = after

    def lr_at(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.after.lr_at(0) * (step + 1) / self.warmup_steps
        return self.after.lr_at(step - self.warmup_steps)

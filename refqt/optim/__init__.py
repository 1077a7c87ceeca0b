"""Optimizers and learning-rate schedules.

``SGD``, ``Adam`` and ``AdamW`` update parameters in ``step()`` from their
``.grad``; schedules give a learning rate per step, which the training loop
writes to ``opt.lr`` (see :mod:`refqt.optim.schedules`).
"""

from refqt.optim.adam import Adam, AdamW
from refqt.optim.optimizer import Optimizer
from refqt.optim.schedules import ConstantSchedule, CosineSchedule, Schedule, StepSchedule, WarmupSchedule
from refqt.optim.sgd import SGD

__all__ = [
    "SGD",
    "Adam",
    "AdamW",
    "ConstantSchedule",
    "CosineSchedule",
    "Optimizer",
    "Schedule",
    "StepSchedule",
    "WarmupSchedule",
]

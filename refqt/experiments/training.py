"""A plain classification training loop: one epoch, and evaluation.

Kept small on purpose: it is the loop a student would write, with the
quantization mode decided elsewhere (:func:`refqt.fqt.quantize`), so the same
loop trains exact, QAT and FQT models.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from refqt import ops
from refqt.autodiff import no_grad
from refqt.backend import Backend
from refqt.data import iterate_batches
from refqt.nn import Module
from refqt.optim.optimizer import Optimizer
from refqt.optim.schedules import Schedule
from refqt.stats.noise_monitor import NoiseMonitor
from refqt.tensor import Tensor


def classification_loss(model: Module, batch: tuple[Any, Any]) -> Tensor:
    """Mean cross-entropy of ``model`` on ``batch = (x, y)``."""
    x, y = batch
    return ops.cross_entropy(model(Tensor(x)), y)


def train_epoch(
    model: Module,
    optimizer: Optimizer,
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    rng: np.random.Generator,
    schedule: Schedule | None = None,
    step: int = 0,
    backend: Backend | None = None,
    noise: NoiseMonitor | None = None,
) -> dict[str, Any]:
    """One pass over ``(x, y)`` in shuffled mini-batches; returns loss, accuracy, step.

    ``rng`` shuffles the data and nothing else (the gradient quantizers have
    their own streams), so runs in different modes see the same batches.
    ``step`` counts optimizer steps across epochs for the ``schedule``.
    ``noise``: a :class:`~refqt.stats.noise_monitor.NoiseMonitor` that watches
    each step's backward (it logs ‖G‖/σ_q every ``noise.every`` steps).
    """
    model.train()
    total_loss = 0.0
    correct = 0
    seen = 0
    for xb, yb in iterate_batches(x, y, batch_size, rng=rng, shuffle=True, backend=backend):
        if schedule is not None:
            optimizer.lr = schedule.lr_at(step)
        logits = model(Tensor(xb))
        loss = ops.cross_entropy(logits, yb)
        optimizer.zero_grad()
        with noise.watch(step) if noise is not None else contextlib.nullcontext():
            loss.backward()
        optimizer.step()
        step += 1
        n = int(xb.shape[0])
        total_loss += loss.item() * n
        correct += int(np.sum(np.argmax(logits.numpy(), axis=1) == _host(yb)))
        seen += n
    return {"loss": total_loss / seen, "accuracy": correct / seen, "step": step}


def evaluate(
    model: Module, x: np.ndarray, y: np.ndarray, batch_size: int = 512, backend: Backend | None = None
) -> dict[str, float]:
    """Loss and accuracy of ``model`` (in eval mode) on ``(x, y)``."""
    model.eval()
    total_loss = 0.0
    correct = 0
    with no_grad():
        for xb, yb in iterate_batches(x, y, batch_size, shuffle=False, backend=backend):
            logits = model(Tensor(xb))
            total_loss += ops.cross_entropy(logits, yb).item() * int(xb.shape[0])
            correct += int(np.sum(np.argmax(logits.numpy(), axis=1) == _host(yb)))
    model.train()
    return {"loss": total_loss / len(y), "accuracy": correct / len(y)}


def _host(a: Any) -> np.ndarray:
    return a if isinstance(a, np.ndarray) else Tensor(a).numpy()

"""``Optimizer``: the loop over parameters that every update rule shares.

A subclass writes one method, :meth:`Optimizer.update`, that takes a
parameter's array, its gradient and the parameter's state (a dict of arrays
such as momentum buffers) and returns the new array. The base class runs it
for every parameter with a gradient, under ``no_grad``, on raw arrays of any
backend, and saves / restores the state for checkpoints.

A state entry is either an array of the parameter's shape (a moment, a
momentum buffer) or, for the names a subclass lists in ``counter_slots``, a
Python int (Adam's per-parameter step count); checkpoints store a counter as
a 0-d int64 array and give it back as an int.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from refqt.autodiff import no_grad
from refqt.backend import backend_of
from refqt.tensor import Tensor


class Optimizer:
    """Base of SGD and Adam.

    Parameters
    ----------
    params : iterable of Parameter
        What to update, e.g. ``model.parameters()``. The order matters for
        :meth:`state_dict` (state is saved by position).
    lr : float
        Learning rate. It is a plain attribute: a training loop with a
        schedule sets ``opt.lr = schedule.lr_at(step)`` before ``opt.step()``.

    Attributes
    ----------
    steps : int
        Number of :meth:`step` calls so far (parameters without a gradient
        at a step are not updated, so their own counts, where a rule keeps
        them, can be lower).
    state : list of dict
        Per parameter, the named arrays (and counters) of the update rule
        (empty until the parameter's first update).
    """

    hyperparameter_names: tuple[str, ...] = ("lr",)
    counter_slots: tuple[str, ...] = ()  # state entries that are ints, not arrays

    def __init__(self, params: Iterable[Tensor], lr: float):
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        for i, p in enumerate(self.params):
            if not isinstance(p, Tensor) or not p.requires_grad:
                raise TypeError(f"{type(self).__name__}: parameter {i} is not a Tensor that requires grad")
        if lr < 0:
            raise ValueError(f"{type(self).__name__}: learning rate must be >= 0, got {lr}")
        self.lr = float(lr)
        self.steps = 0
        self.state: list[dict[str, Any]] = [{} for _ in self.params]

    def zero_grad(self) -> None:
        """Set every parameter's ``.grad`` to None."""
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        """Apply one update to every parameter that has a gradient."""
        self.steps += 1
        with no_grad():
            for p, state in zip(self.params, self.state, strict=True):
                if p.grad is not None:
                    p.data = self.update(p.data, p.grad, state)

    def update(self, w: Any, g: Any, state: dict[str, Any]) -> Any:
        """New value of one parameter ``w`` from its gradient ``g`` (raw arrays)."""
        raise NotImplementedError(f"{type(self).__name__} does not define update()")

    # -- checkpoints -------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """``{"hyperparameters": {name: float, "steps": int}, "state": [{slot: ndarray}]}``.

        Hyperparameters are JSON-serialisable scalars; state arrays are host
        NumPy copies, one dict per parameter in order.
        """
        hyper: dict[str, Any] = {name: getattr(self, name) for name in self.hyperparameter_names}
        hyper["steps"] = self.steps
        slots = [{name: self._host_copy(name, a) for name, a in s.items()} for s in self.state]
        return {"hyperparameters": hyper, "state": slots}

    def _host_copy(self, slot: str, a: Any) -> np.ndarray:
        """A state entry as a host array: a counter as 0-d int64, an array copied to NumPy."""
        if slot in self.counter_slots:
            return np.asarray(a, dtype=np.int64)
        return np.array(backend_of(a).to_numpy(a), copy=True)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (arrays move to each parameter's backend)."""
        slots = state_dict["state"]
        name = type(self).__name__
        if len(slots) != len(self.params):
            raise ValueError(
                f"{name}.load_state_dict: state for {len(slots)} parameters, optimizer has {len(self.params)}"
            )
        for i, (p, s) in enumerate(zip(self.params, slots, strict=True)):
            for slot, a in s.items():
                if slot in self.counter_slots:
                    if np.ndim(a) != 0 or int(a) < 0:
                        raise ValueError(
                            f"{name}.load_state_dict: counter {slot!r} of parameter {i} must be one "
                            f"integer >= 0, got {np.asarray(a)!r}"
                        )
                elif tuple(a.shape) != p.shape:
                    raise ValueError(
                        f"{name}.load_state_dict: slot {slot!r} of parameter {i} has shape "
                        f"{tuple(a.shape)}, the parameter {p.shape}"
                    )
        hyper = state_dict["hyperparameters"]
        for h in self.hyperparameter_names:
            setattr(self, h, hyper[h])
        self.steps = int(hyper["steps"])
        self.state = [
            {slot: self._restore(slot, a, p) for slot, a in s.items()}
            for p, s in zip(self.params, slots, strict=True)
        ]

    def _restore(self, slot: str, a: Any, p: Tensor) -> Any:
        """A saved entry back as state: a counter as int, an array on ``p``'s backend and dtype."""
        if slot in self.counter_slots:
            return int(a)
        return p.backend.asarray(np.asarray(a), dtype=p.dtype)

"""``Adam`` (Kingma & Ba, 2015) and ``AdamW`` (Loshchilov & Hutter, 2019)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from refqt.backend import device_path, namespace
from refqt.gpu import optim as gpu_optim
from refqt.optim.optimizer import Optimizer
from refqt.tensor import Tensor


class Adam(Optimizer):
    """Adam with L2 weight decay added to the gradient.

    At step t (1, 2, ...) for weight ``w`` with gradient ``∇``::

        d = ∇ + λ w
        m ← β₁ m + (1 − β₁) d,      v ← β₂ v + (1 − β₂) d²     (m = v = 0 at first)
        m̂ = m / (1 − β₁ᵗ),          v̂ = v / (1 − β₂ᵗ)
        w ← w − lr · m̂ / (√v̂ + ε)

    State per parameter: ``"m"``, ``"v"`` and ``"step"``. **t counts the
    updates of this parameter**, as in PyTorch: a parameter that first gets a
    gradient at the optimizer's sixth step starts at t = 1 there, with the
    full bias correction of a first step. (Counting the optimizer's steps
    instead would under-correct it: its first move would be (1 − β₁)/(1 − β₁⁶)
    ≈ 0.22 of lr · sign(∇).)

    On the GPU path (:func:`refqt.backend.device_path`) the whole update of a
    parameter is one fused kernel (:mod:`refqt.gpu.optim`).
    """

    hyperparameter_names = ("lr", "beta1", "beta2", "eps", "weight_decay")
    counter_slots = ("step",)

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        super().__init__(params, lr)
        self.beta1, self.beta2 = float(betas[0]), float(betas[1])
        self.eps = float(eps)
        self.weight_decay = float(weight_decay)

    def adam_direction(self, g: Any, state: dict[str, Any]) -> Any:
        """Count this update, update the moments with ``g``; return ``m̂ / (√v̂ + ε)``."""
        xp = namespace(g)
        t = state.get("step", 0) + 1
        m = (1 - self.beta1) * g if "m" not in state else self.beta1 * state["m"] + (1 - self.beta1) * g
        v = (
            (1 - self.beta2) * g * g
            if "v" not in state
            else self.beta2 * state["v"] + (1 - self.beta2) * g * g
        )
        state["m"], state["v"], state["step"] = m, v, t
        m_hat = m / (1 - self.beta1**t)
        v_hat = v / (1 - self.beta2**t)
        return m_hat / (xp.sqrt(v_hat) + self.eps)

    def update(self, w: Any, g: Any, state: dict[str, Any]) -> Any:
        if device_path(w):
            betas = (self.beta1, self.beta2)
            return gpu_optim.adam_update(w, g, state, self.lr, betas, self.eps, self.weight_decay, 0.0)
        d = g + self.weight_decay * w if self.weight_decay else g
        return w - self.lr * self.adam_direction(d, state)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """As :meth:`Optimizer.load_state_dict`; state saved before per-parameter
        counts existed (moments but no ``"step"``) gets the optimizer's step
        count, which is what its bias correction used."""
        super().load_state_dict(state_dict)
        for s in self.state:
            if "m" in s and "step" not in s:
                s["step"] = self.steps


class AdamW(Adam):
    """Adam with *decoupled* weight decay: the decay never enters the moments::

        w ← w − lr · λ w                      (decay)
        w ← w − lr · m̂ / (√v̂ + ε)            (Adam step on the plain gradient ∇)

    Default λ = 0.01, as in PyTorch.
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.01,
    ):
        super().__init__(params, lr, betas, eps, weight_decay)

    def update(self, w: Any, g: Any, state: dict[str, Any]) -> Any:
        if device_path(w):
            betas, decay = (self.beta1, self.beta2), self.lr * self.weight_decay
            return gpu_optim.adam_update(w, g, state, self.lr, betas, self.eps, 0.0, decay)
        decayed = w - (self.lr * self.weight_decay) * w if self.weight_decay else w
        return decayed - self.lr * self.adam_direction(g, state)

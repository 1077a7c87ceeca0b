"""``Adam`` (Kingma & Ba, 2015) and ``AdamW`` (Loshchilov & Hutter, 2019)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from refqt.backend import namespace
from refqt.optim.optimizer import Optimizer
from refqt.tensor import Tensor


class Adam(Optimizer):
    """Adam with L2 weight decay added to the gradient.

    At step t (1, 2, ...) for weight ``w`` with gradient ``∇``::

        d = ∇ + λ w
        m ← β₁ m + (1 − β₁) d,      v ← β₂ v + (1 − β₂) d²     (m = v = 0 at first)
        m̂ = m / (1 − β₁ᵗ),          v̂ = v / (1 − β₂ᵗ)
        w ← w − lr · m̂ / (√v̂ + ε)

    State per parameter: ``"m"`` and ``"v"``. t is the optimizer's step count.
    """

    hyperparameter_names = ("lr", "beta1", "beta2", "eps", "weight_decay")

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
        """Update the moments with ``g``; return ``m̂ / (√v̂ + ε)``."""
        xp = namespace(g)
        m = (1 - self.beta1) * g if "m" not in state else self.beta1 * state["m"] + (1 - self.beta1) * g
        v = (
            (1 - self.beta2) * g * g
            if "v" not in state
            else self.beta2 * state["v"] + (1 - self.beta2) * g * g
        )
        state["m"], state["v"] = m, v
        m_hat = m / (1 - self.beta1**self.steps)
        v_hat = v / (1 - self.beta2**self.steps)
        return m_hat / (xp.sqrt(v_hat) + self.eps)

    def update(self, w: Any, g: Any, state: dict[str, Any]) -> Any:
        d = g + self.weight_decay * w if self.weight_decay else g
        return w - self.lr * self.adam_direction(d, state)


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
        decayed = w - (self.lr * self.weight_decay) * w if self.weight_decay else w
        return decayed - self.lr * self.adam_direction(g, state)

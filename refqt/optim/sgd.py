"""``SGD``: stochastic gradient descent with optional (Nesterov) momentum and L2 decay."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from refqt.backend import device_path
from refqt.gpu import optim as gpu_optim
from refqt.optim.optimizer import Optimizer
from refqt.tensor import Tensor


class SGD(Optimizer):
    """Gradient descent, PyTorch's formulation (no dampening).

    For weight ``w`` with gradient ``∇``, momentum μ, weight decay λ::

        d = ∇ + λ w
        b = d                 on the first step, else  b ← μ b + d
        w ← w − lr · (d + μ b)   if nesterov
        w ← w − lr · b           otherwise (μ = 0: plain w ← w − lr · d)

    State per parameter: ``"momentum"`` (b), when μ > 0.

    On the GPU path (:func:`refqt.backend.device_path`) the whole update of a
    parameter is one fused kernel (:mod:`refqt.gpu.optim`).
    """

    hyperparameter_names = ("lr", "momentum", "nesterov", "weight_decay")

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ):
        super().__init__(params, lr)
        if nesterov and momentum <= 0:
            raise ValueError("SGD: nesterov=True needs momentum > 0")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self.weight_decay = float(weight_decay)

    def update(self, w: Any, g: Any, state: dict[str, Any]) -> Any:
        if device_path(w):
            return gpu_optim.sgd_update(w, g, state, self.lr, self.momentum, self.nesterov, self.weight_decay)
        d = g + self.weight_decay * w if self.weight_decay else g
        if self.momentum:
            b = d if "momentum" not in state else self.momentum * state["momentum"] + d
            state["momentum"] = b
            d = d + self.momentum * b if self.nesterov else b
        return w - self.lr * d

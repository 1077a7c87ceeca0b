"""Optimizer updates on the GPU: one fused kernel per parameter instead of four or five.

The maths is that of :class:`refqt.optim.SGD` and :class:`refqt.optim.Adam` /
``AdamW`` (read their docstrings); the kernels are in :mod:`refqt.gpu.fused`.
The CPU path builds the update from separate array ops (``d = ∇ + λw``,
``b = μb + d``, ``w − lr·b``: a launch and a pass over memory each on a GPU);
here each parameter's whole update is one kernel reading ``w, ∇`` and the
state, writing the new ``w`` and state.

State starts as zeros on the device (``b = μ·0 + d = d`` on the first step, as
the CPU path's ``b = d``; likewise Adam's moments), so the kernel is the same
on every step. Bias corrections ``1 − βᵗ`` come from the per-parameter step
count, a host int: **no host synchronisation**.
"""

from __future__ import annotations

from typing import Any

from refqt.backend import backend_of
from refqt.gpu.fused import ADAM, SGD_MOMENTUM, SGD_NESTEROV, SGD_PLAIN


def sgd_update(
    w: Any, g: Any, state: dict[str, Any], lr: float, momentum: float, nesterov: bool, weight_decay: float
) -> Any:
    """New ``w`` after one SGD step (updates ``state["momentum"]`` when momentum > 0)."""
    native = backend_of(w).native
    if not momentum:
        return SGD_PLAIN(native, w, g, lr, weight_decay)
    b = state.get("momentum")
    if b is None:
        b = native.zeros_like(w)
    kernel = SGD_NESTEROV if nesterov else SGD_MOMENTUM
    w_new, state["momentum"] = kernel(native, w, g, b, lr, momentum, weight_decay)
    return w_new


def adam_update(
    w: Any,
    g: Any,
    state: dict[str, Any],
    lr: float,
    betas: tuple[float, float],
    eps: float,
    l2: float,
    decay: float,
) -> Any:
    """New ``w`` after one Adam step; ``l2`` is Adam's weight decay, ``decay = lr·λ`` AdamW's.

    Updates ``state["m"]``, ``state["v"]`` and the host count ``state["step"]``.
    """
    native = backend_of(w).native
    b1, b2 = betas
    t = state.get("step", 0) + 1
    m = state["m"] if "m" in state else native.zeros_like(w)
    v = state["v"] if "v" in state else native.zeros_like(w)
    c1, c2 = 1 - b1**t, 1 - b2**t
    scalars = (lr, b1, 1 - b1, b2, 1 - b2, c1, c2, eps, l2, decay)
    w_new, state["m"], state["v"] = ADAM(native, w, g, m, v, *scalars)
    state["step"] = t
    return w_new

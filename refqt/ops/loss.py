"""Cross-entropy of logits against integer class targets, as one fused op.

For a row of logits ``z`` (C classes) and target class ``t``, with label
smoothing ε the target distribution is ``q = (1 − ε)·onehot(t) + ε/C`` and the
loss is ``ℓ = −Σ_c q_c log softmax(z)_c``. Since ``Σ_c q_c = 1`` its gradient
is simply ``∂ℓ/∂z = softmax(z) − q``: the fused backward never differentiates
through the log-softmax step by step.

Positions whose target equals ``ignore_index`` contribute nothing: the mean
runs over the other positions only, and if every position is ignored the
loss is 0 with a zero gradient (no 0/0).

**Host synchronisation** (on a GPU): the check that every target lies in
``[0, C)``, kept so that a bad label is a clear ``IndexError`` rather than a
silent wrong loss, reads the targets on the host. Targets passed as a NumPy
array (labels from a host data loader) are checked there, before they are
copied to the device: no sync. Targets already on the device cost one sync
per call. Outside the quantizers it is the only one in a ResNet training step.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from refqt.autodiff import Context, Function
from refqt.backend import namespace
from refqt.ops.shape import host_or_backend_array
from refqt.tensor import Tensor, as_tensor

REDUCTIONS = ("mean", "sum", "none")


class CrossEntropy(Function):
    """ℓᵢ = −Σ_c qᵢc log softmax(zᵢ)_c, weighted by wᵢ = [tᵢ ≠ ignore_index].

    Shapes: logits (..., C), target (...) -> () for "mean" / "sum", (...) for "none".
    out = Σᵢ wᵢℓᵢ / max(Σᵢ wᵢ, 1) ("mean"), Σᵢ wᵢℓᵢ ("sum") or wᵢℓᵢ ("none").
    g_z = sᵢ · wᵢ · (softmax(zᵢ) − qᵢ) with sᵢ = g / max(Σ w, 1), g, or gᵢ.
    """

    @staticmethod
    def forward(
        ctx: Context,
        logits: Any,
        target: Any,
        label_smoothing: float,
        ignore_index: int | None,
        reduction: str,
    ) -> Any:
        xp = namespace(logits)
        n_classes = logits.shape[-1]
        keep = xp.ones(target.shape, dtype=xp.bool) if ignore_index is None else target != ignore_index
        safe_target = xp.where(keep, target, xp.zeros((), dtype=target.dtype))
        classes = xp.arange(n_classes, dtype=target.dtype)
        onehot = xp.astype(classes == safe_target[..., None], logits.dtype)
        q = (1 - label_smoothing) * onehot + label_smoothing / n_classes
        z = logits - xp.max(logits, axis=-1, keepdims=True)
        log_p = z - xp.log(xp.sum(xp.exp(z), axis=-1, keepdims=True))
        w = xp.astype(keep, logits.dtype)
        per_position = -xp.sum(q * log_p, axis=-1) * w
        count = xp.maximum(xp.sum(w), xp.ones((), dtype=w.dtype))
        ctx.save_for_backward(log_p, q, w, count, reduction)
        if reduction == "none":
            return per_position
        total = xp.sum(per_position)
        return total / count if reduction == "mean" else total

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        log_p, q, w, count, reduction = ctx.saved
        xp = namespace(g)
        scale = g / count if reduction == "mean" else g
        return ((xp.exp(log_p) - q) * (w * scale)[..., None],)


def cross_entropy(
    logits: Tensor,
    target: Any,
    label_smoothing: float = 0.0,
    ignore_index: int | None = None,
    reduction: str = "mean",
) -> Tensor:
    """Softmax cross-entropy of ``logits`` (N, C) or (N, L, C) against class ids ``target`` (N,) or (N, L).

    Parameters
    ----------
    logits : Tensor
        Unnormalised scores, classes on the last axis.
    target : integer array (NumPy or the logits' backend), list or Tensor
        Class index per position, in ``[0, C)`` or equal to ``ignore_index``.
    label_smoothing : float
        ε in [0, 1]: the target distribution is (1 − ε)·onehot + ε/C.
    ignore_index : int, optional
        Target value whose positions are left out of the loss and the mean.
    reduction : {"mean", "sum", "none"}
        Mean over non-ignored positions, their sum, or the per-position losses
        (0 at ignored positions).
    """
    logits = as_tensor(logits)
    host_target = target if isinstance(target, np.ndarray) else None
    target = host_or_backend_array("cross_entropy", target, logits.backend)
    xp = namespace(target)
    if logits.ndim not in (2, 3):
        raise ValueError(f"cross_entropy: logits must be (N, C) or (N, L, C), got shape {logits.shape}")
    if tuple(target.shape) != logits.shape[:-1]:
        raise ValueError(
            f"cross_entropy: target of shape {tuple(target.shape)} does not match logits {logits.shape}; "
            f"expected {logits.shape[:-1]}"
        )
    if not xp.isdtype(target.dtype, "integral"):
        raise TypeError(f"cross_entropy: target must hold integer class indices, got dtype {target.dtype}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"cross_entropy: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must lie in [0, 1], got {label_smoothing}")
    n_classes = logits.shape[-1]
    if n_classes == 0:
        raise ValueError(f"cross_entropy: logits of shape {logits.shape} have 0 classes; expected at least 1")
    # The range check reads the targets on the host: from the NumPy array when they came as one
    # (no device sync), else from the device array (one sync).
    checked, xc = (host_target, np) if host_target is not None else (target, xp)
    bad = (checked < 0) | (checked >= n_classes)
    if ignore_index is not None:
        bad = bad & (checked != ignore_index)
    if bool(xc.any(bad)):
        raise IndexError(
            f"cross_entropy: target values must lie in [0, {n_classes}) (or equal ignore_index="
            f"{ignore_index}); got min {int(xc.min(checked))}, max {int(xc.max(checked))}"
        )
    return CrossEntropy.apply(
        logits, target=target, label_smoothing=label_smoothing, ignore_index=ignore_index, reduction=reduction
    )

"""Normalisation ops: batch norm and layer norm, each with a fused VJP.

Both normalise ``x`` to zero mean and unit variance over some axes, then scale
and shift per feature::

    x̂ = (x − μ) / √(σ² + ε),      out = γ · x̂ + β

*Batch norm* takes μ, σ² per channel over the batch (and spatial) axes;
*layer norm* takes them per example over the last axis. Writing the backward
by hand (instead of recording the dozen elementwise ops the forward is made
of) keeps the tape short and the gradient formula on one line.

Where :func:`refqt.backend.device_path` says so, the same maths runs as a few
reductions and one fused kernel each way (:mod:`refqt.gpu.norm`).
"""

from __future__ import annotations

from typing import Any

from refqt.autodiff import Context, Function
from refqt.backend import device_path, namespace
from refqt.gpu import norm as gpu_norm
from refqt.tensor import Tensor, as_tensor


def _channel_axes(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Axes batch norm reduces over: all but the channel axis 1."""
    return (0,) if len(shape) == 2 else (0, 2, 3)


def _per_channel(v: Any, ndim: int) -> Any:
    """A (C,) array shaped to broadcast against (N, C) or (N, C, H, W)."""
    return namespace(v).reshape(v, (1, -1) if ndim == 2 else (1, -1, 1, 1))


class BatchNormTrain(Function):
    """Batch norm with batch statistics (training mode).

    Shapes: x (N, C) or (N, C, H, W); γ, β (C,). Statistics per channel over
    the m = N (or N·H·W) values of that channel, with the *biased* variance::

        μ = (1/m) Σ x,   σ² = (1/m) Σ (x − μ)²,   r = 1/√(σ² + ε)
        x̂ = (x − μ) r,  out = γ x̂ + β

    VJP (sums over the same m values; μ and σ² depend on x)::

        g_β = Σ g,   g_γ = Σ g · x̂
        g_x = (γ r / m) · (m · g − Σ g − x̂ · Σ(g · x̂))

    When ``running_mean`` / ``running_var`` are arrays, the forward also
    updates them in place (see :func:`batch_norm`); they are not inputs of
    the gradient.
    """

    @staticmethod
    def forward(
        ctx: Context,
        x: Any,
        gamma: Any,
        beta: Any,
        eps: float,
        running_mean: Any | None,
        running_var: Any | None,
        momentum: float,
    ) -> Any:
        xp = namespace(x)
        axes = _channel_axes(tuple(x.shape))
        if device_path(x):
            g_b, b_b = _per_channel(gamma, x.ndim), _per_channel(beta, x.ndim)
            out, xhat, mu, var, r = gpu_norm.normalize(x, axes, g_b, b_b, eps)
        else:
            mu = xp.mean(x, axis=axes, keepdims=True)
            centred = x - mu
            var = xp.mean(centred * centred, axis=axes, keepdims=True)
            r = 1 / xp.sqrt(var + eps)
        if running_mean is not None and running_var is not None:
            m = x.size // x.shape[1]
            running_mean[...] = (1 - momentum) * running_mean + momentum * xp.reshape(mu, (-1,))
            running_var[...] = (1 - momentum) * running_var + (momentum * m / (m - 1)) * xp.reshape(
                var, (-1,)
            )
        if device_path(x):
            ctx.save_for_backward(xhat, r, gamma)
            return out
        xhat = centred * r
        ctx.save_for_backward(xhat, r, gamma)
        return _per_channel(gamma, x.ndim) * xhat + _per_channel(beta, x.ndim)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        xhat, r, gamma = ctx.saved
        xp = namespace(g)
        axes = _channel_axes(tuple(g.shape))
        m = xhat.size // gamma.shape[0]
        if device_path(g):
            scale = _per_channel(gamma, g.ndim) * r / m
            g_x, sum_g, sum_gx = gpu_norm.grad_input(g, xhat, scale, axes, m)
            need = ctx.needs_input_grad
            return (
                g_x if need[0] else None,
                xp.reshape(sum_gx, (-1,)) if need[1] else None,
                xp.reshape(sum_g, (-1,)) if need[2] else None,
            )
        sum_g = xp.sum(g, axis=axes, keepdims=True)
        sum_gx = xp.sum(g * xhat, axis=axes, keepdims=True)
        g_x = None
        if ctx.needs_input_grad[0]:
            g_x = (_per_channel(gamma, g.ndim) * r / m) * (m * g - sum_g - xhat * sum_gx)
        g_gamma = xp.reshape(sum_gx, (-1,)) if ctx.needs_input_grad[1] else None
        g_beta = xp.reshape(sum_g, (-1,)) if ctx.needs_input_grad[2] else None
        return g_x, g_gamma, g_beta


class BatchNormEval(Function):
    """Batch norm with fixed statistics μ, σ² (evaluation mode).

    ``r = 1/√(σ² + ε)``, ``x̂ = (x − μ) r``, ``out = γ x̂ + β``. Now μ and σ²
    are constants, so the map is affine in x::

        g_x = g · γ r,   g_γ = Σ g · x̂,   g_β = Σ g
    """

    @staticmethod
    def forward(ctx: Context, x: Any, gamma: Any, beta: Any, mean: Any, var: Any, eps: float) -> Any:
        xp = namespace(x)
        r = 1 / xp.sqrt(_per_channel(var, x.ndim) + eps)
        xhat = (x - _per_channel(mean, x.ndim)) * r
        ctx.save_for_backward(xhat, r, gamma)
        return _per_channel(gamma, x.ndim) * xhat + _per_channel(beta, x.ndim)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        xhat, r, gamma = ctx.saved
        xp = namespace(g)
        axes = _channel_axes(tuple(g.shape))
        g_x = g * (_per_channel(gamma, g.ndim) * r) if ctx.needs_input_grad[0] else None
        g_gamma = xp.sum(g * xhat, axis=axes) if ctx.needs_input_grad[1] else None
        g_beta = xp.sum(g, axis=axes) if ctx.needs_input_grad[2] else None
        return g_x, g_gamma, g_beta


class LayerNorm(Function):
    """Layer norm over the last axis.

    Shapes: x (..., D); γ, β (D,). Per row of D values::

        μ = (1/D) Σ x,   σ² = (1/D) Σ (x − μ)²,   r = 1/√(σ² + ε)
        x̂ = (x − μ) r,  out = γ x̂ + β

    VJP, with ĝ = g · γ and sums over the last axis (g_γ, g_β sum over the
    leading axes instead)::

        g_x = (r / D) · (D · ĝ − Σ ĝ − x̂ · Σ(ĝ · x̂))
        g_γ = Σ g · x̂,   g_β = Σ g
    """

    @staticmethod
    def forward(ctx: Context, x: Any, gamma: Any, beta: Any, eps: float) -> Any:
        if device_path(x):
            out, xhat, _, _, r = gpu_norm.normalize(x, (-1,), gamma, beta, eps)
            ctx.save_for_backward(xhat, r, gamma)
            return out
        xp = namespace(x)
        mu = xp.mean(x, axis=-1, keepdims=True)
        centred = x - mu
        var = xp.mean(centred * centred, axis=-1, keepdims=True)
        r = 1 / xp.sqrt(var + eps)
        xhat = centred * r
        ctx.save_for_backward(xhat, r, gamma)
        return gamma * xhat + beta

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        xhat, r, gamma = ctx.saved
        xp = namespace(g)
        d = gamma.shape[0]
        lead = tuple(range(g.ndim - 1))
        g_x = None
        if ctx.needs_input_grad[0] and device_path(g):
            g_x = gpu_norm.grad_input(g * gamma, xhat, r / d, (-1,), d)[0]
        elif ctx.needs_input_grad[0]:
            gh = g * gamma
            sum_gh = xp.sum(gh, axis=-1, keepdims=True)
            sum_ghx = xp.sum(gh * xhat, axis=-1, keepdims=True)
            g_x = (r / d) * (d * gh - sum_gh - xhat * sum_ghx)
        g_gamma = xp.sum(g * xhat, axis=lead) if ctx.needs_input_grad[1] else None
        g_beta = xp.sum(g, axis=lead) if ctx.needs_input_grad[2] else None
        return g_x, g_gamma, g_beta


def _check_batch_norm(x: Tensor, gamma: Tensor, beta: Tensor, running_mean: Any, running_var: Any) -> None:
    if x.ndim not in (2, 4):
        raise ValueError(f"BatchNorm: expected input (N, C) or (N, C, H, W), got shape {x.shape}")
    c = x.shape[1]
    if c == 0:
        raise ValueError(f"batch_norm: input of shape {x.shape} has 0 channels; expected at least 1")
    if gamma.shape != (c,) or beta.shape != (c,):
        raise ValueError(
            f"BatchNorm: input of shape {x.shape} has {c} channels but gamma has shape {gamma.shape} "
            f"and beta {beta.shape}; expected ({c},)"
        )
    for name, stat in (("running_mean", running_mean), ("running_var", running_var)):
        if stat is not None and tuple(stat.shape) != (c,):
            raise ValueError(
                f"batch_norm: input of shape {x.shape} has {c} channels but {name} has shape "
                f"{tuple(stat.shape)}; expected ({c},)"
            )


def batch_norm(
    x: Tensor,
    *,
    gamma: Tensor,
    beta: Tensor,
    running_mean: Any | None = None,
    running_var: Any | None = None,
    training: bool,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Batch normalisation of (N, C) or (N, C, H, W) input, per channel.

    **Everything after** ``x`` **is keyword-only.** PyTorch's
    ``F.batch_norm(input, running_mean, running_var, weight, bias, training,
    momentum, eps)`` puts the four (C,) arrays in another order; with
    positions a call written for one would run on the other and overwrite γ
    and β as running statistics. Here such a call raises ``TypeError``::

        ops.batch_norm(x, gamma=g, beta=b, running_mean=rm, running_var=rv, training=True)

    Parameters
    ----------
    x : Tensor
        (N, C) or (N, C, H, W).
    gamma, beta : Tensor
        (C,) scale and shift.
    running_mean, running_var : array (C,) or None
        Raw arrays (same backend and dtype as ``x``) holding the running
        statistics. **In training mode they are updated in place**::

            running_mean ← (1 − momentum) · running_mean + momentum · μ
            running_var  ← (1 − momentum) · running_var  + momentum · σ² · m/(m − 1)

        (the unbiased variance, as PyTorch does, while the normalisation itself
        uses the biased σ²). ``None`` (the default) tracks nothing in
        training; in evaluation mode both are required.
    training : bool
        True: normalise with the batch's own statistics. False: with the
        running statistics.
    momentum, eps : float
        Weight of the new batch in the running averages (PyTorch's meaning,
        default 0.1); variance floor.

    Returns
    -------
    Tensor
        Same shape as ``x``.

    Raises
    ------
    ValueError
        For a shape that is not (N, C) / (N, C, H, W), no channels (C = 0),
        γ, β or a running statistic of the wrong size, or training on a
        single value per channel (e.g. (1, C)), where the batch variance is
        zero and the output meaningless.
    """
    x = as_tensor(x)
    gamma, beta = as_tensor(gamma, like=x), as_tensor(beta, like=x)
    _check_batch_norm(x, gamma, beta, running_mean, running_var)
    if not training:
        if running_mean is None or running_var is None:
            raise ValueError("BatchNorm: evaluation mode needs running_mean and running_var")
        return BatchNormEval.apply(x, gamma, beta, mean=running_mean, var=running_var, eps=eps)
    m = x.size // x.shape[1]
    if m < 2:
        raise ValueError(
            f"BatchNorm: expected more than 1 value per channel when training, got input of shape {x.shape}"
        )
    return BatchNormTrain.apply(
        x, gamma, beta, eps=eps, running_mean=running_mean, running_var=running_var, momentum=momentum
    )


def layer_norm(x: Tensor, gamma: Tensor, beta: Tensor, eps: float = 1e-5) -> Tensor:
    """Layer normalisation over the last axis.

    Shapes: x (..., D), gamma and beta (D,) -> (..., D), with D ≥ 1 (ValueError
    for a 0-d x or D = 0). See :class:`LayerNorm` for the math.
    """
    x = as_tensor(x)
    gamma, beta = as_tensor(gamma, like=x), as_tensor(beta, like=x)
    if x.ndim == 0:
        raise ValueError(f"layer_norm: needs at least one axis to normalise over, got x of shape {x.shape}")
    d = x.shape[-1]
    if d == 0:
        raise ValueError(f"layer_norm: cannot normalise over 0 elements (x {x.shape}, axis -1)")
    if gamma.shape != (d,) or beta.shape != (d,):
        raise ValueError(
            f"layer_norm: input of shape {x.shape} normalises over its last axis, so gamma and beta "
            f"must have shape ({d},); got {gamma.shape} and {beta.shape}"
        )
    return LayerNorm.apply(x, gamma, beta, eps=eps)

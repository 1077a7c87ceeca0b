"""Fused elementwise kernels: one CUDA snippet for CuPy's ``ElementwiseKernel`` and its NumPy twin.

An update like SGD with momentum is four or five elementwise ops; on a GPU
each is a kernel launch and a pass over memory. Here each such chain is one
:class:`Fused`: the CUDA C body (``T`` is the arrays' float type, inputs and
outputs are per-element variables, per-channel arrays broadcast as in NumPy)
and a NumPy function computing the same formula. On CuPy the body is compiled
once into an ``ElementwiseKernel``; on NumPy (under
:func:`refqt.backend.emulate_device`) the twin runs. ``tests/test_gpu_ops.py``
compiles every body with ``nvcc`` -- for the device (``-ptx``) and, as a
``__host__ __device__`` function, for the CPU -- and checks it against its
twin on random inputs, so the CUDA arithmetic is tested without a GPU.

None of these kernels synchronises with the host; their scalars (learning
rate, bias corrections, counts) are host numbers the caller already has.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Fused:
    """One fused elementwise chain.

    Attributes
    ----------
    name : str
        Kernel name (a C identifier).
    in_params, out_params : str
        CuPy's parameter lists, e.g. ``"T w, T g, T lr"`` and ``"T w_out"``.
    operation : str
        CUDA C body assigning every output from the inputs.
    mirror : callable
        The NumPy twin: takes the inputs in order, returns the output (or a
        tuple of outputs, in order).
    """

    name: str
    in_params: str
    out_params: str
    operation: str
    mirror: Callable[..., Any]

    def __call__(self, native: ModuleType, *args: Any) -> Any:
        """Run on ``native``'s arrays: the CuPy kernel, or the NumPy twin."""
        if native.__name__ == "numpy":
            return self.mirror(*args)
        # CuPy gives every ``T`` argument one dtype and raises on a mix; NumPy (the CPU path and
        # the twin) promotes. Promote the arrays first so both paths accept the same inputs.
        arrays = [a for a in args if isinstance(a, native.ndarray)]
        common = native.result_type(*arrays)
        args = tuple(a.astype(common, copy=False) if isinstance(a, native.ndarray) else a for a in args)
        kernel = _KERNELS.get(self.name)
        if kernel is None:
            kernel = native.ElementwiseKernel(self.in_params, self.out_params, self.operation, self.name)
            _KERNELS[self.name] = kernel
        return kernel(*args)


_KERNELS: dict[str, Any] = {}


# -- optimizers (refqt/optim) ---------------------------------------------------------------------

SGD_PLAIN = Fused(
    "refqt_sgd_plain",
    "T w, T g, T lr, T wd",
    "T w_out",
    "w_out = w - lr * (g + wd * w);  // w <- w - lr (grad + wd w)",
    lambda w, g, lr, wd: w - lr * (g + wd * w),
)


def _sgd_momentum(w: Any, g: Any, b: Any, lr: float, mu: float, wd: float) -> tuple[Any, Any]:
    d = g + wd * w
    b_out = mu * b + d
    return w - lr * b_out, b_out


def _sgd_nesterov(w: Any, g: Any, b: Any, lr: float, mu: float, wd: float) -> tuple[Any, Any]:
    d = g + wd * w
    b_out = mu * b + d
    return w - lr * (d + mu * b_out), b_out


SGD_MOMENTUM = Fused(
    "refqt_sgd_momentum",
    "T w, T g, T b, T lr, T mu, T wd",
    "T w_out, T b_out",
    """
    T d = g + wd * w;       // d = grad + wd w
    b_out = mu * b + d;     // b <- mu b + d   (b = 0 before the first step gives b = d)
    w_out = w - lr * b_out; // w <- w - lr b
    """,
    _sgd_momentum,
)

SGD_NESTEROV = Fused(
    "refqt_sgd_nesterov",
    "T w, T g, T b, T lr, T mu, T wd",
    "T w_out, T b_out",
    """
    T d = g + wd * w;                  // d = grad + wd w
    b_out = mu * b + d;                // b <- mu b + d
    w_out = w - lr * (d + mu * b_out); // w <- w - lr (d + mu b)
    """,
    _sgd_nesterov,
)


def _adam(w: Any, g: Any, m: Any, v: Any, *scalars: float) -> tuple[Any, Any, Any]:
    lr, b1, a1, b2, a2, c1, c2, eps, wd, decay = scalars
    d = g + wd * w
    m_out = b1 * m + a1 * d
    v_out = b2 * v + a2 * (d * d)
    return (w - decay * w) - lr * (m_out / c1) / (np.sqrt(v_out / c2) + eps), m_out, v_out


ADAM = Fused(
    "refqt_adam",
    "T w, T g, T m, T v, T lr, T b1, T a1, T b2, T a2, T c1, T c2, T eps, T wd, T decay",
    "T w_out, T m_out, T v_out",
    """
    T d = g + wd * w;                // Adam's L2 term (wd = 0 for AdamW)
    m_out = b1 * m + a1 * d;         // m <- b1 m + (1 - b1) d      (a1 = 1 - b1)
    v_out = b2 * v + a2 * (d * d);   // v <- b2 v + (1 - b2) d^2     (a2 = 1 - b2)
    // AdamW's decoupled decay (decay = lr wd, 0 for Adam), then w - lr mhat / (sqrtvhat + eps),
    // with mhat = m / c1, vhat = v / c2, c = 1 - beta^t
    w_out = (w - decay * w) - lr * (m_out / c1) / (sqrt(v_out / c2) + eps);
    """,
    _adam,
)


# -- normalisation (refqt/ops/norm.py) ------------------------------------------------------------

NORM_FORWARD = Fused(
    "refqt_norm_forward",
    "T x, T mu, T r, T gamma, T beta",
    "T xhat, T y",
    """
    xhat = (x - mu) * r;     // xhat = (x - mu) / sqrt(var + eps)
    y = gamma * xhat + beta; // out = gamma xhat + beta
    """,
    lambda x, mu, r, gamma, beta: ((x - mu) * r, gamma * ((x - mu) * r) + beta),
)

NORM_GRAD_INPUT = Fused(
    "refqt_norm_grad_input",
    "T g, T xhat, T scale, T s1, T s2, T m",
    "T gx",
    "gx = scale * (m * g - s1 - xhat * s2);  // g_x = (gamma r / m) (m g - sum g - xhat sum g xhat)",
    lambda g, xhat, scale, s1, s2, m: scale * (m * g - s1 - xhat * s2),
)

ALL = (SGD_PLAIN, SGD_MOMENTUM, SGD_NESTEROV, ADAM, NORM_FORWARD, NORM_GRAD_INPUT)
"""Every fused kernel, for the tests that compile them."""

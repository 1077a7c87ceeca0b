"""Checking VJPs numerically: finite differences and the adjoint test.

For ``out = f(x₁, …, xₖ)`` and a random cotangent ``u``, backward gives
``gᵢ = Jᵢᵀ u``. Two checks compare that with finite differences of ``f``:

* :func:`check_vjp` -- the full gradient of the scalar ``⟨u, f(x)⟩`` by central
  differences, element by element (small inputs, float64).
* :func:`adjoint_test` -- for random directions ``vᵢ``,
  ``⟨u, J v⟩ ≈ Σᵢ ⟨Jᵢᵀu, vᵢ⟩`` with ``J v`` from one central difference. Cheap
  for any size and strong: a wrong VJP fails it for almost every ``u, v``.

Both work on any backend and raise ``AssertionError`` naming the input that
failed, so they serve both tests and users checking their own ops.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from refqt.backend import backend_of
from refqt.nn.module import Parameter
from refqt.tensor import Tensor


def _host(a: Any) -> np.ndarray:
    return backend_of(a).to_numpy(a).astype(np.float64)


def _run(fn: Callable[..., Tensor], arrays: Sequence[Any]) -> np.ndarray:
    return _host(fn(*[Tensor(a) for a in arrays]).data)


def vjp(fn: Callable[..., Tensor], arrays: Sequence[Any], u: np.ndarray) -> list[np.ndarray]:
    """Backward's ``Jᵢᵀ u`` for every input, as host float64 arrays."""
    xs = [Tensor(a, requires_grad=True) for a in arrays]
    out = fn(*xs)
    b = out.backend
    out.backward(b.asarray(u.astype(np.float64), dtype=out.dtype))
    return [np.zeros(x.shape) if x.grad is None else _host(x.grad) for x in xs]


def check_vjp(
    fn: Callable[..., Tensor],
    arrays: Sequence[Any],
    rng: np.random.Generator,
    eps: float = 1e-6,
    rtol: float = 1e-5,
    atol: float = 1e-7,
) -> None:
    """Compare every input's VJP with central differences of ``⟨u, f(x)⟩``.

    ``arrays`` should be float64 for the default tolerances.
    """
    out = _run(fn, arrays)
    u = rng.standard_normal(out.shape)
    grads = vjp(fn, arrays, u)
    for i, a in enumerate(arrays):
        b = backend_of(a)
        host = _host(a)
        num = np.zeros_like(host)
        for j in range(host.size):
            plus, minus = host.copy(), host.copy()
            plus.flat[j] += eps
            minus.flat[j] -= eps
            args_p = list(arrays)
            args_m = list(arrays)
            args_p[i] = b.asarray(plus, dtype=a.dtype)
            args_m[i] = b.asarray(minus, dtype=a.dtype)
            num.flat[j] = np.sum(u * (_run(fn, args_p) - _run(fn, args_m))) / (2 * eps)
        if not np.allclose(grads[i], num, rtol=rtol, atol=atol):
            worst = np.max(np.abs(grads[i] - num))
            raise AssertionError(
                f"VJP of input {i} (shape {host.shape}) differs from finite differences "
                f"by up to {worst:.3g}\nbackward:\n{grads[i]}\nnumerical:\n{num}"
            )


def adjoint_test(
    fn: Callable[..., Tensor],
    arrays: Sequence[Any],
    rng: np.random.Generator,
    eps: float = 1e-6,
    rtol: float = 1e-5,
) -> tuple[float, float]:
    """Check ``⟨u, J v⟩ ≈ Σᵢ⟨Jᵢᵀu, vᵢ⟩``; return both sides.

    ``J v`` comes from a central difference along random directions ``vᵢ``
    (one for every input), ``Jᵀu`` from backward.
    """
    out = _run(fn, arrays)
    u = rng.standard_normal(out.shape)
    vs = [rng.standard_normal(tuple(a.shape)) for a in arrays]
    plus = [backend_of(a).asarray(_host(a) + eps * v, dtype=a.dtype) for a, v in zip(arrays, vs, strict=True)]
    minus = [
        backend_of(a).asarray(_host(a) - eps * v, dtype=a.dtype) for a, v in zip(arrays, vs, strict=True)
    ]
    jv = (_run(fn, plus) - _run(fn, minus)) / (2 * eps)
    lhs = float(np.sum(u * jv))
    rhs = float(sum(np.sum(g * v) for g, v in zip(vjp(fn, arrays, u), vs, strict=True)))
    scale = max(abs(lhs), abs(rhs), float(np.sqrt(np.sum(jv * jv))), 1e-12)
    if abs(lhs - rhs) > rtol * scale:
        raise AssertionError(f"adjoint test failed: <u, J v> = {lhs!r} but <J^T u, v> = {rhs!r}")
    return lhs, rhs


def module_as_function(module: Any, n_inputs: int, **kwargs: Any) -> tuple[Callable[..., Tensor], list[Any]]:
    """``(fn, param_arrays)`` so a layer's parameter gradients can be checked like input gradients.

    ``fn(*inputs, *params)`` calls ``module(*inputs, **kwargs)`` with its
    parameters replaced by the given tensors (set with ``object.__setattr__``,
    bypassing registration, so the module's bookkeeping is untouched), and
    ``param_arrays`` holds the current parameter values in the same order::

        fn, params = module_as_function(layer, 1)
        check_vjp(fn, [x, *params], rng)
    """
    slots = [
        (m, k) for _, m in module.named_modules() for k, v in vars(m).items() if isinstance(v, Parameter)
    ]
    arrays = [getattr(m, k).data for m, k in slots]

    def fn(*tensors: Tensor) -> Tensor:
        for (m, k), w in zip(slots, tensors[n_inputs:], strict=True):
            object.__setattr__(m, k, w)
        return module(*tensors[:n_inputs], **kwargs)

    return fn, arrays

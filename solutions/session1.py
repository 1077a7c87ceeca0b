"""Solutions, session 1 (reverse-mode autodiff): exercises 1, 2 and 3 of docs/teachers.md.

Run ``python solutions/session1.py`` to print every answer; ``tests/test_solutions.py``
runs the same functions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from refqt import Tensor, autodiff
from refqt.autodiff import Context, Function
from refqt.backend import get_backend, namespace
from refqt.gradcheck import adjoint_test, check_vjp
from refqt.tensor import as_tensor


# -- exercise 1: a softplus op from array-API functions only -------------------------------
class Softplus(Function):
    """out = log(1 + eˣ), written stably as max(x, 0) + log1p(e^{−|x|}).

    g_x = g · σ(x), with σ(x) = eˣ / (1 + eˣ) evaluated as e^{min(x,0)} / (1 + e^{−|x|}),
    which never overflows.
    """

    @staticmethod
    def forward(ctx: Context, x: Any) -> Any:
        xp = namespace(x)
        e = xp.exp(-xp.abs(x))  # in (0, 1]: no overflow for any x
        ctx.save_for_backward(x, e)
        return xp.where(x > 0, x, xp.zeros_like(x)) + xp.log1p(e)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        x, e = ctx.saved
        xp = namespace(x)
        sigmoid = xp.where(x >= 0, 1 / (1 + e), e / (1 + e))
        return (g * sigmoid,)


def softplus(x: Tensor) -> Tensor:
    return Softplus.apply(as_tensor(x))


def exercise_1(backends: tuple[str, ...] = ("numpy", "array_api_strict")) -> dict[str, tuple[float, float]]:
    """Gradient check and adjoint test of ``softplus`` on each backend; the two adjoint sides.

    Also checks the forward against log(1 + eˣ) where that is safe, and that
    x = ±800 (where eˣ overflows) gives 0 and 800 with gradients 0 and 1.
    """
    rng = np.random.default_rng(0)
    out = {}
    for name in backends:
        b = get_backend(name)
        host = rng.standard_normal((3, 4)) * 3
        x = b.asarray(host, dtype=b.dtype("float64"))
        np.testing.assert_allclose(softplus(Tensor(x)).numpy(), np.log(1 + np.exp(host)), rtol=1e-12)
        check_vjp(softplus, [x], rng)
        out[name] = adjoint_test(softplus, [x], rng)
    t = Tensor(np.array([-800.0, 800.0]), requires_grad=True)
    y = softplus(t)
    y.sum().backward()
    assert np.array_equal(y.numpy(), [0.0, 800.0]) and np.array_equal(t.grad, [0.0, 1.0])
    return out


# -- exercise 2: overwriting instead of accumulating ---------------------------------------
def exercise_2() -> dict[str, Any]:
    """What ``y = a·a`` gets when gradients are overwritten instead of added.

    The tape holds one ``Mul`` node whose *two* inputs are the same tensor a.
    Its backward returns (g·a, g·a), one cotangent per input; the true
    derivative 2a is their sum. An engine that writes ``grads[a] = gx`` for
    each input in turn keeps only the last one: a, half the truth.
    ``tests/test_autodiff.py`` catches it in
    ``test_reused_tensor_gets_summed_gradient`` (a tensor used twice in one
    expression); if the bug is in the final write to ``.grad`` instead,
    ``test_grad_accumulates_across_backward_calls`` fails (two ``backward``
    calls must add).

    Returned: the correct gradient, the one the broken rule gives (replayed
    here by hand from the node's own backward), and the input.
    """
    a_host = np.array([1.5, -2.0, 3.0])
    a = Tensor(a_host, requires_grad=True)
    y = a * a
    node = y.node
    g = np.ones_like(a_host)
    cotangents = node.fn.backward(node.ctx, g)  # one per input: (g·a, g·a)
    overwritten: dict[int, Any] = {}
    for x, gx in zip(node.inputs, cotangents, strict=True):
        overwritten[id(x)] = gx  # the bug: "=" where backward has "+="
    y.backward(g)
    return {"a": a_host, "correct": a.grad, "overwritten": overwritten[id(a)]}


# -- exercise 3: the tape of (x @ w).relu().sum() -----------------------------------------
HAND_WRITTEN_TAPE = """\
%0 = input (2, 3) float64
%1 = param (3, 4) float64 requires_grad
%2 = MatMul(%0, %1) (2, 4) float64
%3 = ReLU(%2) (2, 4) float64
%4 = Sum(%3) () float64"""


def exercise_3() -> tuple[str, str]:
    """(the tape written by hand before running, the tape ``format_tape`` prints).

    x is data (no gradient), w a parameter; three ops ran, in this order, and
    each line names its inputs by number. ``.sum()`` reduces to shape ().
    """
    x = Tensor(np.ones((2, 3)))
    w = Tensor(np.ones((3, 4)), requires_grad=True)
    loss = (x @ w).relu().sum()
    return HAND_WRITTEN_TAPE, autodiff.format_tape(loss)


if __name__ == "__main__":
    for backend, (lhs, rhs) in exercise_1().items():
        print(f"exercise 1, {backend}: gradient check passed; adjoint test <u, Jv> = {lhs:.12f}, "
              f"<J^T u, v> = {rhs:.12f}")
    r = exercise_2()
    print(f"exercise 2: a = {r['a']}, correct 2a = {r['correct']}, overwritten = {r['overwritten']}")
    mine, printed = exercise_3()
    verdict = "matches the hand-written tape" if mine == printed else "differs from the hand-written tape!"
    print(f"exercise 3:\n{printed}\n({verdict})")

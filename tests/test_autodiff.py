"""The tape: accumulation, freeing, no_grad, shape checks, long chains."""

import numpy as np
import pytest

from refqt.autodiff import Context, Function, format_tape, no_grad
from refqt.gradcheck import adjoint_test, check_vjp
from refqt.tensor import Tensor


def test_reused_tensor_gets_summed_gradient(backend):
    x = Tensor(backend.asarray(np.array([1.0, 2.0, 3.0])), requires_grad=True)
    (x * x + x).backward(backend.asarray(np.ones(3)))
    np.testing.assert_allclose(backend.to_numpy(x.grad), 2 * np.array([1.0, 2.0, 3.0]) + 1)


def test_grad_accumulates_across_backward_calls():
    x = Tensor(np.array([2.0]), requires_grad=True)
    (x * 3.0).backward()
    (x * 3.0).backward()
    np.testing.assert_allclose(x.grad, [6.0])


def test_tape_is_freed_unless_retained():
    x = Tensor(np.array([2.0]), requires_grad=True)
    y = (x * x) * 1.0
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad, [8.0])
    with pytest.raises(RuntimeError, match="freed"):
        y.backward()


def test_inputs_without_grad_are_skipped():
    calls = []

    class Spy(Function):
        @staticmethod
        def forward(ctx, a, b):
            return a * b

        @staticmethod
        def backward(ctx, g):
            calls.append(ctx.needs_input_grad)
            return g, None

    a = Tensor(np.ones(2), requires_grad=True)
    b = Tensor(np.ones(2))
    Spy.apply(a, b).backward(np.ones(2))
    assert calls == [(True, False)]
    assert b.grad is None


def test_no_grad_records_nothing():
    x = Tensor(np.ones(3), requires_grad=True)
    with no_grad():
        y = x * 2.0 + 1.0
    assert y.node is None and not y.requires_grad


def test_wrong_gradient_shape_is_caught():
    class BadShape(Function):
        @staticmethod
        def forward(ctx: Context, a):
            return a * 2

        @staticmethod
        def backward(ctx: Context, g):
            return (g[:1],)

    x = Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"BadShape.backward gave a gradient of shape \(1,\)"):
        BadShape.apply(x).backward(np.ones(3))


def test_wrong_vjp_is_caught_by_both_checkers(rng):
    class WrongSquare(Function):
        """out = x², with the VJP missing its factor 2."""

        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved
            return (g * x,)

    x = rng.standard_normal((3, 2))
    with pytest.raises(AssertionError, match="finite differences"):
        check_vjp(WrongSquare.apply, [x], rng)
    with pytest.raises(AssertionError, match="adjoint test failed"):
        adjoint_test(WrongSquare.apply, [x], rng)


def test_long_chain_runs_without_recursion():
    x = Tensor(np.array([1.0]), requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.backward()
    np.testing.assert_allclose(x.grad, [1.0001**10_000], rtol=1e-9)


def test_format_tape_lists_ops_in_order():
    x = Tensor(np.ones((2, 3)), requires_grad=True, name="x")
    y = (x * 2.0 + 1.0).relu()
    text = format_tape(y)
    lines = text.splitlines()
    assert lines[0].startswith("%0 = param x (2, 3)")
    assert [
        ln.split("=")[1].split("(")[0].strip() for ln in lines if "Mul" in ln or "Add" in ln or "ReLU" in ln
    ] == [
        "Mul",
        "Add",
        "ReLU",
    ]


def test_scalar_root_needed_for_implicit_cotangent():
    x = Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(RuntimeError, match="explicit cotangent"):
        (x * 2.0).backward()

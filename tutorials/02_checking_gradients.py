# %% [markdown]
# # Checking gradients
#
# Every backward rule in refqt is checked numerically. `refqt.gradcheck` offers the
# two checks the test suite uses, and you can use them on your own ops:
#
# * `check_vjp(fn, arrays, rng)` compares the full gradient of $\langle u, f(x)\rangle$
#   with central differences, element by element (small float64 inputs);
# * `adjoint_test(fn, arrays, rng)` checks $\langle u, J v\rangle \approx
#   \langle J^\top u, v\rangle$ for random directions $u, v$: one finite difference,
#   any size, and a wrong VJP fails it for almost every $u, v$.
#
# Then we write a new op with a deliberate mistake and watch both checks catch it.

# %%
from typing import Any

import numpy as np

from refqt import Tensor, ops
from refqt.autodiff import Context, Function
from refqt.gradcheck import adjoint_test, check_vjp
from refqt.tensor import as_tensor

rng = np.random.default_rng(0)
a = rng.standard_normal((5, 4))
b = rng.standard_normal((4, 3))

check_vjp(lambda x, y: ops.matmul(x, y).tanh(), [a, b], rng)
lhs, rhs = adjoint_test(lambda x, y: ops.matmul(x, y).tanh(), [a, b], rng)
print(f"<u, J v> = {lhs:.10f}   <J^T u, v> = {rhs:.10f}")
assert abs(lhs - rhs) < 1e-6 * max(1.0, abs(lhs)), f"adjoint test: lhs {lhs!r} vs rhs {rhs!r}"

# %% [markdown]
# ## A new op: softplus
#
# $\mathrm{softplus}(x) = \log(1 + e^x)$, with derivative the logistic sigmoid
# $\sigma(x)$, so the VJP is $g_x = g \cdot \sigma(x)$. The op contract: `forward`
# and `backward` are static methods on raw arrays, `backward` returns one entry per
# tensor input, and users call a plain function.


# %%
class Softplus(Function):
    """out = log(1 + eˣ);  g_x = g · σ(x)."""

    @staticmethod
    def forward(ctx: Context, x: Any) -> Any:
        ctx.save_for_backward(x)
        return np.logaddexp(0.0, x)  # stable log(1 + eˣ); NumPy only, fine for a tutorial

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        (x,) = ctx.saved
        return (g / (1.0 + np.exp(-x)),)


def softplus(x: Any) -> Tensor:
    return Softplus.apply(as_tensor(x))


x = rng.standard_normal((3, 4))
check_vjp(softplus, [x], rng)
adjoint_test(softplus, [x], rng)
print("softplus passes both checks")

# %% [markdown]
# ## The same op with a classic mistake
#
# Using $e^{x}$ instead of $e^{-x}$ in the sigmoid is an easy slip. Both checks
# raise `AssertionError` naming what failed.


# %%
class BadSoftplus(Softplus):
    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        (x,) = ctx.saved
        return (g / (1.0 + np.exp(x)),)  # wrong sign


def bad_softplus(x: Any) -> Tensor:
    return BadSoftplus.apply(as_tensor(x))


caught = []
for check in (check_vjp, adjoint_test):
    try:
        check(bad_softplus, [x], rng)
    except AssertionError as err:
        caught.append(check.__name__)
        print(f"{check.__name__}: {str(err).splitlines()[0]}")
assert caught == ["check_vjp", "adjoint_test"], f"caught: {caught}"

# %% [markdown]
# ## Why random directions are enough
#
# If the VJP is wrong, $J^\top u \ne \tilde J^\top u$ for some $u$, and then
# $\langle J^\top u - \tilde J^\top u, v\rangle$ is a non-zero linear function of
# the Gaussian $v$: it is zero with probability 0. Over many random $(u, v)$ pairs the
# bad op fails every time:

# %%
fails = 0
for _ in range(20):
    try:
        adjoint_test(bad_softplus, [x], rng)
    except AssertionError:
        fails += 1
print(f"bad op failed {fails} of 20 adjoint tests")
assert fails == 20, f"{fails} of 20 checks failed"

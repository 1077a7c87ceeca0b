# %% [markdown]
# # Tensors and the tape
#
# A `refqt.Tensor` is an array plus what reverse-mode differentiation needs: the
# op that produced it. Every op on tensors is recorded on a *tape*; `backward()`
# replays the tape in reverse, calling each op's VJP (vector-Jacobian product) and
# adding the results into the leaves' `.grad`.
#
# You will see: the recorded program, the gradients of a tiny two-layer network
# checked against hand-derived formulas, a tensor used twice (gradients add), and
# `no_grad`.

# %%
import numpy as np

from refqt import Tensor, no_grad, ops
from refqt.autodiff import format_tape

rng = np.random.default_rng(0)
x = Tensor(rng.standard_normal((4, 3)), name="x")
w = Tensor(rng.standard_normal((3, 2)), requires_grad=True, name="w")
b = Tensor(np.zeros(2), requires_grad=True, name="b")

h = (x @ w + b).relu()
loss = (h * h).mean()
print(loss)

# %% [markdown]
# The tape holds one line per op, in the order they ran. Leaves are `input`
# (no gradient wanted) or `param`.

# %%
print(format_tape(loss))

# %% [markdown]
# `loss.backward()` fills `w.grad` and `b.grad`. For this network the chain rule by
# hand gives, with `z = x w + b`, `h = relu(z)` and `loss = mean(h²)` over the
# `N·D = 8` entries:
#
# $$ g_h = \frac{2h}{ND}, \qquad g_z = g_h \odot [z > 0], \qquad
#    g_w = x^\top g_z, \qquad g_b = \textstyle\sum_i g_{z,i}. $$

# %%
loss.backward()
z = x.numpy() @ w.numpy() + b.numpy()
h_np = np.maximum(z, 0)
g_z = 2 * h_np / h_np.size * (z > 0)
assert np.allclose(w.grad, x.numpy().T @ g_z)
assert np.allclose(b.grad, g_z.sum(axis=0))
print("w.grad =\n", w.grad)

# %% [markdown]
# ## A tensor used twice
#
# `y = a·a + a` uses `a` three times; its gradient is the *sum* of the three
# contributions, `2a + 1`. (An early version of tinygrad overwrote instead of adding:
# refqt's tests keep that bug away.)

# %%
a = Tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
(a * a + a).sum().backward()
print(a.grad)
assert np.allclose(a.grad, 2 * a.numpy() + 1)

# %% [markdown]
# ## Gradients accumulate; `no_grad` records nothing
#
# A second `backward` adds into `.grad` (reset it with `zero_grad`, as optimizers
# do). Inside `no_grad()` nothing is recorded, which is how evaluation runs.

# %%
(a * 2.0).sum().backward()
assert np.allclose(a.grad, 2 * a.numpy() + 1 + 2)
a.zero_grad()

with no_grad():
    y = a * a
print(y.op, y.node)
assert y.node is None

# %% [markdown]
# ## Every op is a `Function`
#
# `ops.matmul`, `ops.relu`, ... are plain functions around `Function` subclasses
# whose `forward(ctx, *arrays)` and `backward(ctx, g)` work on raw arrays, with the
# VJP written right beside the forward. The tape records which class produced each
# tensor:

# %%
print(ops.matmul(x, w).op, ops.relu(x @ w).op, loss.op)

# %% [markdown]
# (An op whose inputs need no gradient records nothing: `ops.relu(x).op` is `None`.)

# %%
assert ops.relu(x).op is None

"""Every primitive op in one table, checked the same way on every backend.

Each :class:`OpCase` names an op, how to call it on tensors, a hypothesis
strategy for its inputs (shapes with broadcasting and size-1 axes, kept
small) and a plain NumPy reference. Three tests run over the whole table and
every backend:

* the forward matches the NumPy reference (float64 tightly; float32 keeps its
  dtype and matches loosely),
* :func:`refqt.gradcheck.check_vjp`: the VJP of every input against central
  differences, in float64,
* :func:`refqt.gradcheck.adjoint_test`: ``⟨u, J v⟩ = ⟨Jᵀu, v⟩``.

Values are drawn from a seeded NumPy generator (the seed drawn by
hypothesis), so they are continuous: no ties for ``max``, no inputs at the kink
of ``relu``. Ops with special behaviour there have their own tests below.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refqt import ops
from refqt.autodiff import Context, Function
from refqt.backend import Backend, get_backend
from refqt.gradcheck import adjoint_test, check_vjp
from refqt.tensor import Tensor

Example = tuple[list[np.ndarray], dict[str, Any]]  # (differentiable inputs, other parameters)


@dataclass(frozen=True)
class OpCase:
    """One row of the table.

    fn(*tensors, **params) runs the op; draw(data) gives (arrays, params);
    ref(*arrays, **params) is the NumPy reference forward.
    """

    name: str
    fn: Callable[..., Tensor]
    draw: Callable[[st.DataObject], Example]
    ref: Callable[..., np.ndarray]
    float32_values: bool = True  # False where float32 draws different random numbers (dropout)


# -- input strategies -----------------------------------------------------------------
SIDE = 3


def values(data: st.DataObject, shape: tuple[int, ...], kind: str = "any") -> np.ndarray:
    """float64 values of ``shape``: ``any`` normal, ``positive`` ≥ 0.5, ``nonzero`` |x| ≥ 0.3."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    x = rng.standard_normal(shape)
    if kind == "positive":
        x = 0.5 + np.abs(x)
    elif kind == "nonzero":
        x = np.where(x < 0, -0.3, 0.3) + x
    return np.asarray(x, dtype=np.float64)  # an array even for shape ()


def a_shape(data: st.DataObject, min_dims: int = 0, max_dims: int = 3) -> tuple[int, ...]:
    return data.draw(hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=1, max_side=SIDE))


def broadcast_shapes(data: st.DataObject, n: int) -> tuple[tuple[int, ...], ...]:
    return data.draw(hnp.mutually_broadcastable_shapes(num_shapes=n, max_dims=3, max_side=SIDE)).input_shapes


def unary(kind: str = "any") -> Callable[[st.DataObject], Example]:
    def draw(data: st.DataObject) -> Example:
        return [values(data, a_shape(data), kind)], {}

    return draw


def binary(kind_b: str = "any") -> Callable[[st.DataObject], Example]:
    def draw(data: st.DataObject) -> Example:
        sa, sb = broadcast_shapes(data, 2)
        return [values(data, sa), values(data, sb, kind_b)], {}

    return draw


def draw_where(data: st.DataObject) -> Example:
    sc, sa, sb = broadcast_shapes(data, 3)
    return [values(data, sa), values(data, sb)], {"cond": np.asarray(values(data, sc) > 0)}


def draw_pow(data: st.DataObject) -> Example:
    p = data.draw(st.sampled_from([2, 3, 0.5, -1.5]))
    return [values(data, a_shape(data), "positive")], {"p": p}


def draw_axis(data: st.DataObject, ndim: int) -> int | tuple[int, ...] | None:
    options = [st.none(), st.just(())]
    if ndim:
        options.append(st.integers(-ndim, ndim - 1))
        options.append(
            st.lists(st.integers(-ndim, ndim - 1), max_size=ndim).map(lambda a: _distinct(a, ndim))
        )
    return data.draw(st.one_of(options), label="axis")


def _distinct(axes: list[int], ndim: int) -> tuple[int, ...]:
    """``axes`` without entries that name the same axis twice (3 and -1 of a 4-d array)."""
    seen: dict[int, int] = {}
    for a in axes:
        seen.setdefault(a % ndim, a)
    return tuple(seen.values())


def draw_reduce(data: st.DataObject) -> Example:
    shape = a_shape(data)
    return [values(data, shape)], {"axis": draw_axis(data, len(shape)), "keepdims": data.draw(st.booleans())}


def draw_var(data: st.DataObject) -> Example:
    [x], params = draw_reduce(data)
    axis = params["axis"]
    axes = range(x.ndim) if axis is None else (axis,) if isinstance(axis, int) else axis
    count = math.prod(x.shape[a] for a in axes)
    params["correction"] = data.draw(st.sampled_from([0, 1])) if count >= 2 else 0
    return [x], params


def draw_reshape(data: st.DataObject) -> Example:
    shape = a_shape(data)
    size = math.prod(shape)
    divisor = data.draw(st.sampled_from([d for d in range(1, size + 1) if size % d == 0]))
    target = data.draw(st.sampled_from([(-1,), (size,), shape[::-1], (1, *shape, 1), (divisor, -1), ()]))
    if target == () and size != 1:
        target = (size, 1)
    return [values(data, shape)], {"shape": target}


def draw_permute(data: st.DataObject) -> Example:
    shape = a_shape(data)
    return [values(data, shape)], {"axes": tuple(data.draw(st.permutations(range(len(shape)))))}


def draw_swapaxes(data: st.DataObject) -> Example:
    shape = a_shape(data, min_dims=1)
    a, b = (data.draw(st.integers(-len(shape), len(shape) - 1)) for _ in range(2))
    return [values(data, shape)], {"a": a, "b": b}


def draw_index_entry(data: st.DataObject, n: int, allow_int: bool) -> Any:
    entries = [
        st.just(slice(None)),
        st.builds(
            slice,
            st.integers(-n - 1, n + 1) | st.none(),
            st.integers(-n - 1, n + 1) | st.none(),
            st.sampled_from([None, 1, 2, -1, -2]),
        ),
    ]
    if allow_int:
        entries.append(st.integers(-n, n - 1))
    return data.draw(st.one_of(entries))


def draw_getitem(data: st.DataObject) -> Example:
    shape = a_shape(data, min_dims=1)
    array_axis = data.draw(st.none() | st.integers(0, len(shape) - 1), label="array axis")
    index: list[Any] = []
    for axis, n in enumerate(shape):
        if axis == array_axis:
            ids_shape = data.draw(st.sampled_from([(4,), (2, 2), (1,), ()]))
            index.append(data.draw(hnp.arrays(np.int64, ids_shape, elements=st.integers(-n, n - 1))))
        else:
            index.append(draw_index_entry(data, n, allow_int=array_axis is None))
    if data.draw(st.booleans(), label="new axis"):
        index.insert(data.draw(st.integers(0, len(index))), None)
    if data.draw(st.booleans(), label="ellipsis") and array_axis != 0:
        index[0] = Ellipsis
    return [values(data, shape)], {"index": tuple(index)}


def draw_concat(data: st.DataObject) -> Example:
    shape = a_shape(data, min_dims=1)
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    count = data.draw(st.integers(1, 3))
    arrays = []
    for _ in range(count):
        s = list(shape)
        s[axis] = data.draw(st.integers(1, SIDE))
        arrays.append(values(data, tuple(s)))
    return arrays, {"axis": axis}


def draw_stack(data: st.DataObject) -> Example:
    shape = a_shape(data, max_dims=2)
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    return [values(data, shape) for _ in range(data.draw(st.integers(1, 3)))], {"axis": axis}


def draw_broadcast_to(data: st.DataObject) -> Example:
    shape = a_shape(data, max_dims=2)
    lead = a_shape(data, max_dims=2)
    target = (*lead, *(data.draw(st.integers(1, SIDE)) if n == 1 else n for n in shape))
    return [values(data, shape)], {"shape": target}


def draw_matmul(data: st.DataObject) -> Example:
    shapes = data.draw(
        hnp.mutually_broadcastable_shapes(signature="(m?,n),(n,p?)->(m?,p?)", max_dims=2, max_side=SIDE)
    ).input_shapes
    return [values(data, s) for s in shapes], {}


def draw_linear(data: st.DataObject) -> Example:
    batch = a_shape(data, max_dims=2)
    n_in, n_out = data.draw(st.integers(1, SIDE)), data.draw(st.integers(1, SIDE))
    arrays = [values(data, (*batch, n_in)), values(data, (n_out, n_in))]
    if data.draw(st.booleans(), label="bias"):
        arrays.append(values(data, (n_out,)))
    return arrays, {}


def draw_softmax(data: st.DataObject) -> Example:
    shape = a_shape(data, min_dims=1)
    return [values(data, shape)], {"axis": data.draw(st.integers(-len(shape), len(shape) - 1))}


def draw_cross_entropy(data: st.DataObject) -> Example:
    lead = data.draw(st.sampled_from([(), (2,), (3,)]))
    n, c = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 4))
    target = data.draw(hnp.arrays(np.int64, (n, *lead), elements=st.integers(0, c - 1)))
    ignore_index = data.draw(st.sampled_from([None, -100, 0]))
    if ignore_index is not None:
        dropped = data.draw(hnp.arrays(np.bool_, target.shape))
        target = np.where(dropped, ignore_index, target)
    params = {
        "target": target,
        "label_smoothing": data.draw(st.sampled_from([0.0, 0.1])),
        "ignore_index": ignore_index,
        "reduction": data.draw(st.sampled_from(["mean", "sum", "none"])),
    }
    return [values(data, (n, *lead, c))], params


def draw_embedding(data: st.DataObject) -> Example:
    vocab, dim = data.draw(st.integers(1, 4)), data.draw(st.integers(1, SIDE))
    ids = data.draw(hnp.arrays(np.int64, a_shape(data, max_dims=2), elements=st.integers(0, vocab - 1)))
    return [values(data, (vocab, dim))], {"ids": ids}


def draw_dropout(data: st.DataObject) -> Example:
    params = {"p": data.draw(st.sampled_from([0.0, 0.3, 0.5])), "seed": data.draw(st.integers(0, 2**16))}
    return [values(data, a_shape(data))], params


def draw_attention(data: st.DataObject) -> Example:
    batch = a_shape(data, max_dims=2)
    causal = data.draw(st.booleans())
    lq, lk, d, dv = (data.draw(st.integers(1, SIDE)) for _ in range(4))
    lk = lq if causal else lk  # causal attention needs Lq == Lk
    mask_shape = data.draw(st.sampled_from([None, (lq, lk), (1, lk), (*batch, lq, 1)]))
    mask = None if mask_shape is None else data.draw(hnp.arrays(np.bool_, mask_shape))
    arrays = [values(data, (*batch, lq, d)), values(data, (*batch, lk, d)), values(data, (*batch, lk, dv))]
    return arrays, {"mask": mask, "causal": causal}


# -- NumPy references ------------------------------------------------------------------
def np_sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def np_gelu_tanh(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


def np_gelu_exact(x: np.ndarray) -> np.ndarray:
    """x Φ(x) with Φ from the standard library's erf (an independent erf)."""
    cdf = np.vectorize(lambda v: 0.5 * (1 + math.erf(v / math.sqrt(2))), otypes=[np.float64])
    return x * cdf(x) if x.size else x


def np_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


def np_getitem(x: np.ndarray, index: tuple[Any, ...]) -> np.ndarray:
    return x[index]


def np_linear(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    return np.einsum("...i,oi->...o", x, w) + (0 if b is None else b)


def np_cross_entropy(
    logits: np.ndarray, target: np.ndarray, label_smoothing: float, ignore_index: int | None, reduction: str
) -> np.ndarray:
    c = logits.shape[-1]
    keep = np.ones(target.shape, bool) if ignore_index is None else target != ignore_index
    log_p = np.log(np_softmax(logits, axis=-1))
    losses = np.zeros(target.shape)
    for pos in np.ndindex(target.shape):
        if keep[pos]:
            q = np.full(c, label_smoothing / c)
            q[target[pos]] += 1 - label_smoothing
            losses[pos] = -np.dot(q, log_p[pos])
    if reduction == "none":
        return losses
    return losses.sum() / max(keep.sum(), 1) if reduction == "mean" else losses.sum()


def np_dropout(x: np.ndarray, p: float, seed: int) -> np.ndarray:
    if p == 0:
        return x
    keep = np.random.default_rng(seed).random(x.shape) >= p
    return x * keep / (1 - p)


def np_attention(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None, causal: bool
) -> np.ndarray:
    lq, lk = q.shape[-2], k.shape[-2]
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    allowed = np.ones(scores.shape, bool)
    if mask is not None:
        allowed = allowed & mask
    if causal:
        allowed = allowed & (np.arange(lk)[None, :] <= np.arange(lq)[:, None])
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True)) * allowed
    none_allowed = ~allowed.any(axis=-1, keepdims=True)
    weights = np.where(none_allowed, 1.0, weights)  # a fully masked query averages every key
    return (weights / weights.sum(axis=-1, keepdims=True)) @ v


# -- the table ---------------------------------------------------------------------------
TABLE = [
    # elementwise (refqt/ops/arith.py)
    OpCase("add", ops.add, binary(), np.add),
    OpCase("sub", ops.sub, binary(), np.subtract),
    OpCase("mul", ops.mul, binary(), np.multiply),
    OpCase("div", ops.div, binary("nonzero"), np.divide),
    OpCase("neg", ops.neg, unary(), np.negative),
    OpCase("pow", ops.pow, draw_pow, lambda x, p: np.power(x, p)),
    OpCase("exp", ops.exp, unary(), np.exp),
    OpCase("log", ops.log, unary("positive"), np.log),
    OpCase("sqrt", ops.sqrt, unary("positive"), np.sqrt),
    OpCase("tanh", ops.tanh, unary(), np.tanh),
    OpCase("sigmoid", ops.sigmoid, unary(), np_sigmoid),
    OpCase("relu", ops.relu, unary("nonzero"), lambda x: np.maximum(x, 0)),
    OpCase("gelu", ops.gelu, unary(), np_gelu_exact),
    OpCase("gelu_tanh", lambda x: ops.gelu(x, approximate="tanh"), unary(), np_gelu_tanh),
    OpCase(
        "where", lambda a, b, cond: ops.where(cond, a, b), draw_where, lambda a, b, cond: np.where(cond, a, b)
    ),
    # reductions
    OpCase("sum", ops.sum, draw_reduce, np.sum),
    OpCase("mean", ops.mean, draw_reduce, np.mean),
    OpCase("max", ops.max, draw_reduce, np.max),
    OpCase(
        "var",
        ops.var,
        draw_var,
        lambda x, axis, keepdims, correction: np.var(x, axis=axis, keepdims=keepdims, ddof=correction),
    ),
    # shapes
    # np.reshape(x, shape=...) needs NumPy 2.1; pass the shape by position
    OpCase("reshape", ops.reshape, draw_reshape, lambda x, shape: np.reshape(x, shape)),
    OpCase("permute", ops.permute, draw_permute, np.transpose),
    OpCase("swapaxes", ops.swapaxes, draw_swapaxes, lambda x, a, b: np.swapaxes(x, a, b)),
    OpCase("getitem", ops.getitem, draw_getitem, np_getitem),
    OpCase(
        "concat",
        lambda *xs, axis: ops.concat(xs, axis),
        draw_concat,
        lambda *xs, axis: np.concatenate(xs, axis),
    ),
    OpCase("stack", lambda *xs, axis: ops.stack(xs, axis), draw_stack, lambda *xs, axis: np.stack(xs, axis)),
    OpCase("broadcast_to", ops.broadcast_to, draw_broadcast_to, np.broadcast_to),
    # linear algebra
    OpCase("matmul", ops.matmul, draw_matmul, np.matmul),
    OpCase("linear", ops.linear, draw_linear, np_linear),
    # softmax, losses, lookups
    OpCase("softmax", ops.softmax, draw_softmax, np_softmax),
    OpCase("log_softmax", ops.log_softmax, draw_softmax, lambda x, axis: np.log(np_softmax(x, axis))),
    OpCase("cross_entropy", ops.cross_entropy, draw_cross_entropy, np_cross_entropy),
    OpCase("embedding", ops.embedding, draw_embedding, lambda w, ids: w[ids]),
    OpCase(
        "dropout",
        lambda x, p, seed: ops.dropout(x, p, np.random.default_rng(seed)),
        draw_dropout,
        np_dropout,
        float32_values=False,
    ),
    OpCase("attention", ops.scaled_dot_product_attention, draw_attention, np_attention),
]


# -- the harness -----------------------------------------------------------------------------
def on_backend(
    backend: Backend, example: Example, dtype: str = "float64"
) -> tuple[list[Any], dict[str, Any]]:
    """The example's inputs as ``backend`` arrays of ``dtype``; array parameters moved there too."""
    arrays, params = example
    inputs = [backend.asarray(a.astype(dtype)) for a in arrays]
    moved = {k: backend.asarray(v) if isinstance(v, np.ndarray) else v for k, v in params.items()}
    return inputs, moved


def check_forward(case: OpCase, backend: Backend, example: Example) -> None:
    arrays, params = example
    expected = np.asarray(case.ref(*arrays, **params))
    inputs, moved = on_backend(backend, example)
    out = case.fn(*[Tensor(a) for a in inputs], **moved)
    assert out.backend is backend
    assert out.shape == expected.shape, f"{case.name}: shape {out.shape}, NumPy gives {expected.shape}"
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-10, atol=1e-12, err_msg=case.name)
    inputs32, moved = on_backend(backend, example, "float32")
    out32 = case.fn(*[Tensor(a) for a in inputs32], **moved)
    assert out32.dtype == backend.dtype("float32"), f"{case.name}: float32 in, {out32.dtype} out"
    if case.float32_values:
        np.testing.assert_allclose(out32.numpy(), expected, rtol=1e-4, atol=1e-5, err_msg=case.name)


def check_gradients(case: OpCase, backend: Backend, example: Example) -> None:
    inputs, moved = on_backend(backend, example)

    def fn(*tensors: Tensor) -> Tensor:
        return case.fn(*tensors, **moved)

    check_vjp(fn, inputs, np.random.default_rng(0))
    adjoint_test(fn, inputs, np.random.default_rng(1))


@pytest.mark.parametrize("case", TABLE, ids=lambda c: c.name)
@settings(max_examples=30)
@given(data=st.data())
def test_forward_matches_numpy(case: OpCase, session_backend: Backend, data: st.DataObject) -> None:
    check_forward(case, session_backend, case.draw(data))


@pytest.mark.parametrize("case", TABLE, ids=lambda c: c.name)
@settings(max_examples=30)
@given(data=st.data())
def test_vjp_matches_finite_differences(case: OpCase, session_backend: Backend, data: st.DataObject) -> None:
    check_gradients(case, session_backend, case.draw(data))


class _HalfGradSquare(Function):
    """out = x², with the VJP missing its factor 2: the harness must reject it."""

    @staticmethod
    def forward(ctx: Context, x: Any) -> Any:
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        (x,) = ctx.saved
        return (g * x,)


@settings(max_examples=3)
@given(data=st.data())
def test_harness_rejects_a_wrong_vjp(data: st.DataObject) -> None:
    case = OpCase("half_grad_square", _HalfGradSquare.apply, unary("nonzero"), np.square)
    example = case.draw(data)
    check_forward(case, get_backend("numpy"), example)  # the forward is right...
    with pytest.raises(AssertionError):
        check_gradients(case, get_backend("numpy"), example)  # ...the VJP is not


# -- behaviour the table's continuous random inputs never reach ---------------------------------
def arr(backend: Backend, values: Any, dtype: str = "float64") -> Any:
    return backend.asarray(np.asarray(values, dtype=dtype))


def test_max_splits_the_gradient_evenly_among_ties(backend: Backend) -> None:
    x = Tensor(arr(backend, [[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]]), requires_grad=True)
    ops.max(x, axis=1).sum().backward()
    np.testing.assert_allclose(backend.to_numpy(x.grad), [[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]])
    x.zero_grad()
    ops.max(x).backward()
    np.testing.assert_allclose(backend.to_numpy(x.grad), [[0, 0.5, 0.5], [0, 0, 0]])


def test_getitem_with_an_int_next_to_the_index_array(backend: Backend, rng: np.random.Generator) -> None:
    x = rng.standard_normal((3, 4, 2))
    for index in [(1, [0, 2, 2]), (slice(None), [3, -1], 1), ([[2, 2], [0, 1]], slice(1, None))]:
        out = ops.getitem(Tensor(backend.asarray(x)), index)
        np.testing.assert_allclose(out.numpy(), x[index], err_msg=str(index))
        check_vjp(lambda t, index=index: ops.getitem(t, index), [backend.asarray(x)], rng)


def test_embedding_sums_the_gradient_of_repeated_ids_and_takes_host_ids(backend: Backend) -> None:
    weight = Tensor(arr(backend, np.arange(6.0).reshape(3, 2)), requires_grad=True)
    ids = np.array([[0, 2], [0, 0]])  # a host NumPy array, whatever the weight's backend
    out = ops.embedding(weight, ids)
    np.testing.assert_allclose(out.numpy(), np.arange(6.0).reshape(3, 2)[ids])
    out.sum().backward()
    np.testing.assert_allclose(backend.to_numpy(weight.grad), [[3, 3], [0, 0], [1, 1]])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_with_every_target_ignored_is_zero_not_nan(backend: Backend, reduction: str) -> None:
    logits = Tensor(arr(backend, np.ones((2, 3, 4))), requires_grad=True)
    target = np.full((2, 3), -100)
    loss = ops.cross_entropy(logits, target, label_smoothing=0.1, ignore_index=-100, reduction=reduction)
    np.testing.assert_array_equal(loss.numpy(), np.zeros(loss.shape))
    loss.backward(backend.asarray(np.ones(loss.shape)))
    np.testing.assert_array_equal(backend.to_numpy(logits.grad), np.zeros((2, 3, 4)))


def test_cross_entropy_ignores_positions_in_the_mean(backend: Backend, rng: np.random.Generator) -> None:
    z = rng.standard_normal((4, 3))
    target = np.array([2, -1, 0, -1])
    loss = ops.cross_entropy(Tensor(backend.asarray(z)), target, ignore_index=-1).item()
    log_p = np.log(np_softmax(z, axis=-1))
    assert loss == pytest.approx(-(log_p[0, 2] + log_p[2, 0]) / 2, rel=1e-12)


def test_softmax_and_log_softmax_are_stable_for_huge_logits(backend: Backend) -> None:
    x = Tensor(arr(backend, [[1000.0, 1001.0, 1002.0], [-1000.0, 0.0, -2000.0]]))
    expected = np.stack([np_softmax(np.array([0.0, 1.0, 2.0]), 0), [0.0, 1.0, 0.0]])
    np.testing.assert_allclose(ops.softmax(x).numpy(), expected, atol=1e-300)
    np.testing.assert_allclose(ops.log_softmax(x).numpy()[1], [-1000.0, 0.0, -2000.0])


def test_softmax_of_nan_is_nan_along_that_slice_only(backend: Backend) -> None:
    """Documented: NaN is propagated, not repaired (like NumPy, PyTorch, JAX)."""
    x = Tensor(arr(backend, [[0.0, np.nan, 1.0], [0.0, 1.0, 2.0]]))
    for out in (ops.softmax(x), ops.log_softmax(x)):
        got = out.numpy()
        assert np.isnan(got[0]).all()
        assert np.isfinite(got[1]).all()


def test_dropout_mask_is_reproducible_scaled_and_of_the_right_rate(backend: Backend) -> None:
    x = Tensor(arr(backend, np.ones(20_000)))
    a = ops.dropout(x, 0.3, np.random.default_rng(7)).numpy()
    b = ops.dropout(Tensor(np.ones(20_000)), 0.3, np.random.default_rng(7)).numpy()
    np.testing.assert_array_equal(a, b)  # same seed, same mask, on every backend
    assert set(np.unique(a)) == {0.0, 1 / 0.7}
    # Dropped fraction ~ Binomial(20000, 0.3)/20000, sd 0.0032; ±0.02 is a 6-sigma band.
    assert abs(np.mean(a == 0) - 0.3) < 0.02
    assert ops.dropout(x, 0.3, np.random.default_rng(7), training=False) is x


def test_attention_causal_equals_an_explicit_lower_triangular_mask(
    backend: Backend, rng: np.random.Generator
) -> None:
    q, k, v = (backend.asarray(rng.standard_normal((2, 3, 4, 4))) for _ in range(3))
    tril = np.tril(np.ones((4, 4), bool))
    causal = ops.scaled_dot_product_attention(Tensor(q), Tensor(k), Tensor(v), causal=True)
    masked = ops.scaled_dot_product_attention(Tensor(q), Tensor(k), Tensor(v), mask=tril)
    np.testing.assert_allclose(causal.numpy(), masked.numpy())
    check_vjp(lambda *t: ops.scaled_dot_product_attention(*t, causal=True), [q, k, v], rng)


def test_attention_with_a_fully_masked_query_averages_the_values(backend: Backend) -> None:
    v = np.arange(6.0).reshape(3, 2)
    mask = np.array([[False, False, False], [True, False, False]])
    out = ops.scaled_dot_product_attention(
        Tensor(arr(backend, np.ones((2, 2)))),
        Tensor(arr(backend, np.ones((3, 2)))),
        Tensor(arr(backend, v)),
        mask,
    )
    np.testing.assert_allclose(out.numpy(), [v.mean(axis=0), v[0]])


def test_tensor_methods_route_to_these_ops(backend: Backend) -> None:
    x = Tensor(arr(backend, np.arange(6.0).reshape(2, 3)), requires_grad=True)
    y = (x.T @ x).sum() + x.max(axis=0).mean() + x.var() + x[1, 1:].sum() + x.reshape(3, 2).softmax().sum()
    y.backward()
    assert x.grad is not None and tuple(x.grad.shape) == (2, 3)

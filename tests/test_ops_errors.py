"""Bad input to the ops raises a clear exception naming the op and the shapes."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

from refqt import ops
from refqt.backend import Backend
from refqt.ops.attention import causal_mask
from refqt.tensor import Tensor


def t(backend: Backend, shape: tuple[int, ...]) -> Tensor:
    return Tensor(backend.asarray(np.ones(shape)))


def raises(exc: type[Exception], *parts: str) -> Any:
    """pytest.raises(exc) whose message contains every part, in order."""
    return pytest.raises(exc, match=".*".join(re.escape(p) for p in parts))


def test_matmul_shape_mismatch_names_matmul_and_both_shapes(backend: Backend) -> None:
    with raises(ValueError, "matmul", "(2, 3)", "(4, 5)"):
        ops.matmul(t(backend, (2, 3)), t(backend, (4, 5)))
    with raises(ValueError, "matmul", "(2, 2, 3)", "(3, 3, 4)", "batch"):
        ops.matmul(t(backend, (2, 2, 3)), t(backend, (3, 3, 4)))
    with raises(ValueError, "matmul", "()"):
        ops.matmul(t(backend, ()), t(backend, (3,)))


def test_linear_checks_weight_and_bias_shapes(backend: Backend) -> None:
    with raises(ValueError, "linear", "(4, 3)", "(2, 5)"):
        ops.linear(t(backend, (4, 3)), t(backend, (2, 5)))
    with raises(ValueError, "linear", "bias", "(3,)", "(2,)"):
        ops.linear(t(backend, (4, 5)), t(backend, (2, 5)), t(backend, (3,)))


def test_linear_needs_one_floating_dtype(backend: Backend) -> None:
    f32 = Tensor(backend.asarray(np.ones((2, 5), np.float32)))
    f64, b64 = t(backend, (4, 5)), t(backend, (2,))
    with raises(TypeError, "linear", "one dtype", "x (4, 5)", "float64", "w (2, 5)", "float32"):
        ops.linear(f64, f32)
    with raises(TypeError, "linear", "w (2, 5)", "float32", "b (2,)", "float64"):
        ops.linear(f64.astype(f32.dtype), f32, b64)
    ints = Tensor(backend.asarray(np.ones((4, 5), np.int64)))
    with raises(TypeError, "linear", "real floating", "x (4, 5)", "int64", "w (4, 5)", "int64"):
        ops.linear(ints, ints)


def test_cross_entropy_rejects_bad_targets(backend: Backend) -> None:
    logits = t(backend, (2, 3))
    with raises(IndexError, "cross_entropy", "[0, 3)", "max 3"):
        ops.cross_entropy(logits, np.array([0, 3]))
    with raises(IndexError, "cross_entropy", "min -1"):
        ops.cross_entropy(logits, np.array([-1, 0]), ignore_index=-100)
    with raises(ValueError, "cross_entropy", "(3,)", "(2, 3)", "expected (2,)"):
        ops.cross_entropy(logits, np.array([0, 1, 2]))
    with raises(TypeError, "cross_entropy", "integer", "float64"):
        ops.cross_entropy(logits, np.array([0.0, 1.0]))
    with raises(ValueError, "cross_entropy", "(2,)"):
        ops.cross_entropy(t(backend, (2,)), np.array([0, 1]))
    with raises(ValueError, "cross_entropy", "reduction", "'avg'"):
        ops.cross_entropy(logits, np.array([0, 1]), reduction="avg")
    with raises(ValueError, "cross_entropy", "label_smoothing", "1.5"):
        ops.cross_entropy(logits, np.array([0, 1]), label_smoothing=1.5)


def test_reshape_to_an_incompatible_size(backend: Backend) -> None:
    with raises(ValueError, "reshape", "(2, 3)", "size 6", "(4,)"):
        ops.reshape(t(backend, (2, 3)), (4,))
    with raises(ValueError, "reshape", "(-1, -1)"):
        ops.reshape(t(backend, (2, 3)), (-1, -1))
    with raises(ValueError, "reshape", "(4, -1)"):
        ops.reshape(t(backend, (2, 3)), (4, -1))


def test_concat_and_stack_with_mismatched_shapes(backend: Backend) -> None:
    with raises(ValueError, "concat", "[(2, 3), (2, 4)]", "axis 0"):
        ops.concat([t(backend, (2, 3)), t(backend, (2, 4))], axis=0)
    with raises(ValueError, "concat", "axis 2"):
        ops.concat([t(backend, (2, 3)), t(backend, (2, 3))], axis=2)
    with raises(ValueError, "concat", "at least one"):
        ops.concat([])
    with raises(ValueError, "stack", "[(2, 3), (3, 2)]"):
        ops.stack([t(backend, (2, 3)), t(backend, (3, 2))])


def test_embedding_ids_out_of_range_or_not_integer(backend: Backend) -> None:
    weight = t(backend, (5, 2))
    with raises(IndexError, "embedding", "[0, 5)", "(5, 2)", "max 5"):
        ops.embedding(weight, np.array([0, 5]))
    with raises(IndexError, "embedding", "min -1"):
        ops.embedding(weight, np.array([[-1, 0]]))
    with raises(TypeError, "embedding", "integers", "float64"):
        ops.embedding(weight, np.array([0.0]))
    with raises(ValueError, "embedding", "(5,)"):
        ops.embedding(t(backend, (5,)), np.array([0]))


@pytest.mark.parametrize("p", [1.0, 1.5, -0.1])
def test_dropout_p_outside_zero_one(backend: Backend, p: float) -> None:
    with raises(ValueError, "dropout", "[0, 1)", str(p)):
        ops.dropout(t(backend, (3,)), p, np.random.default_rng(0))


@pytest.mark.parametrize("rng", [None, 0, np.random.RandomState(0)])
def test_dropout_needs_a_generator(backend: Backend, rng: Any) -> None:
    with raises(TypeError, "dropout", "numpy.random.Generator", type(rng).__name__):
        ops.dropout(t(backend, (3,)), 0.5, rng)


def test_getitem_rejects_what_it_does_not_support(backend: Backend) -> None:
    x = t(backend, (3, 4))
    with raises(IndexError, "getitem", "out of range", "(3, 4)"):
        ops.getitem(x, (3, 0))
    with raises(IndexError, "getitem", "does not fit", "(3, 4)"):
        ops.getitem(x, (0, 0, 0))
    with raises(IndexError, "getitem", "out of range", "length 4"):
        ops.getitem(x, (slice(None), np.array([4])))
    with raises(TypeError, "getitem", "boolean"):
        ops.getitem(x, np.array([True, False, True]))
    with raises(TypeError, "getitem", "one integer index array"):
        ops.getitem(x, (np.array([0]), np.array([1])))
    with raises(TypeError, "getitem", "integer", "float64"):
        ops.getitem(x, np.array([0.0]))
    with raises(IndexError, "getitem", "separated"):
        ops.getitem(t(backend, (2, 3, 4)), (0, slice(None), np.array([1])))


def test_axes_out_of_range_and_bad_permutations(backend: Backend) -> None:
    x = t(backend, (2, 3))
    for op in (ops.sum, ops.mean, ops.max, ops.var):
        with raises(ValueError, op.__name__, "axis 2", "2 dimensions"):
            op(x, axis=2)
    with raises(ValueError, "sum", "repeated axis"):
        ops.sum(x, axis=(1, -1))
    with raises(ValueError, "var", "correction=1"):
        ops.var(x, axis=(), correction=1)
    with raises(ValueError, "permute", "(0, 0)", "(2, 3)"):
        ops.permute(x, (0, 0))
    with raises(ValueError, "swapaxes", "axis 2", "(2, 3)"):
        ops.swapaxes(x, 0, 2)
    with raises(ValueError, "softmax", "axis 2", "(2, 3)"):
        ops.softmax(x, axis=2)
    with raises(ValueError, "log_softmax", "axis -3"):
        ops.log_softmax(x, axis=-3)
    with raises(ValueError, "broadcast_to", "(2, 3)", "(3, 3)"):
        ops.broadcast_to(x, (3, 3))


def test_attention_checks_shapes_and_mask(backend: Backend) -> None:
    q, k, v = t(backend, (2, 4)), t(backend, (3, 5)), t(backend, (3, 2))
    with raises(ValueError, "scaled_dot_product_attention", "q (2, 4)", "k (3, 5)", "v (3, 2)"):
        ops.scaled_dot_product_attention(q, k, v)
    k = t(backend, (3, 4))
    with raises(TypeError, "scaled_dot_product_attention", "boolean"):
        ops.scaled_dot_product_attention(q, k, v, mask=np.ones((2, 3)))
    with raises(ValueError, "scaled_dot_product_attention", "(2, 2)", "(2, 3)"):
        ops.scaled_dot_product_attention(q, k, v, mask=np.ones((2, 2), bool))


def test_causal_attention_needs_as_many_queries_as_keys(backend: Backend) -> None:
    q, k = t(backend, (2, 3, 4)), t(backend, (2, 5, 4))
    with raises(ValueError, "scaled_dot_product_attention", "causal", "Lq == Lk", "(2, 3, 4)", "(2, 5, 4)"):
        ops.scaled_dot_product_attention(q, k, k, causal=True)


@pytest.mark.parametrize(
    ("call", "parts"),
    [
        (lambda x: ops.mean(x), ("mean", "0 elements", "x (0, 3)", "axis None")),
        (lambda x: ops.mean(x, axis=0), ("mean", "0 elements", "x (0, 3)", "axis 0")),
        (lambda x: ops.max(x), ("max", "0 elements", "x (0, 3)", "axis None")),
        (lambda x: ops.max(x, axis=(0,)), ("max", "0 elements", "x (0, 3)", "axis (0,)")),
        (lambda x: ops.softmax(ops.swapaxes(x, 0, 1)), ("softmax", "0 elements", "x (3, 0)", "axis -1")),
        (lambda x: ops.log_softmax(x, axis=0), ("log_softmax", "0 elements", "x (0, 3)", "axis 0")),
    ],
)
def test_reductions_over_zero_elements_are_errors(
    backend: Backend, call: Any, parts: tuple[str, ...]
) -> None:
    with raises(ValueError, *parts):
        call(t(backend, (0, 3)))


def test_reductions_of_empty_input_that_are_well_defined_still_work(backend: Backend) -> None:
    x = t(backend, (0, 3))
    assert float(ops.sum(x).numpy()) == 0.0
    assert ops.mean(x, axis=1).shape == (0,)
    assert ops.max(x, axis=1).shape == (0,)
    assert ops.mean(x, axis=()).shape == (0, 3)
    assert ops.softmax(x, axis=-1).shape == (0, 3)
    assert ops.log_softmax(x, axis=1).shape == (0, 3)


def test_attention_over_zero_keys_is_an_error(backend: Backend) -> None:
    q, k = t(backend, (2, 3, 4)), t(backend, (2, 0, 4))
    with raises(
        ValueError, "scaled_dot_product_attention", "0 keys", "q (2, 3, 4)", "k (2, 0, 4)", "v (2, 0, 4)"
    ):
        ops.scaled_dot_product_attention(q, k, k)
    no_queries = t(backend, (2, 0, 4))
    assert ops.scaled_dot_product_attention(no_queries, q, q).shape == (2, 0, 4)


def test_global_avg_pool_over_zero_pixels_is_an_error(backend: Backend) -> None:
    with raises(ValueError, "global_avg_pool2d", "0 pixels", "(1, 1, 0, 0)", "axes (2, 3)"):
        ops.global_avg_pool2d(t(backend, (1, 1, 0, 0)))
    with raises(ValueError, "global_avg_pool2d", "0 pixels", "(1, 1, 2, 0)"):
        ops.global_avg_pool2d(t(backend, (1, 1, 2, 0)))


@pytest.mark.parametrize("axis", [1.0, [0], (0, 1.0), True, "0"])
def test_axis_must_be_none_an_int_or_a_tuple_of_ints(backend: Backend, axis: Any) -> None:
    for op in (ops.sum, ops.mean, ops.max, ops.var):
        with raises(TypeError, op.__name__, "axis must be None, an int or a tuple of ints", repr(axis)):
            op(t(backend, (2, 3)), axis=axis)
    assert ops.sum(t(backend, (2, 3)), axis=np.int64(1)).shape == (2,)  # NumPy integers are ints


def test_batch_norm_checks_the_running_statistics_shapes(backend: Backend) -> None:
    x, gamma, beta = t(backend, (2, 3)), t(backend, (3,)), t(backend, (3,))
    good, bad = backend.asarray(np.ones(3)), backend.asarray(np.ones(5))
    for training in (False, True):
        with raises(
            ValueError, "batch_norm", "(2, 3)", "3 channels", "running_mean has shape (5,)", "expected (3,)"
        ):
            ops.batch_norm(x, gamma=gamma, beta=beta, running_mean=bad, running_var=good, training=training)
        with raises(ValueError, "batch_norm", "(2, 3)", "running_var has shape (5,)", "expected (3,)"):
            ops.batch_norm(x, gamma=gamma, beta=beta, running_mean=good, running_var=bad, training=training)
    assert backend.to_numpy(good).tolist() == [1.0, 1.0, 1.0]  # nothing updated before the error
    with raises(ValueError, "batch_norm", "(4, 0)", "0 channels"):
        ops.batch_norm(t(backend, (4, 0)), gamma=t(backend, (0,)), beta=t(backend, (0,)), training=True)


def test_layer_norm_needs_an_axis_with_elements(backend: Backend) -> None:
    with raises(ValueError, "layer_norm", "at least one axis", "shape ()"):
        ops.layer_norm(t(backend, ()), t(backend, (1,)), t(backend, (1,)))
    with raises(ValueError, "layer_norm", "0 elements", "x (2, 0)", "axis -1"):
        ops.layer_norm(t(backend, (2, 0)), t(backend, (0,)), t(backend, (0,)))


def test_cross_entropy_needs_at_least_one_class(backend: Backend) -> None:
    with raises(ValueError, "cross_entropy", "(0, 0)", "0 classes"):
        ops.cross_entropy(t(backend, (0, 0)), np.zeros(0, np.int64))


def test_causal_mask_needs_equal_lengths(backend: Backend) -> None:
    with raises(ValueError, "causal_mask", "lq == lk", "lq=2, lk=3"):
        causal_mask(backend, 2, 3)
    assert backend.to_numpy(causal_mask(backend, 2, 2)).tolist() == [[True, False], [True, True]]

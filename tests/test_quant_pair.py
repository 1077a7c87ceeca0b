"""Both gradient paths of an FQT layer in one pass (refqt.quant.pair) against their definition.

The definition is two quantizations in a row on the layer's generator: ``Q_b`` on
the rows of G, then ``Q_w`` on G as the weight path sees it (rows × out for a
linear layer, G itself for a conv), each with its own fresh noise stream --
here the reference path ``q.quantize(x, q.uniform(x, rng))`` twice. For the
same generator state the layer's backward must give both results bit for bit,
and leave the generator where the two calls leave it.
"""

import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refqt.backend import emulate_device
from refqt.fqt import QuantConfig
from refqt.fqt.layer import LayerQuantizer, gradient_rows
from refqt.quant import PTQ, fast, pair
from refqt.quant.checks import NonFiniteInputError
from refqt.quant.rounding import NoiseStream, fresh_stream_codes

PAIRED = [  # (grad_quantizer, grad_bits, weight_grad_bits): the pairs quantize_pair handles
    ("ptq", 5, 8),
    ("ptq", 4, 4),
    ("ptq", 1, 16),
    ("psq", 5, 8),
    ("psq", 2, 2),
]


def _two_calls(hook, g, kind, rng):
    """The definition: Q_b on the rows, then Q_w on G as the weight path sees it, by the reference path."""
    q_b, q_w = hook.grad_quantizer, hook.weight_grad_quantizer
    rows = gradient_rows(g, kind)
    g_in = q_b.quantize(rows, q_b.uniform(rows, rng)).reshape(g.shape)
    matrix = g.reshape(-1, g.shape[-1]) if kind == "linear" else g
    g_w = q_w.quantize(matrix, q_w.uniform(matrix, rng)).reshape(g.shape)
    return g_in, g_w


def _gradient(shape, dtype, seed, zeros):
    r = np.random.default_rng(seed)
    g = r.standard_normal(shape) * np.exp(r.standard_normal((shape[0],) + (1,) * (len(shape) - 1)))
    g[r.random(shape) < zeros] = 0
    return g.astype(dtype)


def _check(name, bits, wbits, kind, g, seed):
    config = QuantConfig(mode="fqt", grad_quantizer=name, grad_bits=bits, weight_grad_bits=wbits)
    hook = LayerQuantizer("layer", config, np.random.default_rng(seed))
    assert hook._pairs(g, True), "pair path not taken: the test would compare the two calls with themselves"
    rng = copy.deepcopy(hook.rng)
    want_in, want_w = _two_calls(hook, g, kind, rng)
    got_in, got_w = hook.bifurcate(g, kind=kind, need_input=True, need_weight=True)
    label = f"{name} {bits}/{wbits} {kind} {g.shape} {g.dtype}"
    assert got_in.dtype == got_w.dtype == g.dtype and got_in.shape == got_w.shape == g.shape
    np.testing.assert_array_equal(got_in, want_in, err_msg=f"Q_b {label}")
    np.testing.assert_array_equal(got_w, want_w, err_msg=f"Q_w {label}")
    assert hook.rng.bit_generator.random_raw() == rng.bit_generator.random_raw(), f"generator {label}"


LINEAR = st.tuples(st.integers(1, 40), st.integers(1, 20), st.integers(1, 70))
CONV = st.tuples(st.integers(1, 12), st.integers(1, 9), st.integers(1, 7), st.integers(1, 7))


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(PAIRED),
    st.one_of(LINEAR.map(lambda s: ("linear", s)), CONV.map(lambda s: ("conv", s))),
    st.sampled_from([np.float16, np.float32, np.float64]),
    st.integers(0, 2**32 - 1),
    st.sampled_from([0.0, 0.5]),
)
def test_one_pass_equals_two_quantizations_on_drawn_shapes(quantizers, layer, dtype, seed, zeros):
    """Sizes of every residue mod 4 (the noise streams' word boundary), short and long rows, three dtypes."""
    kind, shape = layer
    _check(*quantizers, kind, _gradient(shape, dtype, seed, zeros), seed)


@pytest.mark.parametrize("quantizers", PAIRED, ids=lambda p: f"{p[0]}{p[1]}-{p[2]}")
@pytest.mark.parametrize(
    ("kind", "shape"),
    [("linear", (32, 12, 32)), ("linear", (32, 17, 43)), ("linear", (7, 3, 5)), ("conv", (32, 16, 8, 8)),
     ("conv", (3, 2, 5, 5)), ("conv", (4, 3, 9, 9)), ("linear", (1, 1, 1))],
)  # fmt: skip
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_one_pass_equals_two_quantizations_on_layer_shapes(quantizers, kind, shape, dtype):
    """Token gradients of the quick transformer, conv gradients with short and long channels (S = 81)."""
    _check(*quantizers, kind, _gradient(shape, dtype, sum(shape), 0.3), 11)


@pytest.mark.parametrize("name", ["ptq", "psq"])
def test_a_strided_gradient_is_paired_and_equals_the_two_calls(name):
    """Attention's key projection gets Gᵀ-like strided gradients; the pair reads them like the two calls."""
    for base, view in (((4, 16, 24), lambda a: a.transpose(0, 2, 1)), ((24, 10), lambda a: a[:, ::2])):
        g = view(_gradient(base, np.float32, 5, 0.2))
        assert not g.flags.c_contiguous
        _check(name, 5, 8, "linear", g, 9)


def test_all_zero_and_constant_gradients():
    for g in (np.zeros((6, 5, 3), np.float32), np.full((6, 5, 3), -2.5, np.float32)):
        for quantizers in PAIRED:
            _check(*quantizers, "linear", g, 3)


@pytest.mark.parametrize("name", ["ptq", "psq"])
def test_a_nan_gradient_is_refused_naming_the_input_path_quantizer(name):
    config = QuantConfig(mode="fqt", grad_quantizer=name, grad_bits=5)
    hook = LayerQuantizer("layer", config, np.random.default_rng(0))
    g = np.ones((4, 3, 8), np.float32)
    g[1, 2, 3] = np.nan
    assert hook._pairs(g, True)
    label = "PTQ\\(bits=5\\)" if name == "ptq" else "PSQ\\(bits=5\\)"
    before = copy.deepcopy(hook.rng)
    with pytest.raises(ValueError, match=f"{label}: input of shape \\(12, 8\\) contains NaN"):
        hook.bifurcate(g, kind="linear", need_input=True, need_weight=True)
    assert hook.rng.bit_generator.random_raw() == before.bit_generator.random_raw()  # untouched, as before


def test_the_pair_path_is_not_taken_where_it_would_change_anything(monkeypatch):
    """Captured gradients (the codes are kept), a path off, the device path, other pairs, a large G."""
    g = _gradient((8, 5, 16), np.float32, 0, 0.0)

    def hook(name="ptq"):
        config = QuantConfig(mode="fqt", grad_quantizer=name, grad_bits=5)
        return LayerQuantizer("layer", config, np.random.default_rng(1))

    assert hook()._pairs(g, True)
    assert not hook()._pairs(g, False)  # only one path needed
    captured = hook()
    captured.captured = []
    assert not captured._pairs(g, True)
    for off in ("quantize_input_grad", "quantize_weight_grad"):
        h = hook()
        setattr(h, off, False)
        assert not h._pairs(g, True)
    with emulate_device():
        assert not hook()._pairs(g, True)
    for name in ("bhq", "psq-zero", "shift"):
        assert not hook(name)._pairs(g, True)
    monkeypatch.setattr(fast, "SMALL", 100)
    assert not hook()._pairs(g, True)  # 640 entries: the blocked spelling, drawn in pieces


def test_a_wrong_noise_split_is_caught():
    """Splitting one draw at n instead of ⌈n/4⌉·4 (no dropped pieces) is what the shape tests must catch."""
    n = 4 * 6 + 3
    codes = fresh_stream_codes(np.random.default_rng(2), (n, n))
    rng = np.random.default_rng(2)
    want = [NoiseStream(rng).take(n), NoiseStream(rng).take(n)]
    np.testing.assert_array_equal(codes[0], want[0])
    np.testing.assert_array_equal(codes[1], want[1])
    contiguous = NoiseStream(np.random.default_rng(2)).take(2 * n)
    assert not np.array_equal(contiguous[n:], want[1])


def test_pairs_names_only_the_handled_quantizers():
    from refqt.quant import PSQ, PTQ, ZeroPSQ

    g = np.ones((4, 4), np.float32)
    assert pair.pairs(PTQ(5), PTQ(8), g)
    assert pair.pairs(PSQ(5), PSQ(8, axis="column"), g)
    assert pair.pairs(PSQ(5), PSQ(8, axis="channel"), g)
    assert not pair.pairs(PSQ(5), PSQ(8), g)
    assert not pair.pairs(ZeroPSQ(5), PSQ(8, axis="column"), g)
    assert not pair.pairs(PTQ(5), PSQ(8, axis="column"), g)
    assert not pair.pairs(PTQ(5), PTQ(8), np.ones((0, 4), np.float32))


@pytest.mark.parametrize(
    ("name", "bits", "wbits", "g"),
    [  # Q_b takes G; only Q_w refuses it:
        ("ptq", 5, 16, np.array([[-1e305, 1.0], [0.5, 2.0]])),  # −min·B overflows for B = 2¹⁶ − 1 only
        ("psq", 5, 8, np.array([[3e38, 3e38], [-3e38, -3e38]], np.float32)),  # columns 6e38 wide
    ],
)
def test_a_gradient_only_the_weight_path_refuses_leaves_the_generator_as_the_two_calls(name, bits, wbits, g):
    config = QuantConfig(mode="fqt", grad_quantizer=name, grad_bits=bits, weight_grad_bits=wbits)
    hook = LayerQuantizer("layer", config, np.random.default_rng(3))
    assert hook._pairs(g, True)
    rng = copy.deepcopy(hook.rng)
    hook.grad_quantizer(g, rng)  # the two calls: Q_b quantizes (and draws its noise) ...
    with pytest.raises(NonFiniteInputError) as two_calls:
        hook.weight_grad_quantizer(g, rng)  # ... then Q_w refuses before drawing
    with pytest.raises(NonFiniteInputError) as one_pass:
        hook.bifurcate(g, kind="linear", need_input=True, need_weight=True)
    assert str(one_pass.value) == str(two_calls.value)
    assert hook.rng.bit_generator.random_raw() == rng.bit_generator.random_raw()


def test_a_refused_ptq_call_draws_no_noise():
    rng = np.random.default_rng(4)
    with pytest.raises(NonFiniteInputError, match=r"PTQ\(bits=16\)"):
        PTQ(16)(np.array([[-1e306, 1.0]]), rng)
    assert rng.bit_generator.random_raw() == np.random.default_rng(4).bit_generator.random_raw()


def test_the_pairs_errors_are_the_input_path_quantizers():
    """A bad generator or dtype reads as the first of the two calls says it; an unhandled pair is refused."""
    q_b, q_w = PTQ(5), PTQ(8)
    g, rows, out_w = np.ones((4, 3, 8), np.float32), (12, 8), np.empty((12, 8), np.float32)
    with pytest.raises(TypeError) as call:
        q_b(g.reshape(rows), 7)
    with pytest.raises(TypeError) as paired:
        pair.quantize_pair(q_b, q_w, g, rows, 7, out_w)
    assert str(paired.value) == str(call.value)
    wrong = np.ones((4, 3, 8), np.int64)
    with pytest.raises(TypeError) as call:
        q_b(wrong.reshape(rows), np.random.default_rng(0))
    with pytest.raises(TypeError) as paired:
        pair.quantize_pair(q_b, q_w, wrong, rows, np.random.default_rng(0), out_w)
    assert str(paired.value) == str(call.value) and "(12, 8)" in str(paired.value)
    with pytest.raises(ValueError, match="no one-pass path"):
        pair.quantize_pair(PTQ(5), pair.PSQ(8, axis="channel"), g, rows, np.random.default_rng(0), out_w)

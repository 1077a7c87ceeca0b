"""The FQT wiring itself: which quantizer sees which gradient, with which noise.

* every gradient path of every layer type (linear, conv, the four attention
  projections) goes through its quantizer, with the documented row layout, and the
  quantizer's output is what the layer's backward uses (a tagging stub that doubles
  its input must double exactly the gradients of that path, and no other);
* each path's quantizer has the configured kind and bits, checked by reproducing
  ``bifurcate`` with a freshly built quantizer on the same noise;
* each layer has its own noise stream (the documented ``SeedSequence(seed,
  spawn_key=(i,))``), and the two paths of a layer draw different noise;
* switching gradient quantization off gives QAT's gradients bit for bit.

The independence checks compare the correlation of two quantization errors over
n ≥ 4096 entries with 5/√n: a false alarm has probability ≈ 5.7e-7 (seeded).
"""

import math

import numpy as np
import pytest

from refqt import Tensor
from refqt.fqt import QuantConfig, gradient_quantization, quantize, quantized_layers
from refqt.fqt.layer import gradient_rows
from refqt.models import SmallCNN
from refqt.nn import Conv2d, Linear, MultiHeadAttention, Sequential
from refqt.quant import make_gradient_quantizer


class Tag:
    """A stand-in gradient quantizer: returns ``2·x`` and records each call's shape and generator."""

    bits, levels, name = 8, 255, "tag"

    def __init__(self):
        self.calls = []

    def __call__(self, x, rng, out=None):
        self.calls.append((tuple(x.shape), rng))
        if out is None:
            return 2 * x
        out[...] = 2 * x
        return out


def twin(rng):
    """A generator in the same state as ``rng`` (draws the same numbers, leaves ``rng`` alone)."""
    other = np.random.Generator(type(rng.bit_generator)())
    other.bit_generator.state = rng.bit_generator.state
    return other


def backward_grads(model, inputs, out_grad):
    """Gradients of every parameter and every input after ``model(*inputs).backward(out_grad)``."""
    model.zero_grad()
    for t in inputs:
        t.grad = None
    out = model(*inputs)
    out.backward(out_grad(out.shape))
    grads = {name: p.grad.copy() for name, p in model.named_parameters()}
    grads.update({f"input{i}": t.grad.copy() for i, t in enumerate(inputs)})
    model.zero_grad()
    return grads


def assert_only_doubled(got, base, doubled):
    for name in base:
        want = 2 * base[name] if name in doubled else base[name]
        np.testing.assert_allclose(got[name], want, rtol=1e-12, atol=0, err_msg=name)
        assert np.any(base[name] != 0), name  # a zero gradient would make the check vacuous


CONFIG = QuantConfig(mode="fqt", grad_quantizer="psq", grad_bits=4, seed=1)
RNG = np.random.default_rng(0)


def linear_case():
    layer = Sequential(Linear(4, 5, rng=np.random.default_rng(0), dtype=np.float64))
    x = Tensor(RNG.standard_normal((2, 3, 4)), requires_grad=True)
    return layer, [x], {"0": ((6, 5), (6, 5))}, {"0": ("input0",)}, {"0": ("0.weight",)}


def conv_case():
    layer = Sequential(Conv2d(2, 3, 3, padding=1, rng=np.random.default_rng(0), dtype=np.float64))
    x = Tensor(RNG.standard_normal((4, 2, 5, 5)), requires_grad=True)
    return layer, [x], {"0": ((4, 75), (4, 3, 5, 5))}, {"0": ("input0",)}, {"0": ("0.weight",)}


def attention_case():
    mha = MultiHeadAttention(8, 2, rng=np.random.default_rng(0), dtype=np.float64)
    q, k, v = (Tensor(RNG.standard_normal((2, n, 8)), requires_grad=True) for n in (3, 4, 4))
    shapes = {"q_proj": (6, 8), "k_proj": (8, 8), "v_proj": (8, 8), "out_proj": (6, 8)}
    input_path = {
        "q_proj": ("input0",),
        "k_proj": ("input1",),
        "v_proj": ("input2",),
        "out_proj": (  # everything below it
            *("input0", "input1", "input2"),
            *(f"{p}_proj.{w}" for p in "qkv" for w in ("weight", "bias")),
        ),
    }
    return (
        mha,
        [q, k, v],
        {name: (s, s) for name, s in shapes.items()},
        input_path,
        {name: (f"{name}.weight",) for name in shapes},
    )


@pytest.mark.parametrize(
    "case", [linear_case, conv_case, attention_case], ids=["linear", "conv", "attention"]
)
@pytest.mark.parametrize("path", ["input", "weight"])
def test_every_gradient_path_goes_through_its_quantizer(case, path):
    """A doubling stub on one path of one layer doubles exactly that path's gradients; called on its rows."""
    model, inputs, shapes, input_doubles, weight_doubles = case()
    quantize(model, CONFIG)

    def out_grad(shape):
        return np.random.default_rng(3).standard_normal(shape)

    with gradient_quantization(model, False):
        base = backward_grads(model, inputs, out_grad)
    for name, layer in quantized_layers(model):
        hook = layer.fqt
        saved = hook.grad_quantizer, hook.weight_grad_quantizer
        tag = Tag()
        hook.grad_quantizer = tag if path == "input" else None
        hook.weight_grad_quantizer = tag if path == "weight" else None
        others = [m.fqt for n, m in quantized_layers(model) if n != name]
        for other in others:  # every other layer: float backward
            other.quantize_input_grad = other.quantize_weight_grad = False
        got = backward_grads(model, inputs, out_grad)
        for other in others:
            other.quantize_input_grad = other.quantize_weight_grad = True
        hook.grad_quantizer, hook.weight_grad_quantizer = saved
        assert_only_doubled(got, base, (input_doubles if path == "input" else weight_doubles)[name])
        want_shape = shapes[name][0 if path == "input" else 1]
        assert [shape for shape, _ in tag.calls] == [want_shape], name
        assert tag.calls[0][1] is hook.rng, name


def test_the_first_layer_skips_its_input_path_but_not_its_weight_path():
    """No gradient is needed for the data, so Q_b is never called on the first layer; Q_w is."""
    model = quantize(SmallCNN(channels=4, hidden=16, rng=np.random.default_rng(0)), CONFIG)
    first = quantized_layers(model)[0][1].fqt
    first.grad_quantizer, first.weight_grad_quantizer = Tag(), Tag()
    out = model(Tensor(np.random.default_rng(1).standard_normal((3, 1, 8, 8)).astype(np.float32)))
    out.backward(np.ones(out.shape, dtype=np.float32))
    assert first.grad_quantizer.calls == []
    assert [shape for shape, _ in first.weight_grad_quantizer.calls] == [(3, 4, 8, 8)]


WIRING = [
    ("ptq", "auto", "ptq"),
    ("psq", "auto", "psq-column"),
    ("bhq", "auto", "psq-column"),
    ("shift", "auto", "psq-column"),
    ("bhq", "ptq", "ptq"),
    ("ptq", "psq-column", "psq-column"),
]


@pytest.mark.parametrize(("grad_quantizer", "weight_grad_quantizer", "resolved"), WIRING)
@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_each_path_has_the_configured_kind_and_bits(grad_quantizer, weight_grad_quantizer, resolved, kind):
    """Q_b = make_gradient_quantizer(grad_quantizer, grad_bits) on G's rows; Q_w its own kind and bits.

    Reproduced with fresh quantizers and the layer's noise: a Q_w built with
    grad_bits (3) instead of weight_grad_bits (6), or of the wrong kind, differs.
    """
    config = QuantConfig(
        mode="fqt",
        grad_quantizer=grad_quantizer,
        grad_bits=3,
        weight_grad_quantizer=weight_grad_quantizer,
        weight_grad_bits=6,
        seed=2,
    )
    r = np.random.default_rng(4)
    if kind == "linear":
        layer = Linear(5, 7, rng=r, dtype=np.float64)
        g = r.standard_normal((3, 4, 7)) * np.exp(r.standard_normal((3, 4, 1)))
        matrix = g.reshape(-1, 7)
    else:
        layer = Conv2d(2, 5, 3, rng=r, dtype=np.float64)
        g = r.standard_normal((6, 5, 3, 3)) * np.exp(r.standard_normal((6, 1, 1, 1)))
        matrix = g
    hook = quantize(Sequential(layer), config)[0].fqt
    q_b, q_w = make_gradient_quantizer(grad_quantizer, 3), make_gradient_quantizer(resolved, 6)
    assert (hook.grad_quantizer.name, hook.grad_quantizer.bits) == (q_b.name, 3)
    assert (hook.weight_grad_quantizer.name, hook.weight_grad_quantizer.bits) == (q_w.name, 6)

    noise = twin(hook.rng)
    g_in, g_w = hook.bifurcate(g, kind=kind, need_input=True, need_weight=False)
    np.testing.assert_array_equal(g_w, g)
    np.testing.assert_array_equal(g_in, np.reshape(q_b(gradient_rows(g, kind), noise), g.shape))
    noise = twin(hook.rng)
    g_in, g_w = hook.bifurcate(g, kind=kind, need_input=False, need_weight=True)
    np.testing.assert_array_equal(g_in, g)
    np.testing.assert_array_equal(g_w, np.reshape(q_w(matrix, noise), g.shape))


def test_each_layer_has_its_own_documented_noise_stream():
    """Layer i (quantizable order, skipped layers counted) draws from SeedSequence(seed, spawn_key=(i,))."""
    model = SmallCNN(channels=4, hidden=16, rng=np.random.default_rng(0))
    quantize(model, QuantConfig(mode="fqt", seed=7, skip=("features.2",)))
    all_names = [name for name, m in model.named_modules() if isinstance(m, Linear | Conv2d)]
    layers = quantized_layers(model)
    assert len(layers) == len(all_names) - 1 >= 2
    assert len({id(m.fqt.rng) for _, m in layers}) == len(layers)
    for name, m in layers:
        i = all_names.index(name)
        want = np.random.default_rng(np.random.SeedSequence(7, spawn_key=(i,))).bit_generator.random_raw(4)
        np.testing.assert_array_equal(twin(m.fqt.rng).bit_generator.random_raw(4), want, err_msg=name)


def error_correlation(a, b):
    a, b = a.reshape(-1), b.reshape(-1)
    return float(np.corrcoef(a, b)[0, 1])


def test_layers_and_paths_draw_independent_noise():
    """Same G into every layer's Q_b, and into one layer's Q_b and Q_w: uncorrelated errors (|r| < 5/√n)."""
    config = QuantConfig(mode="fqt", grad_quantizer="ptq", weight_grad_quantizer="ptq", grad_bits=2, seed=3)
    r = np.random.default_rng(5)
    model = quantize(Sequential(*(Linear(64, 64, rng=r, dtype=np.float64) for _ in range(3))), config)
    g = r.uniform(-1, 1, (64, 64))
    limit = 5 / math.sqrt(g.size)
    errors = []
    for _, layer in quantized_layers(model):
        g_in, _ = layer.fqt.bifurcate(g, kind="linear", need_input=True, need_weight=False)
        errors.append(g_in - g)
    for i in range(3):
        for j in range(i):
            assert abs(error_correlation(errors[i], errors[j])) < limit, (i, j)
    g_in, g_w = quantized_layers(model)[0][1].fqt.bifurcate(
        g, kind="linear", need_input=True, need_weight=True
    )
    assert abs(error_correlation(g_in - g, g_w - g)) < limit
    # the harness would see correlated noise: the same stream twice gives r = 1
    same = config.with_(seed=3)
    a = quantize(Sequential(Linear(64, 64, rng=r, dtype=np.float64)), same)[0].fqt
    b = quantize(Sequential(Linear(64, 64, rng=r, dtype=np.float64)), same)[0].fqt
    ea = a.bifurcate(g, kind="linear", need_input=True, need_weight=False)[0] - g
    eb = b.bifurcate(g, kind="linear", need_input=True, need_weight=False)[0] - g
    assert error_correlation(ea, eb) > 1 - 1e-12


@pytest.mark.parametrize("quantizer", ["ptq", "psq", "bhq", "shift"])
def test_attention_without_gradient_quantization_is_bit_for_bit_qat(quantizer):
    def grads(config, off=False):
        mha = quantize(MultiHeadAttention(8, 2, rng=np.random.default_rng(0), dtype=np.float64), config)
        x = Tensor(np.random.default_rng(1).standard_normal((2, 5, 8)), requires_grad=True)

        def out_grad(shape):
            return np.random.default_rng(2).standard_normal(shape)

        if off:
            with gradient_quantization(mha, False):
                return backward_grads(mha, [x], out_grad)
        return backward_grads(mha, [x], out_grad)

    qat = grads(QuantConfig(mode="qat"))
    fqt = QuantConfig(mode="fqt", grad_quantizer=quantizer, grad_bits=4)
    for got in (grads(fqt, off=True), grads(fqt.with_(grad_quantizer="none", weight_grad_quantizer="none"))):
        assert got.keys() == qat.keys()
        for name in qat:
            np.testing.assert_array_equal(got[name], qat[name], err_msg=name)
    on = grads(fqt)
    assert all(not np.array_equal(on[n], qat[n]) for n in qat if n.endswith("weight") or n == "input0")


# -- what the mutation run found unguarded ---------------------------------------------------------


@pytest.mark.parametrize("mode", ["qat", "fqt"])
def test_strided_padded_conv_without_bias_runs_the_configured_convolution(mode):
    """stride 2, padding 1, no bias: output and float gradients are the float op's on X_q, W_q."""
    from refqt import ops
    from refqt.quant import quantize_forward

    r = np.random.default_rng(6)
    conv = Conv2d(2, 3, 3, stride=2, padding=1, bias=False, rng=r, dtype=np.float64)
    model = quantize(Sequential(conv), QuantConfig(mode=mode, grad_quantizer="psq", grad_bits=4))
    x = r.standard_normal((2, 2, 7, 7))
    out = model(Tensor(x))
    assert out.shape == (2, 3, 4, 4)
    xq = Tensor(quantize_forward(x, 8, "affine"), requires_grad=True)
    wq = Tensor(quantize_forward(conv.weight.data, 8, "zero_aligned"), requires_grad=True)
    ref = ops.conv2d(xq, wq, None, stride=2, padding=1)
    np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-12, atol=1e-12)
    g = r.standard_normal(out.shape)
    ref.backward(g)
    with gradient_quantization(model, False):
        out.backward(g)
    np.testing.assert_allclose(conv.weight.grad, wq.grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["linear", "conv"])
@pytest.mark.parametrize("frozen", [("weight",), ("bias",), ("weight", "bias")])
def test_frozen_parameters_get_no_gradient_and_the_rest_still_flows(kind, frozen):
    """Each gradient (input, weight, bias) is computed iff it is needed; Q_w runs iff the weight needs one."""
    r = np.random.default_rng(7)
    if kind == "linear":
        layer, x = Linear(4, 5, rng=r, dtype=np.float64), r.standard_normal((3, 4))
    else:
        layer, x = Conv2d(2, 3, 3, rng=r, dtype=np.float64), r.standard_normal((2, 2, 5, 5))
    model = quantize(Sequential(layer), QuantConfig(mode="fqt", grad_quantizer="ptq", grad_bits=4))
    for name in frozen:
        getattr(layer, name).requires_grad = False
    layer.fqt.grad_quantizer, layer.fqt.weight_grad_quantizer = Tag(), Tag()
    xt = Tensor(x, requires_grad=True)
    out = model(xt)
    out.backward(np.ones(out.shape))
    assert xt.grad is not None and np.any(xt.grad != 0)
    for name in ("weight", "bias"):
        assert (getattr(layer, name).grad is None) == (name in frozen), name
    assert len(layer.fqt.grad_quantizer.calls) == 1
    assert len(layer.fqt.weight_grad_quantizer.calls) == (0 if "weight" in frozen else 1)


@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_weight_path_buffer_follows_dtype_and_backend(kind):
    """One hook, one shape, in float32, float64, array_api_strict: each Q_w(G) is a fresh quantizer's."""
    from refqt.backend import get_backend

    config = QuantConfig(mode="fqt", grad_quantizer="psq", weight_grad_bits=6, seed=4)
    layer = Linear(5, 7, rng=RNG) if kind == "linear" else Conv2d(2, 7, 3, rng=RNG)
    hook = quantize(Sequential(layer), config)[0].fqt
    shape = (3, 4, 7) if kind == "linear" else (3, 7, 2, 2)
    g64 = np.random.default_rng(8).standard_normal(shape)
    strict = get_backend("array_api_strict")
    q_w = make_gradient_quantizer("psq-column", 6)
    for g in (g64.astype(np.float32), g64, strict.asarray(g64)):
        noise = twin(hook.rng)
        _, g_w = hook.bifurcate(g, kind=kind, need_input=False, need_weight=True)
        matrix = np.reshape(strict.to_numpy(g), (-1, 7)) if kind == "linear" else strict.to_numpy(g)
        want = q_w(matrix.astype(strict.to_numpy(g).dtype), noise)
        assert type(g_w) is type(g) and g_w.dtype == g.dtype
        np.testing.assert_array_equal(strict.to_numpy(g_w).reshape(want.shape), want)


@pytest.mark.parametrize("bits", [1, 16])
def test_every_bit_width_from_1_to_16_is_accepted(bits):
    for field in ("act_bits", "weight_bits", "grad_bits", "weight_grad_bits"):
        assert getattr(QuantConfig(**{field: bits}), field) == bits
    with pytest.raises(ValueError, match="QuantConfig: weight_grad_quantizer must be one of"):
        QuantConfig(weight_grad_quantizer="psq")
    with pytest.raises(TypeError, match="QuantConfig: skip must be a tuple of patterns, not one string"):
        QuantConfig(skip="conv1")


def test_loading_a_quantizer_state_without_every_layer_names_the_missing_one():
    from refqt.fqt import load_quantizer_state, quantizer_state

    model = quantize(SmallCNN(channels=4, hidden=16, rng=np.random.default_rng(0)), CONFIG)
    state = quantizer_state(model)
    missing = next(iter(state))
    del state[missing]
    with pytest.raises(KeyError, match=f"no state for quantized layers.*{missing}"):
        load_quantizer_state(model, state)

"""Transparent exact / QAT / FQT: the guarantees of refqt.fqt, each a test."""

import numpy as np
import pytest

from refqt import Tensor, ops
from refqt.backend import emulate_device, get_backend
from refqt.data import load_digits
from refqt.fqt import QuantConfig, gradient_quantization, quantize, quantized_layers
from refqt.models import MLP, SmallCNN
from refqt.nn import Conv2d, Linear, MultiHeadAttention
from refqt.quant import quantize_forward
from refqt.stats import capture_gradients


def digits_batch(n=16, seed=0):
    x, y = load_digits()
    idx = np.random.default_rng(seed).choice(len(y), n, replace=False)
    return x[idx], y[idx]


def loss_of(model, batch):
    x, y = batch
    return ops.cross_entropy(model(Tensor(x)), y)


def grads(model, batch):
    model.zero_grad()
    loss_of(model, batch).backward()
    out = {name: p.grad.copy() for name, p in model.named_parameters()}
    model.zero_grad()
    return out


def assert_same(a, b):
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


MODELS = [
    pytest.param(lambda: MLP(hidden=32, rng=np.random.default_rng(0)), id="mlp"),
    pytest.param(lambda: SmallCNN(channels=4, hidden=16, rng=np.random.default_rng(0)), id="cnn"),
]


@pytest.mark.parametrize("make", MODELS)
def test_exact_mode_is_bit_for_bit_the_plain_model(make):
    batch = digits_batch()
    plain = grads(make(), batch)
    model = quantize(make(), QuantConfig(mode="fqt", grad_bits=4))
    quantize(model, QuantConfig(mode="exact"))  # switching back must undo everything
    assert quantized_layers(model) == []
    assert_same(grads(model, batch), plain)


@pytest.mark.parametrize("make", MODELS)
@pytest.mark.parametrize("quantizer", ["ptq", "psq", "bhq", "shift"])
def test_fqt_without_gradient_quantization_is_bit_for_bit_qat(make, quantizer):
    batch = digits_batch()
    qat = grads(quantize(make(), QuantConfig(mode="qat")), batch)
    fqt_model = quantize(make(), QuantConfig(mode="fqt", grad_quantizer=quantizer, grad_bits=4))
    with gradient_quantization(fqt_model, False):
        assert_same(grads(fqt_model, batch), qat)
    none = quantize(make(), QuantConfig(mode="fqt", grad_quantizer="none", weight_grad_quantizer="none"))
    assert_same(grads(none, batch), qat)
    # ... and with quantization on, the gradients do differ.
    on = grads(fqt_model, batch)
    assert any(not np.array_equal(on[n], qat[n]) for n in qat)


def test_qat_gradients_are_float_gradients_at_quantized_operands():
    rng = np.random.default_rng(3)
    model = quantize(MLP(hidden=16, depth=1, rng=rng, dtype=np.float64), QuantConfig(mode="qat", act_bits=4))
    x = rng.standard_normal((8, 64))
    first = quantized_layers(model)[0][1]
    out = first(Tensor(x))
    out.backward(np.ones(out.shape))
    g_w_qat = first.weight.grad.copy()
    # Float op on the quantized operands, by hand.
    xq = Tensor(quantize_forward(x, 4, kind="affine"))
    wq = Tensor(quantize_forward(first.weight.data, 8, kind="zero_aligned"), requires_grad=True)
    ref = ops.linear(xq, wq, Tensor(first.bias.data))
    ref.backward(np.ones(ref.shape))
    np.testing.assert_array_equal(out.numpy(), ref.numpy())
    np.testing.assert_allclose(g_w_qat, wq.grad, rtol=1e-12, atol=0)


@pytest.mark.parametrize("quantizer", ["ptq", "psq", "bhq"])
def test_same_seed_same_gradients_other_seed_other_gradients(quantizer):
    batch = digits_batch()

    def run(seed):
        model = SmallCNN(channels=4, hidden=16, rng=np.random.default_rng(0))
        return grads(
            quantize(model, QuantConfig(mode="fqt", grad_quantizer=quantizer, grad_bits=4, seed=seed)), batch
        )

    assert_same(run(7), run(7))
    a, b = run(7), run(8)
    assert any(not np.array_equal(a[n], b[n]) for n in a)


def test_state_dict_names_survive_mode_switches():
    model = SmallCNN(channels=4, hidden=16, rng=np.random.default_rng(0))
    names = list(model.state_dict())
    for mode in ("qat", "fqt", "exact", "fqt"):
        quantize(model, QuantConfig(mode=mode))
        assert list(model.state_dict()) == names


def test_skip_patterns_leave_layers_in_float():
    model = SmallCNN(channels=4, hidden=16, rng=np.random.default_rng(0))
    quantize(model, QuantConfig(mode="fqt", skip=("features.0", "classifier.*")))
    assert [name for name, _ in quantized_layers(model)] == ["features.2"]


def test_weight_path_follows_the_authors_choice():
    model = SmallCNN(channels=4, hidden=16, rng=np.random.default_rng(0))
    quantize(model, QuantConfig(mode="fqt", grad_quantizer="psq"))
    hook = quantized_layers(model)[0][1].fqt
    assert (type(hook.weight_grad_quantizer).__name__, hook.weight_grad_quantizer.axis) == ("PSQ", "column")
    quantize(model, QuantConfig(mode="fqt", grad_quantizer="ptq"))
    assert type(quantized_layers(model)[0][1].fqt.weight_grad_quantizer).__name__ == "PTQ"


def test_attention_projections_are_quantized_per_token():
    rng = np.random.default_rng(0)
    mha = MultiHeadAttention(16, 2, rng=rng)
    quantize(mha, QuantConfig(mode="fqt", grad_quantizer="psq", grad_bits=4))
    names = [name for name, _ in quantized_layers(mha)]
    assert len(names) == 4
    x = Tensor(rng.standard_normal((3, 5, 16)).astype(np.float32), requires_grad=True)
    with capture_gradients(mha) as captured:
        out = mha(x, x, x)
        out.backward(np.ones(out.shape, dtype=np.float32))
    for name in names:
        (record,) = captured[name]
        assert record["grad"].shape == (3, 5, 16)
        # one row per token: 15 rows of 16 entries
        assert record["encoded"].codes.shape[-2:] == (15, 16)


def test_quantize_rejects_a_non_config():
    with pytest.raises(TypeError, match="QuantConfig"):
        quantize(MLP(rng=np.random.default_rng(0)), {"mode": "fqt"})


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("mode", "int8", "mode must be one of"),
        ("grad_bits", 0, "grad_bits must be an integer in 1..16"),
        ("act_bits", 17, "act_bits"),
        ("grad_quantizer", "rtn", "grad_quantizer must be one of"),
        ("weight_grad_bits", 4.0, "weight_grad_bits"),
        ("seed", None, "seed must be an integer ≥ 0"),  # None would draw OS entropy: not reproducible
        ("seed", -1, "seed must be an integer ≥ 0"),
        ("seed", 1.5, "seed must be an integer ≥ 0"),
        ("seed", True, "seed must be an integer ≥ 0"),
    ],
)
def test_bad_configs_are_rejected(field, value, message):
    with pytest.raises(ValueError, match=message):
        QuantConfig(**{field: value})


def test_skip_patterns_must_be_strings_and_match_a_layer():
    with pytest.raises(TypeError, match="skip must hold layer-name patterns"):
        QuantConfig(mode="fqt", skip=[1, 2])
    model = SmallCNN(channels=4, hidden=16, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"\['feature.0'\] match no Linear / Conv2d layer.*features.0"):
        quantize(model, QuantConfig(mode="fqt", skip=("feature.0", "classifier.*")))
    with pytest.raises(TypeError, match=r"refqt\.nn\.Module"):
        quantize(object(), QuantConfig(mode="fqt"))


def test_an_empty_batch_runs_through_the_fqt_conv_and_linear():
    """Zero samples: Q_b / Q_w see (0, D) rows; the gradients are zeros, not a reshape error."""
    rng = np.random.default_rng(0)
    cases = ((Conv2d(2, 3, 3, padding=1, rng=rng), (0, 2, 4, 4)), (Linear(4, 3, rng=rng), (0, 4)))
    for layer, shape in cases:
        quantize(layer, QuantConfig(mode="fqt"))
        x = Tensor(np.zeros(shape, np.float32), requires_grad=True)
        ops.sum(layer(x)).backward()
        assert x.grad.shape == shape
        assert np.all(layer.weight.grad == 0)


@pytest.mark.parametrize("quantizer", ["ptq", "psq", "bhq", "shift"])
def test_fqt_gives_the_same_gradients_on_every_backend(backend, quantizer):
    """The same seed draws the same noise everywhere, so backends agree to round-off."""
    x, y = digits_batch(8)

    def run(b):
        model = SmallCNN(channels=4, hidden=16, rng=np.random.default_rng(0), dtype=np.float64)
        model.to(b)
        quantize(model, QuantConfig(mode="fqt", grad_quantizer=quantizer, grad_bits=4, seed=1))
        ops.cross_entropy(model(Tensor(b.asarray(x.astype(np.float64)))), b.asarray(y)).backward()
        return {n: b.to_numpy(p.grad) for n, p in model.named_parameters()}

    with emulate_device(backend.name == "cupy"):  # CuPy takes the device path: counter noise, same on NumPy
        ref = run(get_backend("numpy"))
    got = run(backend)
    for name in ref:
        np.testing.assert_allclose(got[name], ref[name], rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.parametrize(("kind", "shape"), [("conv", (6, 4, 5, 3)), ("linear", (2, 9, 4))])
def test_weight_path_is_quantized_per_output_channel(kind, shape):
    """Scaling one output channel 1000× leaves every other channel's Q_w error exactly as it was."""
    from refqt.fqt.layer import LayerQuantizer

    g = np.random.default_rng(0).standard_normal(shape)
    big = g.copy()
    channel = (slice(None), 2) if kind == "conv" else (..., 2)
    big[channel] *= 1000.0

    def weight_path(grad):
        config = QuantConfig(mode="fqt", grad_quantizer="psq")  # Q_w: 8 bits per channel
        hook = LayerQuantizer("layer", config, np.random.default_rng(5))
        _, g_w = hook.bifurcate(grad, kind=kind, need_input=False, need_weight=True)
        assert g_w.shape == grad.shape
        # one grid per channel, not finer: every value is min_c + k·(max_c − min_c)/255
        axis = 1 if kind == "conv" else -1
        per_channel = np.moveaxis(grad, axis, 0).reshape(grad.shape[axis], -1)
        lo, step = per_channel.min(axis=1, keepdims=True), np.ptp(per_channel, axis=1, keepdims=True) / 255
        k = (np.moveaxis(g_w, axis, 0).reshape(per_channel.shape) - lo) / step
        np.testing.assert_allclose(k, np.round(k), atol=1e-6)
        return g_w - grad

    err, err_big = weight_path(g), weight_path(big)
    keep = np.ones(shape[1] if kind == "conv" else shape[-1], dtype=bool)
    keep[2] = False
    pick = (slice(None), keep) if kind == "conv" else (..., keep)
    np.testing.assert_array_equal(err_big[pick], err[pick])
    assert np.abs(err_big[channel]).max() > 100 * np.abs(err[channel]).max()


def test_reused_weight_path_buffer_never_aliases_what_autodiff_keeps():
    """Q_w writes into a buffer kept by the hook: G is untouched and later steps see their own Q_w(G)."""
    batch = digits_batch()
    config = QuantConfig(mode="fqt", grad_quantizer="bhq", grad_bits=4, seed=3)

    def model():
        return quantize(SmallCNN(channels=4, hidden=16, rng=np.random.default_rng(0)), config)

    a, b = model(), model()
    first, second = grads(a, batch), grads(a, batch)
    assert_same(grads(b, batch), first)
    assert_same(grads(b, batch), second)
    hook = quantized_layers(a)[0][1].fqt
    g = np.random.default_rng(1).standard_normal((2, 4, 8, 8)).astype(np.float32)
    kept = g.copy()
    _, g_w = hook.bifurcate(g, kind="conv", need_input=True, need_weight=True)
    np.testing.assert_array_equal(g, kept)
    assert not np.shares_memory(g_w, g)

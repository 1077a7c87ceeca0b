"""Names a PyTorch user knows: each either means what it means in PyTorch or fails loudly.

docs/pytorch.md lists these decisions. PyTorch is not installed here, so each
check is against the definition: a hand-written loop of Adam's formula, the
standard library's ``math.erf``, NumPy's ``swapaxes`` and ``var``.
"""

import math

import numpy as np
import pytest

from refqt import Tensor, checkpoint, nn, ops
from refqt.nn import Parameter
from refqt.ops.gelu import erf, normal_cdf
from refqt.optim import Adam, AdamW

RNG = np.random.default_rng(0)


# -- Tensor.transpose follows PyTorch: swap two axes ------------------------------------
@pytest.mark.parametrize(("shape", "dims"), [((2, 3), (0, 1)), ((2, 3, 4), (0, 2)), ((2, 3, 4), (-1, 1))])
def test_transpose_swaps_two_axes_as_in_pytorch(shape, dims):
    x = RNG.standard_normal(shape)
    t = Tensor(x, requires_grad=True)
    out = t.transpose(*dims)
    np.testing.assert_array_equal(out.numpy(), np.swapaxes(x, *dims))
    out.sum().backward()
    np.testing.assert_array_equal(t.grad, np.ones(shape))


def test_transpose_is_not_numpys_full_permutation():
    x = Tensor(np.zeros((2, 3, 4)))
    with pytest.raises(TypeError):
        x.transpose()  # NumPy's "reverse all axes"; PyTorch needs two dims
    with pytest.raises(TypeError):
        x.transpose(2, 0, 1)  # NumPy's full permutation: use permute
    assert x.permute(2, 0, 1).shape == (4, 2, 3)
    assert x.permute((2, 0, 1)).shape == (4, 2, 3)
    assert x.T.shape == (4, 3, 2)


# -- batch norm: eps and momentum by keyword only ----------------------------------------
@pytest.mark.parametrize("layer", [nn.BatchNorm1d, nn.BatchNorm2d])
def test_batch_norm_layers_take_eps_and_momentum_by_keyword_only(layer):
    with pytest.raises(TypeError):
        layer(4, 1e-3, 0.2)  # PyTorch's (eps, momentum) order
    bn = layer(4, eps=1e-3, momentum=0.2)
    assert (bn.eps, bn.momentum) == (1e-3, 0.2)
    assert "eps=0.001, momentum=0.2" in repr(bn)


def test_batch_norm_momentum_means_what_it_means_in_pytorch():
    """running ← (1 − momentum)·running + momentum·batch statistic (unbiased variance)."""
    x = RNG.standard_normal((6, 3)) * 2 + 1
    bn = nn.BatchNorm1d(3, momentum=0.3, dtype=np.float64)
    bn(Tensor(x))
    np.testing.assert_allclose(bn.running_mean, 0.3 * x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(bn.running_var, 0.7 + 0.3 * x.var(axis=0, ddof=1), rtol=1e-12)


def test_batch_norm_op_takes_everything_after_x_by_keyword():
    x = Tensor(RNG.standard_normal((4, 3)))
    rm, rv, w, b = np.zeros(3), np.ones(3), np.ones(3), np.zeros(3)
    with pytest.raises(TypeError):
        ops.batch_norm(x, rm, rv, w, b, True)  # F.batch_norm's order
    with pytest.raises(TypeError):
        ops.batch_norm(x, w, b, rm, rv, True)  # the old refqt order
    out = ops.batch_norm(x, gamma=w, beta=b, running_mean=rm, running_var=rv, training=True)
    assert out.shape == (4, 3) and not np.array_equal(rm, np.zeros(3))


# -- attention: no silent dropout-for-causal or dropout-for-bias -------------------------
def test_attention_takes_causal_and_bias_by_keyword_only():
    gen = np.random.default_rng(1)
    q = Tensor(gen.standard_normal((2, 3, 4)))
    with pytest.raises(TypeError):
        ops.scaled_dot_product_attention(q, q, q, None, 0.1)  # PyTorch's dropout_p
    with pytest.raises(TypeError):
        nn.MultiHeadAttention(4, 2, 0.1, rng=gen)  # PyTorch's dropout
    mha = nn.MultiHeadAttention(4, 2, bias=False, rng=gen, dtype=np.float64)
    assert mha.q_proj.bias is None
    with pytest.raises(TypeError):
        mha(q, q, q, None, True)  # PyTorch's need_weights
    causal = mha(q, causal=True).numpy()
    # Position 0 sees only itself, so changing later positions leaves it alone.
    later = q.numpy().copy()
    later[:, 1:] += 1.0
    np.testing.assert_allclose(mha(Tensor(later), causal=True).numpy()[:, 0], causal[:, 0], rtol=1e-12)


# -- Adam counts steps per parameter ------------------------------------------------------
def adam_loop(grads, lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False):
    """Adam by its formula for one scalar weight w₀ = 1; ``None`` = no gradient that step.

    t counts this weight's updates (Kingma & Ba's t, PyTorch's state['step']).
    """
    w, m, v, t = 1.0, 0.0, 0.0, 0
    for g in grads:
        if g is None:
            continue
        t += 1
        if decoupled:
            w -= lr * weight_decay * w
        else:
            g = g + weight_decay * w
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g * g
        w -= lr * (m / (1 - betas[0] ** t)) / (math.sqrt(v / (1 - betas[1] ** t)) + eps)
    return w


def late_gradients(n=20, first=6):
    """Gradients of a parameter that first gets one at step ``first`` (1-based)."""
    g = np.random.default_rng(3).standard_normal(n)
    return [None if k + 1 < first else float(g[k]) for k in range(n)]


@pytest.mark.parametrize(
    ("make", "kwargs"),
    [
        (Adam, {"weight_decay": 0.0, "decoupled": False}),
        (Adam, {"weight_decay": 0.1, "decoupled": False}),
        (AdamW, {"weight_decay": 0.1, "decoupled": True}),
    ],
)
def test_adam_bias_correction_counts_each_parameters_own_steps(make, kwargs):
    grads = late_gradients()
    always, late = Parameter(np.ones(1)), Parameter(np.ones(1))
    opt = make([always, late], lr=0.1, weight_decay=kwargs["weight_decay"])
    for g in grads:
        always.grad = np.full(1, 0.5)
        late.grad = None if g is None else np.full(1, g)
        opt.step()
    expected = adam_loop(grads, **kwargs)
    assert late.numpy()[0] == pytest.approx(expected, abs=1e-12)
    assert opt.state[1]["step"] == 15 and opt.state[0]["step"] == 20 and opt.steps == 20
    # The rule this replaces (t = the optimizer's step count) lands measurably elsewhere,
    # so the check above would catch it.
    w, m, v = 1.0, 0.0, 0.0
    for t, g in enumerate(grads, start=1):
        if g is not None:
            g = g + kwargs["weight_decay"] * w if not kwargs["decoupled"] else g
            w -= 0.1 * kwargs["weight_decay"] * w if kwargs["decoupled"] else 0.0
            m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
            w -= 0.1 * (m / (1 - 0.9**t)) / (math.sqrt(v / (1 - 0.999**t)) + 1e-8)
    assert abs(w - expected) > 0.05


def test_adam_counters_survive_a_checkpoint_bit_for_bit(tmp_path):
    """Stop mid-run with parameters at different counts; the resumed run matches the straight one."""
    grads = late_gradients(n=12, first=4)
    gen = np.random.default_rng(5)
    dense = [gen.standard_normal((3, 2)) for _ in grads]

    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = Parameter(np.ones((3, 2)))
            self.b = Parameter(np.ones((3, 2)))

    def run(model, opt, steps):
        for k in steps:
            model.a.grad = dense[k]
            model.b.grad = None if grads[k] is None else np.full((3, 2), grads[k])
            opt.step()

    straight = Two()
    opt = Adam(straight.parameters(), lr=0.05)
    run(straight, opt, range(12))

    first = Two()
    opt1 = Adam(first.parameters(), lr=0.05)
    run(first, opt1, range(6))
    checkpoint.save(tmp_path / "ckpt.npz", first, opt1)
    resumed = Two()
    opt2 = Adam(resumed.parameters(), lr=0.5)
    checkpoint.load(tmp_path / "ckpt.npz", resumed, opt2)
    assert [s["step"] for s in opt2.state] == [6, 3]
    assert all(type(s["step"]) is int for s in opt2.state)
    run(resumed, opt2, range(6, 12))
    for name in ("a", "b"):
        np.testing.assert_array_equal(getattr(resumed, name).numpy(), getattr(straight, name).numpy())


def test_adam_state_saved_before_per_parameter_counts_takes_the_global_count():
    p = Parameter(np.ones(2))
    opt = Adam([p], lr=0.1)
    for _ in range(3):
        p.grad = np.full(2, 0.5)
        opt.step()
    old = opt.state_dict()
    del old["state"][0]["step"]  # the layout older checkpoints have
    fresh = Adam([Parameter(p.numpy().copy())], lr=0.1)
    fresh.load_state_dict(old)
    assert fresh.state[0]["step"] == 3
    with pytest.raises(ValueError, match=r"Adam.load_state_dict: counter 'step' of parameter 0"):
        fresh.load_state_dict({"hyperparameters": old["hyperparameters"], "state": [{"step": np.ones(2)}]})


# -- var: the sample variance by default, as torch.var ----------------------------------
def test_var_defaults_to_the_sample_variance_and_takes_correction_by_keyword():
    x = RNG.standard_normal((5, 4))
    np.testing.assert_allclose(ops.var(Tensor(x)).numpy(), np.var(x, ddof=1), rtol=1e-12)
    np.testing.assert_allclose(Tensor(x).var(axis=0).numpy(), np.var(x, axis=0, ddof=1), rtol=1e-12)
    np.testing.assert_allclose(
        Tensor(x).var(axis=1, correction=0).numpy(), np.var(x, axis=1, ddof=0), rtol=1e-12
    )
    with pytest.raises(TypeError):
        ops.var(Tensor(x), 0, False, 0)  # correction is keyword-only
    with pytest.raises(ValueError, match="var: 1 elements"):
        ops.var(Tensor(np.ones(1)))  # PyTorch gives NaN; here a one-line error


# -- GELU: exact by default, tanh on request ---------------------------------------------
def exact_gelu(x):
    """x Φ(x), Φ(x) = ½ erfc(−x/√2) (the same as ½(1 + erf(x/√2)) but exact in the lower tail)."""
    return x * 0.5 * math.erfc(-x / math.sqrt(2))


def test_erf_and_normal_cdf_match_the_standard_library():
    z = np.concatenate([np.linspace(-7, 7, 2801), np.geomspace(1e-10, 1, 50), -np.geomspace(1e-10, 1, 50)])
    ref = np.array([math.erf(v) for v in z])
    np.testing.assert_allclose(erf(z), ref, rtol=1e-13, atol=0)
    x = np.linspace(-35, 9, 4401)
    cdf = np.array([0.5 * math.erfc(-v / math.sqrt(2)) for v in x])
    np.testing.assert_allclose(normal_cdf(x), cdf, rtol=1e-11, atol=0)  # the lower tail too
    z32 = z.astype(np.float32)
    np.testing.assert_allclose(erf(z32), [math.erf(v) for v in z32.astype(float)], rtol=2e-6, atol=1e-7)
    assert erf(z32).dtype == np.float32


def test_gelu_is_exact_by_default_with_its_gradient():
    x = np.linspace(-9, 9, 721)
    t = Tensor(x, requires_grad=True)
    out = ops.gelu(t)
    np.testing.assert_allclose(out.numpy(), [exact_gelu(v) for v in x], rtol=1e-13, atol=1e-300)
    out.sum().backward()
    h = 1e-6  # central difference of the definition, not of our closed form
    numeric = [(exact_gelu(v + h) - exact_gelu(v - h)) / (2 * h) for v in x]
    np.testing.assert_allclose(t.grad, numeric, atol=1e-8)
    np.testing.assert_allclose(nn.GELU()(Tensor(x)).numpy(), out.numpy(), rtol=0)
    np.testing.assert_allclose(Tensor(x).gelu().numpy(), out.numpy(), rtol=0)


def test_gelu_tanh_form_on_request_and_how_far_apart_the_two_are():
    x = np.linspace(-6, 6, 12001)
    exact = ops.gelu(Tensor(x)).numpy()
    tanh = ops.gelu(Tensor(x), approximate="tanh").numpy()
    np.testing.assert_allclose(
        tanh, 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))), rtol=1e-13
    )
    np.testing.assert_allclose(nn.GELU(approximate="tanh")(Tensor(x)).numpy(), tanh, rtol=0)
    gap = np.abs(exact - tanh).max()
    assert 3e-4 < gap < 6e-4  # about 4.7e-4: close, but not the same function
    with pytest.raises(ValueError, match="gelu: approximate must be 'none' or 'tanh', got 'exact'"):
        ops.gelu(Tensor(x), approximate="exact")
    with pytest.raises(ValueError, match="GELU: approximate must be"):
        nn.GELU("erf")

"""The gradient quantizers' device path (refqt/gpu/quantize.py), run on NumPy under emulate_device.

Statistical tests are seeded; each states its false-alarm rate and shows that
a wrong quantizer (round-to-nearest, a doubled step) is caught.
"""

import numpy as np
import pytest
from bernstein import bernstein_rejections

from refqt.backend import emulate_device, get_backend, gpu_available
from refqt.gpu.householder import apply_transform_batched, elementwise_variance_batched
from refqt.quant import BHQ, PSQ, PTQ, PerSampleShift, ZeroPSQ
from refqt.quant.householder import apply_transform, block_householder

QUANTIZERS = {
    "ptq": lambda b: PTQ(b),
    "psq": lambda b: PSQ(b),
    "psq-channel": lambda b: PSQ(b, axis="channel"),
    "psq-zero": lambda b: ZeroPSQ(b),
    "psq-zero-channel": lambda b: ZeroPSQ(b, axis="channel"),
    "shift": lambda b: PerSampleShift(b),
    "bhq": lambda b: BHQ(b),
}


def gradient(shape, seed=0, dtype=np.float32):
    """A gradient-like array: rows of very different scales, a quarter exact zeros (as after a ReLU)."""
    rng = np.random.default_rng(seed)
    scale = np.exp(2.0 * rng.standard_normal((shape[0],) + (1,) * (len(shape) - 1)))
    x = rng.standard_normal(shape) * scale
    x[rng.random(shape) < 0.25] = 0.0
    return x.astype(dtype)


@pytest.mark.parametrize("name", sorted(QUANTIZERS))
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_device_call_is_quantize_with_its_own_noise(name, dtype):
    q = QUANTIZERS[name](4)
    x = gradient((9, 3, 5, 7), 1, dtype)
    with emulate_device():
        a = q(x, np.random.default_rng(3))
        out = np.empty_like(x)
        b = q(x, np.random.default_rng(3), out=out)
        c = q.quantize(x, q.uniform(x, np.random.default_rng(3)))
    assert a.dtype == x.dtype and a.shape == x.shape and b is out
    assert np.array_equal(a, b) and np.array_equal(a, c)


@pytest.mark.parametrize("name", sorted(QUANTIZERS))
def test_device_grid_is_the_cpu_grid(name):
    """Device rounding with counter noise u = the CPU reference's quantize(x, u): same grid, same zeros."""
    q = QUANTIZERS[name](5)
    x = gradient((17, 2, 3, 5), 2)
    with emulate_device():
        u = q.uniform(x, np.random.default_rng(8))
        device = q(x, np.random.default_rng(8))
    cpu = q.quantize(x, u)  # outside emulate_device: the reference path, its own transform
    if name == "bhq":  # the batched transform sums in another order: float round-off, rarely a level
        assert np.mean(device != cpu) < 1e-3
        np.testing.assert_allclose(device, cpu, atol=float(np.abs(x).max()) * 0.1)
    else:
        assert np.array_equal(device, cpu)
    if name in ("ptq", "psq-zero", "shift"):
        assert np.all(device[x == 0] == 0)


def test_cpu_path_is_unchanged_and_differs_from_the_device_path():
    q = PSQ(4)
    x = gradient((8, 40), 3)
    cpu = q(x, np.random.default_rng(1))
    assert np.array_equal(cpu, q.reference(x, np.random.default_rng(1)))  # NoiseStream codes, as before
    with emulate_device():
        dev = q(x, np.random.default_rng(1))
    assert not np.array_equal(cpu, dev)


def test_same_seed_same_gradients_and_one_draw_per_call():
    q = BHQ(4)
    x = gradient((16, 30), 4)
    with emulate_device():
        g1, g2 = np.random.default_rng(11), np.random.default_rng(11)
        a1, a2 = q(x, g1), q(x, g1)
        b1, b2 = q(x, g2), q(x, g2)
    assert np.array_equal(a1, b1) and np.array_equal(a2, b2)
    assert not np.array_equal(a1, a2)
    after = np.random.default_rng(11)
    after.bit_generator.random_raw(2)
    assert g1.bit_generator.state == after.bit_generator.state  # one 64-bit key per quantization


def device_samples(q, x, count, seed):
    with emulate_device():
        rng = np.random.default_rng(seed)
        return np.stack([q(x, rng) for _ in range(count)]).astype(np.float64)


@pytest.mark.parametrize("name", sorted(QUANTIZERS))
def test_device_path_unbiased_and_nearest_rounding_is_caught(name):
    """Bernstein per element, Bonferroni over the tensor: false alarm ≤ α = 1e-6."""
    q = QUANTIZERS[name](3)
    x = gradient((6, 2, 3, 4), 5, np.float64)
    samples = device_samples(q, x, 3000, 6)
    with emulate_device():
        var = q.elementwise_variance(x)
        step_bound = float(np.max(np.abs(samples - x))) + 1e-12
    assert bernstein_rejections(samples, x, var, step_bound, alpha=1e-6) == 0
    with emulate_device():
        nearest = np.stack([q.quantize(x, np.full(x.shape, 0.5))] * 3000)  # biased: must be rejected
    assert bernstein_rejections(nearest, x, var, step_bound, alpha=1e-6) > 0


@pytest.mark.parametrize("name", sorted(QUANTIZERS))
def test_exact_variance_matches_monte_carlo(name):
    """Σ‖Q − x‖² over S draws vs the exact E: |error| < 5 standard errors (α ≈ 6e-7, normal approx.)."""
    q = QUANTIZERS[name](4)
    x = gradient((8, 3, 4, 4), 7, np.float64)
    samples = device_samples(q, x, 2000, 9)
    per_draw = np.sum((samples - x) ** 2, axis=(1, 2, 3, 4))
    with emulate_device():
        exact = q.conditional_variance(x)
        elementwise = q.elementwise_variance(x)
    assert exact == pytest.approx(float(elementwise.sum()), rel=1e-9)
    se = per_draw.std(ddof=1) / np.sqrt(per_draw.size)
    assert abs(per_draw.mean() - exact) < 5 * se
    assert abs(per_draw.mean() - 4 * exact) > 5 * se  # a quantizer with twice the step is caught
    np.testing.assert_allclose(samples.var(axis=0), elementwise, atol=10 * elementwise.max() / np.sqrt(2000))


def test_bin_codes_on_the_device_path_decode_to_the_quantized_values():
    q = PSQ(4, axis="channel")
    x = gradient((5, 4, 3, 3), 10)
    with emulate_device():
        u = q.uniform(x, np.random.default_rng(2))
        enc = q.encode(x, u)
        assert np.array_equal(q.decode(enc), q(x, np.random.default_rng(2)))
    assert enc.codes.dtype == np.uint8 and int(enc.codes.max()) <= 15


@pytest.mark.parametrize("shape", [(1, 7), (2, 3), (3, 1), (7, 11), (33, 4, 3, 3), (64, 9), (129, 5)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batched_householder_equals_the_reference_transform(shape, dtype):
    x = gradient(shape, shape[0], dtype).reshape(shape[0], -1)
    t = BHQ(4).transform(x)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for inverse in (False, True):
        ref = apply_transform(t, x, inverse=inverse)
        got = apply_transform_batched(t, x, inverse=inverse)
        assert got.dtype == ref.dtype
        np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * float(np.abs(ref).max()))
    dense = t.inverse_matrix() ** 2 @ np.abs(x.astype(np.float64))  # Var rule from the dense T⁻¹
    v = np.abs(x.astype(np.float64))
    np.testing.assert_allclose(elementwise_variance_batched(t, v), dense, rtol=1e-9)


def test_batched_householder_with_groups_of_one_and_one_big_group():
    ranges = np.array([100.0, 1e-3, 1e-3, 1e-3, 1e-3, 1e-3])  # one large row takes all the small ones
    t = block_householder(ranges)
    assert t.n_large == 1 and t.group_sizes.tolist() == [6]
    x = np.random.default_rng(0).standard_normal((6, 13))
    np.testing.assert_allclose(apply_transform_batched(t, x), t.matrix() @ x, rtol=1e-12, atol=1e-12)
    single = block_householder(np.array([3.0]))  # N = 1: G = 1, T = I
    y = np.arange(4.0).reshape(1, 4)
    np.testing.assert_array_equal(apply_transform_batched(single, y), y)
    roundtrip = apply_transform_batched(t, apply_transform_batched(t, x), inverse=True)
    np.testing.assert_allclose(roundtrip, x, rtol=1e-12, atol=1e-12)


def test_block_formats_keep_the_reference_path():
    from refqt.quant import make_gradient_quantizer

    q = make_gradient_quantizer("mxfp8-e4m3")
    assert q.device_fused is False
    x = gradient((4, 64), 1)
    with emulate_device():
        a = q(x, np.random.default_rng(0))
    assert np.array_equal(a, q(x, np.random.default_rng(0)))


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason="no usable GPU")
@pytest.mark.parametrize("name", sorted(QUANTIZERS))
def test_cupy_equals_the_numpy_mirror_bit_for_bit(name):
    cupy = get_backend("cupy").native
    q = QUANTIZERS[name](4)
    x = gradient((16, 4, 7, 7), 3)
    gpu = cupy.asnumpy(q(cupy.asarray(x), np.random.default_rng(5)))
    with emulate_device():
        mirror = q(x, np.random.default_rng(5))
    if name == "bhq":  # cuBLAS group sums vs NumPy's: float round-off in T x
        assert np.mean(gpu != mirror) < 1e-3
    else:
        assert np.array_equal(gpu, mirror)


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason="no usable GPU")
@pytest.mark.parametrize("name", sorted(QUANTIZERS))
def test_cupy_device_noise_unbiased_and_exact_variance(name):
    """On the GPU: Bernstein (α = 1e-6) and Monte Carlo variance within 5 standard errors."""
    cupy = get_backend("cupy").native
    q = QUANTIZERS[name](3)
    x = gradient((6, 2, 3, 4), 5, np.float64)
    xd, rng = cupy.asarray(x), np.random.default_rng(6)
    samples = np.stack([cupy.asnumpy(q(xd, rng)) for _ in range(3000)])
    var = cupy.asnumpy(q.elementwise_variance(xd))
    assert bernstein_rejections(samples, x, var, float(np.max(np.abs(samples - x))) + 1e-12, alpha=1e-6) == 0
    per_draw = np.sum((samples - x) ** 2, axis=(1, 2, 3))
    se = per_draw.std(ddof=1) / np.sqrt(per_draw.size)
    assert abs(per_draw.mean() - q.conditional_variance(xd)) < 5 * se


def test_fqt_backward_on_the_device_path_draws_no_host_noise(monkeypatch):
    """Under emulate_device an FQT step takes only 64-bit keys from the layers' generators, no host codes."""
    from refqt import Tensor, ops
    from refqt.data import load_digits
    from refqt.fqt import QuantConfig, quantize
    from refqt.models import SmallCNN
    from refqt.quant.rounding import NoiseStream

    x, y = load_digits()
    x, y = x[:8], y[:8]

    def grads(seed):
        model = SmallCNN(channels=4, hidden=16, rng=np.random.default_rng(0))
        quantize(model, QuantConfig(mode="fqt", grad_quantizer="bhq", grad_bits=4, seed=seed))
        ops.cross_entropy(model(Tensor(x)), y).backward()
        return {n: p.grad.copy() for n, p in model.named_parameters()}

    cpu = grads(3)

    def no_host_noise(self, n):
        raise AssertionError("host noise drawn on the device path")

    monkeypatch.setattr(NoiseStream, "take", no_host_noise)
    with emulate_device():
        a, b, c = grads(3), grads(3), grads(4)
    for name in a:
        assert np.array_equal(a[name], b[name]), name
    assert any(not np.array_equal(a[n], c[n]) for n in a)
    assert any(not np.array_equal(a[n], cpu[n]) for n in a)  # another noise mode than the CPU's


def test_benchmark_rows_run_on_numpy():
    from refqt.benchmarks.gpu_quant import format_rows, quant_rows, resnet20_quantizer_ms

    rows = quant_rows("numpy", shape=(8, 4, 5, 5), bits=8, repeats=1)
    assert [r["quantizer"] for r in rows] == ["PTQ", "PSQ", "PSQ per channel", "BHQ"]
    assert all(r["quantize"] > 0 and r["copy"] > 0 for r in rows)
    assert rows[-1]["transform"] > 0 and rows[0]["transform"] is None
    assert "PSQ per channel" in format_rows(rows, "t")
    share = resnet20_quantizer_ms("numpy", batch=2, repeats=1)
    assert share["total"] == share["Q_b"] + share["Q_w"] > 0


@pytest.mark.parametrize("image", [32, 9])
def test_resnet20_gradient_shapes_are_the_models(image):
    """The benchmark's ResNet-20 gradient shapes are the output shapes of the model's layers."""
    from refqt import Tensor
    from refqt.benchmarks.gpu_quant import resnet20_gradients
    from refqt.models.resnet import PreActResNet
    from refqt.nn import Conv2d, Linear

    model = PreActResNet(depth=20, in_channels=3, rng=np.random.default_rng(0))
    shapes = []
    for layer in [m for m in model.modules() if isinstance(m, Conv2d | Linear)]:
        original = layer.forward

        def record(x, original=original):
            y = original(x)
            shapes.append(tuple(y.shape))
            return y

        layer.forward = record
    model(Tensor(np.zeros((2, 3, image, image), dtype=np.float32)))
    assert sorted(shapes) == sorted(s for s, _ in resnet20_gradients(2, image))


@pytest.mark.parametrize("name", sorted(QUANTIZERS))
def test_fused_conditional_variance_equals_the_cpu_one(name):
    q = QUANTIZERS[name](4)
    x = gradient((12, 3, 5, 5), 12, np.float64)
    with emulate_device():
        device = q.conditional_variance(x)
    assert device == pytest.approx(q.conditional_variance(x), rel=1e-9)
    assert device > 0


@pytest.mark.parametrize(
    ("name", "reads", "device_checks"),
    [
        ("ptq", 1, 0),
        ("psq", 0, 1),
        ("psq-channel", 0, 1),
        ("psq-zero", 1, 0),
        ("psq-zero-channel", 2, 1),
        ("shift", 1, 0),
        ("bhq", 1, 1),
    ],
)
def test_device_path_reads_its_ranges_back_in_one_copy(monkeypatch, name, reads, device_checks):
    """Host syncs per call (docs/gpu-quantizers.md): host copies and device-side NaN/Inf checks, counted.

    On CuPy each ``Backend.to_numpy`` and each ``_ranges`` (its NaN/Inf check) reads the device once;
    a quantizer that read its mins and maxs in two copies, or checked them on the device before copying
    them anyway, is caught.
    """
    from refqt.backend import Backend
    from refqt.quant.base import GradientQuantizer

    counts = {"to_numpy": 0, "_ranges": 0}
    to_numpy, ranges = Backend.to_numpy, GradientQuantizer._ranges

    def counted_to_numpy(self, a):
        counts["to_numpy"] += 1
        return to_numpy(self, a)

    def counted_ranges(self, *args, **kwargs):
        counts["_ranges"] += 1
        return ranges(self, *args, **kwargs)

    monkeypatch.setattr(Backend, "to_numpy", counted_to_numpy)
    monkeypatch.setattr(GradientQuantizer, "_ranges", counted_ranges)
    with emulate_device():
        QUANTIZERS[name](5)(gradient((8, 3, 4, 4), 1), np.random.default_rng(0))
    assert counts == {"to_numpy": reads, "_ranges": device_checks}


@pytest.mark.parametrize("name", sorted(QUANTIZERS))
def test_device_path_refuses_nan_and_inf(name):
    from refqt.quant.checks import NonFiniteInputError

    for bad in (np.nan, np.inf, -np.inf):
        x = gradient((6, 2, 3, 3), 2)
        x[3, 1, 2, 0] = bad
        with emulate_device(), pytest.raises(NonFiniteInputError, match="NaN or Inf"):
            QUANTIZERS[name](4)(x, np.random.default_rng(0))


@pytest.mark.parametrize(
    ("environ", "refused"),
    [
        ({}, None),
        ({"CUPY_TF32": "0", "NVIDIA_TF32_OVERRIDE": ""}, None),
        ({"CUPY_TF32": "1"}, "CUPY_TF32=1"),
        ({"NVIDIA_TF32_OVERRIDE": "1"}, "NVIDIA_TF32_OVERRIDE=1"),
    ],
)
def test_bhq_on_a_gpu_refuses_tf32_gemms(environ, refused):
    """TF32 would round BHQ's group sums to 10-bit mantissas: a flag that asks for it is refused by name."""
    from refqt.gpu.householder import check_full_precision

    if refused is None:
        check_full_precision(environ)
    else:
        with pytest.raises(RuntimeError, match=f"{refused} makes it TF32"):
            check_full_precision(environ)

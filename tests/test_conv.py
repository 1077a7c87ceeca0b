"""conv2d and pooling: fast path == reference == direct sum, VJPs on every backend, clear errors."""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view

from refqt import ops
from refqt.gradcheck import adjoint_test, check_vjp
from refqt.ops import conv as C
from refqt.ops import conv_fast, winograd
from refqt.tensor import Tensor


def direct_conv(x, w, stride, padding):
    """The definition, written independently: sum over windows with einsum."""
    (sh, sw), (ph, pw) = stride, padding
    xpad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    win = sliding_window_view(xpad, w.shape[2:], axis=(2, 3))[:, :, ::sh, ::sw]
    return np.einsum("nchwij,fcij->nfhw", win, w)


conv_cases = st.tuples(
    st.integers(1, 3),  # N
    st.integers(1, 4),  # C
    st.integers(1, 4),  # F
    st.integers(1, 9),  # H
    st.integers(1, 9),  # W
    st.sampled_from([1, 2, 3, 3, 3, 5]),  # k (3 often: the Winograd path)
    st.sampled_from([1, 1, 2, 3]),  # stride
    st.integers(0, 3),  # padding
)


@given(conv_cases, st.booleans(), st.booleans())
def test_fast_path_matches_reference_and_definition(case, tiny_chunks, winograd_always):
    n, c, f, h, wd, k, s, p = case
    assume(k <= h + 2 * p and k <= wd + 2 * p)
    rng = np.random.default_rng(sum(case))
    x, w = rng.standard_normal((n, c, h, wd)), rng.standard_normal((f, c, k, k))
    old, old_band = conv_fast.CPU_CHUNK_BYTES, winograd.CPU_BAND_BYTES
    old_min = conv_fast.WINOGRAD_MIN_ELEMENTS
    if tiny_chunks:  # one image per chunk, one tile row per Winograd band
        conv_fast.CPU_CHUNK_BYTES = winograd.CPU_BAND_BYTES = 1
    # these images are small: without this only im2col would run; with it every 3×3 stride-1 case is Winograd
    conv_fast.WINOGRAD_MIN_ELEMENTS = 0 if winograd_always else old_min
    try:
        out = C.conv2d_forward(x, w, s, p)
        np.testing.assert_allclose(out, direct_conv(x, w, (s, s), (p, p)), rtol=1e-11, atol=1e-11)
        np.testing.assert_allclose(C.conv2d_forward_reference(x, w, s, p), out, rtol=1e-11, atol=1e-11)
        g = rng.standard_normal(out.shape)
        gx_ref = C.conv2d_grad_input_reference(g, w, x.shape, s, p)
        gw_ref = C.conv2d_grad_weight_reference(g, x, w.shape, s, p)
        np.testing.assert_allclose(C.conv2d_grad_input(g, w, x.shape, s, p), gx_ref, rtol=1e-11, atol=1e-11)
        np.testing.assert_allclose(C.conv2d_grad_weight(g, x, w.shape, s, p), gw_ref, rtol=1e-11, atol=1e-11)
        # The reference VJPs are adjoint to the forward: <g, conv(x, w)> = <g_x, x> = <g_w, w>.
        inner = np.sum(g * out)
        assert np.isclose(np.sum(gx_ref * x), inner) and np.isclose(np.sum(gw_ref * w), inner)
    finally:
        conv_fast.CPU_CHUNK_BYTES, winograd.CPU_BAND_BYTES = old, old_band
        conv_fast.WINOGRAD_MIN_ELEMENTS = old_min


def test_winograd_only_on_large_images():
    """The dispatch: 3×3 stride 1 on a (16, 8, 8) digits image is im2col, on (16, 32, 32) Winograd."""
    assert not conv_fast._use_winograd((16, 16, 3, 3), (1, 1), (128, 16, 8, 8))
    assert conv_fast._use_winograd((16, 16, 3, 3), (1, 1), (128, 16, 32, 32))
    assert not conv_fast._use_winograd((16, 16, 3, 3), (2, 2), (128, 16, 32, 32))
    assert not conv_fast._use_winograd((16, 16, 5, 5), (1, 1), (128, 16, 32, 32))


@pytest.mark.parametrize(
    "shape, padding", [((2, 3, 9, 8), 1), ((1, 2, 11, 7), (0, 2)), ((2, 1, 8, 9), (3, 1))]
)
def test_winograd_bands_with_a_short_last_band(shape, padding, monkeypatch, rng):
    """Bands of 2 tile rows over 3 bands (the last one short), odd and even output sizes."""
    x, w = rng.standard_normal(shape), rng.standard_normal((4, shape[1], 3, 3))
    pad = C.pair(padding, "padding")
    row_bytes = winograd._Geometry(x.shape, 4, pad, 8, np).r * 28 * (shape[1] + 4) * 8
    monkeypatch.setattr(winograd, "CPU_BAND_BYTES", 2 * row_bytes)
    geo = winograd._Geometry(x.shape, 4, pad, 8, np)
    assert geo.nb == 2 and len(list(geo.bands())) == 3
    out = winograd.conv3x3(x, w, pad, np)
    np.testing.assert_allclose(out, C.conv2d_forward_reference(x, w, 1, padding), rtol=1e-11, atol=1e-11)
    g = rng.standard_normal(out.shape)
    gw = winograd.grad_weight3x3(g, x, pad, np)
    np.testing.assert_allclose(
        gw, C.conv2d_grad_weight_reference(g, x, w.shape, 1, padding), rtol=1e-11, atol=1e-11
    )


def test_winograd_buffers_start_on_cache_lines():
    for dtype in (np.float32, np.float64):
        for size in (1, 17, 1000):
            buf = winograd._aligned_empty(size, dtype, np)
            assert buf.shape == (size,) and buf.dtype == dtype and buf.ctypes.data % 64 == 0


@pytest.mark.parametrize("stride, padding", [(1, 1), (1, 0), (2, 1), ((1, 2), (2, 0))])
def test_float32_fast_path_close_to_float64(stride, padding, rng):
    x = rng.standard_normal((2, 8, 11, 10)).astype(np.float32)
    w = rng.standard_normal((6, 8, 3, 3)).astype(np.float32)
    out = C.conv2d_forward(x, w, stride, padding)
    assert out.dtype == np.float32
    exact = C.conv2d_forward_reference(x.astype(np.float64), w.astype(np.float64), stride, padding)
    np.testing.assert_allclose(out, exact, rtol=1e-4, atol=1e-4)
    g = rng.standard_normal(out.shape).astype(np.float32)
    gx = C.conv2d_grad_input(g, w, x.shape, stride, padding)
    gx64 = C.conv2d_grad_input_reference(g.astype(np.float64), w.astype(np.float64), x.shape, stride, padding)
    np.testing.assert_allclose(gx, gx64, rtol=1e-4, atol=1e-4)
    gw = C.conv2d_grad_weight(g, x, w.shape, stride, padding)
    assert gw.dtype == np.float32
    gw64 = C.conv2d_grad_weight_reference(
        g.astype(np.float64), x.astype(np.float64), w.shape, stride, padding
    )
    np.testing.assert_allclose(gw, gw64, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("stride, padding, bias", [(1, 1, True), (2, 0, False), ((2, 1), (1, 0), True)])
def test_conv2d_vjp_on_every_backend(backend, rng, stride, padding, bias):
    arrays = [rng.standard_normal((2, 2, 5, 4)), rng.standard_normal((3, 2, 3, 2))]
    if bias:
        arrays.append(rng.standard_normal(3))
    arrays = [backend.asarray(a) for a in arrays]

    def fn(*t):
        return ops.conv2d(t[0], t[1], t[2] if bias else None, stride=stride, padding=padding)

    check_vjp(fn, arrays, rng)
    adjoint_test(fn, arrays, rng)


def test_backends_agree(backend, rng):
    x, w, b = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    out = ops.conv2d(backend.asarray(x), backend.asarray(w), backend.asarray(b), padding=1)
    np.testing.assert_allclose(
        backend.to_numpy(out.data), direct_conv(x, w, (1, 1), (1, 1)) + b[:, None, None]
    )


@pytest.mark.parametrize(
    "pool, kwargs",
    [
        ("max_pool2d", {"kernel_size": 2}),
        ("max_pool2d", {"kernel_size": 3, "stride": 2, "padding": 1}),
        ("avg_pool2d", {"kernel_size": 2}),
        ("avg_pool2d", {"kernel_size": (3, 2), "stride": 1, "padding": (1, 0)}),
    ],
)
def test_pool_vjp_on_every_backend(backend, rng, pool, kwargs):
    x = backend.asarray(rng.standard_normal((2, 2, 5, 6)))
    fn = getattr(ops, pool)
    check_vjp(lambda t: fn(t, **kwargs), [x], rng)
    adjoint_test(lambda t: fn(t, **kwargs), [x], rng)


def test_global_avg_pool_vjp_on_every_backend(backend, rng):
    x = backend.asarray(rng.standard_normal((2, 3, 4, 5)))
    check_vjp(ops.global_avg_pool2d, [x], rng)
    out = ops.global_avg_pool2d(x)
    np.testing.assert_allclose(backend.to_numpy(out.data), backend.to_numpy(x).mean(axis=(2, 3)))


def test_pool_values():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    np.testing.assert_array_equal(ops.max_pool2d(x, 2).data, [[[[5, 7], [13, 15]]]])
    np.testing.assert_array_equal(ops.avg_pool2d(x, 2).data, [[[[2.5, 4.5], [10.5, 12.5]]]])
    # A tie: the gradient goes to the first maximum of the window only.
    t = Tensor(np.ones((1, 1, 2, 2)), requires_grad=True)
    ops.max_pool2d(t, 2).backward(np.ones((1, 1, 1, 1)))
    np.testing.assert_array_equal(t.grad, [[[[1, 0], [0, 0]]]])


def test_clear_errors():
    x, w = np.zeros((2, 3, 5, 5)), np.zeros((4, 3, 3, 3))
    with pytest.raises(
        ValueError, match=r"conv2d: x has 3 channels \(shape \(2, 3, 5, 5\)\) but w expects 2 "
    ):
        ops.conv2d(x, np.zeros((4, 2, 3, 3)))
    with pytest.raises(ValueError, match=r"conv2d: kernel 7×7 is larger than the padded input 7×7|larger"):
        ops.conv2d(x, np.zeros((4, 3, 8, 8)), padding=1)
    with pytest.raises(
        ValueError, match=r"conv2d: expected x of shape \(N, C, H, W\), got shape \(3, 5, 5\)"
    ):
        ops.conv2d(np.zeros((3, 5, 5)), w)
    with pytest.raises(TypeError, match="conv2d: expected a floating-point x, got dtype int64"):
        ops.conv2d(np.zeros((2, 3, 5, 5), dtype=np.int64), w)
    with pytest.raises(ValueError, match=r"conv2d: expected b of shape \(4,\)"):
        ops.conv2d(x, w, np.zeros(3))
    with pytest.raises(ValueError, match="max_pool2d: padding"):
        ops.max_pool2d(x, 2, padding=2)
    with pytest.raises(ValueError, match="avg_pool2d: expected x of shape"):
        ops.avg_pool2d(np.zeros((5, 5)), 2)

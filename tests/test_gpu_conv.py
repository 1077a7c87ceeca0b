"""The GPU convolution (refqt/gpu/conv.py), run on NumPy under emulate_device: same numbers as the reference.

The GPU algorithms are chosen by ``refqt.backend.device_path``; inside
``emulate_device()`` NumPy arrays take them, so these tests check their maths
here and on CI. On a real GPU the same tests run on CuPy arrays
(``@pytest.mark.gpu``).
"""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view

from refqt import ops
from refqt.backend import emulate_device, get_backend, gpu_available
from refqt.gpu import conv as gpu_conv
from refqt.gpu import windows
from refqt.gradcheck import adjoint_test, check_vjp
from refqt.ops import conv as C
from refqt.ops import conv_fast, winograd
from refqt.tensor import Tensor


def direct_conv(x, w, stride, padding):
    """The definition, written independently: a sum over windows with einsum."""
    (sh, sw), (ph, pw) = stride, padding
    xpad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    win = sliding_window_view(xpad, w.shape[2:], axis=(2, 3))[:, :, ::sh, ::sw]
    return np.einsum("nchwij,fcij->nfhw", win, w)


cases = st.tuples(
    st.integers(1, 3),  # N (batch 1 often)
    st.integers(1, 4),  # C
    st.integers(1, 4),  # F
    st.integers(1, 9),  # H (odd sizes)
    st.integers(1, 9),  # W
    st.sampled_from([(1, 1), (3, 3), (5, 5), (3, 1), (2, 3)]),  # kernel
    st.sampled_from([(1, 1), (2, 2), (2, 1)]),  # stride
    st.sampled_from([(0, 0), (1, 1), (2, 2), (0, 2)]),  # padding
)


@settings(max_examples=60)
@given(cases, st.booleans())
def test_gpu_path_matches_the_reference_in_float32(case, tiny_budget):
    """Forward, input gradient, weight gradient == the reference path, to float32 tolerance."""
    n, c, f, h, wd, kernel, stride, padding = case
    assume(kernel[0] <= h + 2 * padding[0] and kernel[1] <= wd + 2 * padding[1])
    rng = np.random.default_rng(abs(hash(case)) % 2**32)
    x = rng.standard_normal((n, c, h, wd), dtype=np.float32)
    w = rng.standard_normal((f, c, *kernel), dtype=np.float32)
    ref = C.conv2d_forward_reference(x, w, stride, padding)
    g = rng.standard_normal(ref.shape, dtype=np.float32)
    gx_ref = C.conv2d_grad_input_reference(g, w, x.shape, stride, padding)
    gw_ref = C.conv2d_grad_weight_reference(g, x, w.shape, stride, padding)
    budget = 1 if tiny_budget else gpu_conv.WORKSPACE_BYTES  # 1 byte: one image per chunk
    with emulate_device(), pytest.MonkeyPatch.context() as mp:
        mp.setattr(gpu_conv, "WORKSPACE_BYTES", budget)
        out = C.conv2d_forward(x, w, stride, padding)
        gx = C.conv2d_grad_input(g, w, x.shape, stride, padding)
        gw = C.conv2d_grad_weight(g, x, w.shape, stride, padding)
    tol = {"rtol": 1e-4, "atol": 1e-4}
    for got, want in ((out, ref), (gx, gx_ref), (gw, gw_ref)):
        assert got.dtype == np.float32 and got.shape == want.shape
        np.testing.assert_allclose(got, want, **tol)
    np.testing.assert_allclose(out, direct_conv(x, w, stride, padding), **tol)


@settings(max_examples=30)
@given(cases)
def test_chunking_gives_the_same_numbers_in_float64(case):
    """One image per chunk and the whole batch in one chunk agree to rounding (float64)."""
    n, c, f, h, wd, kernel, stride, padding = case
    assume(kernel[0] <= h + 2 * padding[0] and kernel[1] <= wd + 2 * padding[1])
    rng = np.random.default_rng(abs(hash(case)) % 2**32)
    x, w = rng.standard_normal((n, c, h, wd)), rng.standard_normal((f, c, *kernel))
    g = rng.standard_normal(C.conv2d_forward_reference(x, w, stride, padding).shape)
    results = []
    for budget in (1, 1 << 30):
        with emulate_device(), pytest.MonkeyPatch.context() as mp:
            mp.setattr(gpu_conv, "WORKSPACE_BYTES", budget)
            results.append(
                (
                    C.conv2d_forward(x, w, stride, padding),
                    C.conv2d_grad_input(g, w, x.shape, stride, padding),
                    C.conv2d_grad_weight(g, x, w.shape, stride, padding),
                )
            )
    for one, whole in zip(*results, strict=True):
        np.testing.assert_allclose(one, whole, rtol=1e-12, atol=1e-12)


def test_images_per_chunk_follows_the_budget(monkeypatch):
    monkeypatch.setattr(gpu_conv, "WORKSPACE_BYTES", 1000)
    assert gpu_conv.images_per_chunk(128, 300) == 3
    assert gpu_conv.images_per_chunk(128, 5000) == 1  # never less than one whole image
    assert gpu_conv.images_per_chunk(2, 1) == 2  # never more than the batch


def test_chunks_are_whole_images_and_each_gemm_sees_the_whole_chunk(monkeypatch):
    """With room for 3 images, a batch of 7 runs as 3 + 3 + 1 images: three GEMMs, not one per image."""
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((7, 2, 6, 6)), rng.standard_normal((3, 2, 3, 3))
    per_image = 2 * 9 * 36 * 8
    monkeypatch.setattr(gpu_conv, "WORKSPACE_BYTES", 3 * per_image)
    calls = []
    real = np.matmul

    class Spy:
        def __getattr__(self, name):
            return getattr(np, name)

        @staticmethod
        def matmul(a, b, **kw):
            calls.append(b.shape)
            return real(a, b, **kw)

    out = gpu_conv.forward(x, w, (1, 1), (1, 1), Spy())
    assert [s[0] for s in calls] == [3, 3, 1]
    np.testing.assert_allclose(out, C.conv2d_forward_reference(x, w, 1, 1), rtol=1e-12, atol=1e-12)


def test_dispatch_takes_the_gpu_path_under_emulation(monkeypatch, rng):
    """Inside emulate_device the CPU fast path (Winograd, 1 MiB chunks) is never called; outside, it is."""

    def refuse(*args, **kwargs):
        raise AssertionError("the CPU path ran under emulate_device")

    x = rng.standard_normal((2, 64, 16, 16)).astype(np.float32)  # large enough for Winograd on the CPU
    w = rng.standard_normal((8, 64, 3, 3)).astype(np.float32)
    g = rng.standard_normal((2, 8, 16, 16)).astype(np.float32)
    for name in ("forward", "grad_input", "grad_weight"):
        monkeypatch.setattr(conv_fast, name, refuse)
    for name in ("conv3x3", "grad_weight3x3"):
        monkeypatch.setattr(winograd, name, refuse)
    with emulate_device():
        C.conv2d_forward(x, w, 1, 1)
        C.conv2d_grad_input(g, w, x.shape, 1, 1)
        C.conv2d_grad_weight(g, x, w.shape, 1, 1)
        ops.conv2d(Tensor(x, requires_grad=True), Tensor(w, requires_grad=True), padding=1).sum().backward()
    with pytest.raises(AssertionError, match="CPU path ran"):
        C.conv2d_forward(x, w, 1, 1)


def test_cpu_path_is_untouched_outside_emulation(monkeypatch, rng):
    """Without emulate_device NumPy never reaches refqt.gpu.conv."""

    def refuse(*args, **kwargs):
        raise AssertionError("the GPU path ran on the CPU")

    for name in ("forward", "grad_input", "grad_weight"):
        monkeypatch.setattr(gpu_conv, name, refuse)
    x, w = rng.standard_normal((2, 3, 7, 7)), rng.standard_normal((4, 3, 3, 3))
    g = rng.standard_normal((2, 4, 4, 4))
    C.conv2d_forward(x, w, 2, 1)
    C.conv2d_grad_input(g, w, x.shape, 2, 1)
    C.conv2d_grad_weight(g, x, w.shape, 2, 1)


def test_window_view_and_add_windows_are_adjoint(rng):
    """<view(x), u> = <x, add_windows(u)>: col2im is the transpose of im2col."""
    xpad = rng.standard_normal((2, 3, 9, 8))
    view = windows.window_view(xpad, (3, 2), (2, 3), (4, 3), np)
    assert view.shape == (2, 3, 3, 2, 4, 3)
    assert view[1, 2, 2, 1, 3, 2] == xpad[1, 2, 2 * 3 + 2, 3 * 2 + 1]
    u = rng.standard_normal(view.shape)
    back = windows.add_windows(u, xpad.shape, (2, 3), np)
    assert np.isclose(np.sum(view * u), np.sum(xpad * back))


@pytest.mark.parametrize(
    "stride, padding, kernel", [(1, 1, 3), (2, 0, 3), ((2, 1), (1, 0), 3), (1, 2, 5), (2, 1, 1), (1, 3, 3)]
)
def test_conv2d_vjp_under_emulation_float64(rng, stride, padding, kernel):
    """Finite differences and the adjoint test of the conv op, on the GPU path, in float64."""
    x = rng.standard_normal((2, 3, 7, 6))
    w = rng.standard_normal((4, 3, kernel, kernel))
    b = rng.standard_normal(4)

    def fn(x, w, b):
        return ops.conv2d(x, w, b, stride=stride, padding=padding)

    with emulate_device():
        check_vjp(fn, [x, w, b], np.random.default_rng(0))
        adjoint_test(fn, [x, w, b], np.random.default_rng(1))


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason="no usable GPU")
@pytest.mark.parametrize("stride, padding, kernel", [(1, 1, 3), (2, 1, 3), (1, 0, 1), (2, 2, 5)])
def test_gpu_conv_on_cupy_matches_numpy(rng, stride, padding, kernel):
    cp = get_backend("cupy")
    x = rng.standard_normal((3, 5, 11, 9), dtype=np.float32)
    w = rng.standard_normal((6, 5, kernel, kernel), dtype=np.float32)
    ref = C.conv2d_forward_reference(x, w, stride, padding)
    g = rng.standard_normal(ref.shape, dtype=np.float32)
    xd, wd, gd = cp.asarray(x), cp.asarray(w), cp.asarray(g)
    tol = {"rtol": 1e-4, "atol": 1e-4}
    np.testing.assert_allclose(cp.to_numpy(C.conv2d_forward(xd, wd, stride, padding)), ref, **tol)
    np.testing.assert_allclose(
        cp.to_numpy(C.conv2d_grad_input(gd, wd, x.shape, stride, padding)),
        C.conv2d_grad_input_reference(g, w, x.shape, stride, padding),
        **tol,
    )
    np.testing.assert_allclose(
        cp.to_numpy(C.conv2d_grad_weight(gd, xd, w.shape, stride, padding)),
        C.conv2d_grad_weight_reference(g, x, w.shape, stride, padding),
        **tol,
    )


@pytest.mark.parametrize("stride, padding", [(1, 0), (1, 1), (2, 1)])
def test_non_contiguous_inputs_and_cotangents(rng, stride, padding):
    """The window view reads an array's own strides: transposed and sliced inputs give the same numbers."""
    x = rng.standard_normal((7, 3, 2, 8)).transpose(2, 1, 3, 0)[:, :, ::-1, :]  # (2, 3, 8, 7), no unit stride
    w = rng.standard_normal((3, 4, 3, 3)).transpose(1, 0, 2, 3)  # (4, 3, 3, 3)
    ref = C.conv2d_forward_reference(x, w, stride, padding)
    g = rng.standard_normal((*ref.shape[::-1],)).T  # a transposed cotangent
    assert not x.flags.c_contiguous and not g.flags.c_contiguous
    with emulate_device():
        out = C.conv2d_forward(x, w, stride, padding)
        gx = C.conv2d_grad_input(g, w, x.shape, stride, padding)
        gw = C.conv2d_grad_weight(g, x, w.shape, stride, padding)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)
    gx_ref = C.conv2d_grad_input_reference(g, w, x.shape, stride, padding)
    np.testing.assert_allclose(gx, gx_ref, rtol=1e-12, atol=1e-12)
    gw_ref = C.conv2d_grad_weight_reference(g, x, w.shape, stride, padding)
    np.testing.assert_allclose(gw, gw_ref, rtol=1e-12, atol=1e-12)


def test_an_empty_batch_gives_zero_gradients_as_on_the_cpu():
    x = np.zeros((0, 2, 5, 5))
    w = np.random.default_rng(0).standard_normal((3, 2, 3, 3))
    g = np.zeros((0, 3, 5, 5))
    cpu = C.conv2d_grad_weight(g, x, w.shape, 1, 1)
    with emulate_device():
        gpu = C.conv2d_grad_weight(g, x, w.shape, 1, 1)
    assert gpu.shape == w.shape and np.array_equal(gpu, cpu) and not gpu.any()

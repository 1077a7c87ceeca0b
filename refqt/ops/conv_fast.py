"""Fast 2-D convolution on NumPy / CuPy: the same numbers as the reference path, in less time and memory.

The reference path in :mod:`refqt.ops.conv` builds the im2col matrix of the
whole batch at once: for a ResNet layer that is 9× the input, over a gigabyte,
and it falls out of every cache. Here the same algorithm runs

* **a few images at a time** (a chunk of about ``CPU_CHUNK_BYTES`` of
  columns), into buffers allocated once, with ``matmul(..., out=)`` writing
  straight into the result -- so the extra memory is a few megabytes and the
  work stays in cache;
* and for 3×3, stride-1 filters on images of at least
  ``WINOGRAD_MIN_ELEMENTS`` values (most of a ResNet) by Winograd's
  F(2×2, 3×3) (:mod:`refqt.ops.winograd`): the forward pass and the weight
  gradient.

The input gradient of a stride-1 convolution is itself a stride-1
convolution of ``g`` with the flipped, transposed filters,
``g_x = conv(g, flip(w)ᵀ, padding = k − 1 − p)``, so it takes the forward
path (Winograd or one GEMM per chunk); other strides scatter im2col columns
back (col2im).

Every function takes ``native``, the ``numpy`` or ``cupy`` module, and
raw arrays already checked by :mod:`refqt.ops.conv`.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import Any

from refqt.ops import winograd
from refqt.ops.conv import input_grad_as_conv, output_size, window

CPU_CHUNK_BYTES = 1 << 20
"""im2col columns per chunk on the CPU: half an L2 cache. On the digits conv (128, 16, 8, 8), 16
filters, one thread: forward / input grad / weight grad 1.25 / 1.26 / 2.05 ms, against 1.45 /
1.45 / 2.38 ms with 8 MiB chunks."""
GPU_CHUNK_BYTES = 512 << 20

WINOGRAD_MIN_ELEMENTS = 8192
"""Smallest image (C·H·W values) done by Winograd. Winograd works image by image,
so on small images its per-image overhead loses to one batched im2col GEMM:
one thread, batch 128, forward / input grad / weight grad in ms, Winograd vs
im2col: digits (16, 8, 8) 6.2 / 6.0 / 6.8 vs 1.5 / 2.7 / 2.3; (64, 8, 8) 15.0 /
15.1 / 15.9 vs 10.5 / 16.4 / 13.4; (32, 16, 16) 11.9 / 11.6 / 12.1 vs 14.1 /
20.7 / 16.6; (32, 32, 32) 29.2 / 29.4 / 29.6 vs 46.8 / 69.1 / 56.0."""

Pair = tuple[int, int]


def _images_per_chunk(n: int, bytes_per_image: int, native: ModuleType) -> int:
    budget = CPU_CHUNK_BYTES if native.__name__ == "numpy" else GPU_CHUNK_BYTES
    return max(1, min(n, budget // max(1, bytes_per_image)))


def _columns(
    x: Any, kernel: Pair, stride: Pair, padding: Pair, out_hw: Pair, native: ModuleType
) -> Iterator[tuple[int, int, Any]]:
    """im2col of ``x`` a chunk at a time: yields ``(n0, n1, cols)``, cols (n1−n0, C·kh·kw, Ho·Wo).

    The same buffer is reused for every chunk: use ``cols`` before asking for the next.
    """
    n, c, h, wd = x.shape
    (kh, kw), (ph, pw), (ho, wo) = kernel, padding, out_hw
    b = _images_per_chunk(n, c * kh * kw * ho * wo * x.itemsize, native)
    xpad = native.zeros((b, c, h + 2 * ph, wd + 2 * pw), dtype=x.dtype)  # borders stay zero
    cols = native.empty((b, c, kh, kw, ho, wo), dtype=x.dtype)
    for n0 in range(0, n, b):
        m = min(b, n - n0)
        xpad[:m, :, ph : ph + h, pw : pw + wd] = x[n0 : n0 + m]
        for i in range(kh):
            for j in range(kw):
                cols[:m, :, i, j] = xpad[:m][window(i, j, stride, out_hw)]
        yield n0, n0 + m, cols[:m].reshape(m, c * kh * kw, ho * wo)


def _use_winograd(w_shape: tuple[int, ...], stride: Pair, x_shape: tuple[int, ...]) -> bool:
    """3×3 stride-1 filters on images (C, H, W) of at least ``WINOGRAD_MIN_ELEMENTS`` values."""
    _, c, h, wd = x_shape
    return winograd.applies(w_shape, stride) and c * h * wd >= WINOGRAD_MIN_ELEMENTS


def forward(x: Any, w: Any, stride: Pair, padding: Pair, native: ModuleType) -> Any:
    """Convolution: x (N, C, H, W), w (F, C, kh, kw) -> (N, F, Ho, Wo)."""
    if _use_winograd(tuple(w.shape), stride, tuple(x.shape)):
        return winograd.conv3x3(x, w, padding, native)
    n, _, h, wd = x.shape
    f, _, kh, kw = w.shape
    ho, wo = output_size(h, kh, stride[0], padding[0]), output_size(wd, kw, stride[1], padding[1])
    out = native.empty((n, f, ho, wo), dtype=x.dtype)
    w_mat = native.ascontiguousarray(w).reshape(f, -1)
    for n0, n1, cols in _columns(x, (kh, kw), stride, padding, (ho, wo), native):
        native.matmul(w_mat, cols, out=out[n0:n1].reshape(n1 - n0, f, ho * wo))
    return out


def grad_input(
    g: Any, w: Any, x_shape: tuple[int, ...], stride: Pair, padding: Pair, native: ModuleType
) -> Any:
    """VJP with respect to the input: g (N, F, Ho, Wo) -> (N, C, H, W)."""
    n, f, ho, wo = g.shape
    _, c, h, wd = x_shape
    (ph, pw), (kh, kw) = padding, w.shape[2:]
    as_conv = input_grad_as_conv(w, stride, padding, native)  # g_x = conv(g, flip(w)ᵀ, padding k − 1 − p)
    if as_conv is not None:
        w_flipped, flipped_padding = as_conv
        return forward(g, w_flipped, stride, flipped_padding, native)
    # col2im a chunk at a time: cols = w_matᵀ g, then every tap adds its slice back.
    w_t = native.ascontiguousarray(w).reshape(f, -1).T  # (C·kh·kw, F)
    b = _images_per_chunk(n, c * kh * kw * ho * wo * g.itemsize, native)
    cols = native.empty((b, c, kh, kw, ho, wo), dtype=g.dtype)
    dxpad = native.empty((b, c, h + 2 * ph, wd + 2 * pw), dtype=g.dtype)
    dx = native.empty(x_shape, dtype=g.dtype)
    for n0 in range(0, n, b):
        m = min(b, n - n0)
        native.matmul(
            w_t, g[n0 : n0 + m].reshape(m, f, ho * wo), out=cols[:m].reshape(m, c * kh * kw, ho * wo)
        )
        dxpad[:m] = 0
        for i in range(kh):
            for j in range(kw):
                dxpad[:m][window(i, j, stride, (ho, wo))] += cols[:m, :, i, j]
        dx[n0 : n0 + m] = dxpad[:m, :, ph : ph + h, pw : pw + wd]
    return dx


def grad_weight(
    g: Any, x: Any, w_shape: tuple[int, ...], stride: Pair, padding: Pair, native: ModuleType
) -> Any:
    """VJP with respect to the filters: g (N, F, Ho, Wo), x (N, C, H, W) -> (F, C, kh, kw)."""
    if _use_winograd(w_shape, stride, tuple(x.shape)):
        return winograd.grad_weight3x3(g, x, padding, native)
    _, f, ho, wo = g.shape
    gw = native.zeros((f, w_shape[1] * w_shape[2] * w_shape[3]), dtype=g.dtype)
    part = native.empty_like(gw)
    for n0, n1, cols in _columns(x, tuple(w_shape[2:]), stride, padding, (ho, wo), native):
        for k in range(n1 - n0):
            native.matmul(g[n0 + k].reshape(f, ho * wo), cols[k].T, out=part)
            gw += part
    return gw.reshape(w_shape)

"""2-D convolution on the GPU: im2col as one strided view, one big GEMM per chunk of whole images.

Same maths as :mod:`refqt.ops.conv` (read its docstring for the definition):
x (N, C, H, W), w (F, C, kh, kw) -> out (N, F, Ho, Wo), any stride, padding
and kernel size. Where the CPU path (:mod:`refqt.ops.conv_fast`) keeps a
cache warm with 1 MiB chunks and Winograd bands -- thousands of tiny
launches on a GPU -- this one does a handful of large kernels per chunk:

* **forward**: pad the chunk (2 kernels), copy the window view of
  :func:`refqt.gpu.windows.window_view` into columns (1 kernel), one batched
  GEMM ``w_mat (F, C·kh·kw) @ cols (m, C·kh·kw, Ho·Wo)`` written straight into
  the output (cuBLAS).
* **input gradient**: for stride 1 (padding ≤ kernel − 1) it *is* a stride-1
  convolution of ``g`` with the flipped, transposed filters,
  ``g_x = conv(g, flip(w)ᵀ, padding = k − 1 − p)``, so it takes the forward
  path above; otherwise one GEMM ``w_matᵀ @ g`` gives the columns and col2im
  adds them back as kh·kw strided adds (:func:`refqt.gpu.windows.add_windows`).
* **weight gradient**: the columns copied once from the window view, already
  transposed (CuPy's batched matmul would copy a transposed 3-D operand),
  one batched GEMM ``g[n] (F, Ho·Wo) @ colsᵀ[n] (Ho·Wo, C·kh·kw)`` for the
  chunk's images, and one sum over the images. A single
  GEMM with the images folded into its reduction axis would have an output of
  only F × C·kh·kw (16 × 144 in ResNet-20's first stage: one tile of work for
  the whole GPU unless cuBLAS splits the reduction); batching over images
  keeps every image's product in parallel.

No Winograd: on a GPU its per-tile transforms are many small kernels, and one
GEMM on cuBLAS already runs near the device's peak.

**Memory budget.** The workspace (columns, and for the gradients the
per-image weight gradients or the padded input gradient) is at most
:data:`WORKSPACE_BYTES` per chunk; a chunk is as many *whole images* as fit
(at least one), so a batch that fits is done in one GEMM. Besides the
workspace each call allocates its result and one padded chunk of the input.

**Host synchronisation: none.** The chunk loop runs over shapes only; no
``.item()``, no host scalar read from a device array.

Every function takes ``native`` (``numpy`` or ``cupy``) and raw arrays already
checked by :mod:`refqt.ops.conv`; under :func:`refqt.backend.emulate_device`
they run on NumPy, which is how CI tests them.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from refqt.gpu.windows import add_windows, padded, window_view
from refqt.ops.conv import input_grad_as_conv, output_size

WORKSPACE_BYTES = 256 << 20
"""Workspace of one chunk, in bytes: a chunk holds as many whole images as fit (at least one).
The ResNet-20 CIFAR step (batch 128, 16-64 channels of 32×32 to 8×8) fits in one chunk
(its largest columns, 16·9 × 1024 per image, are 72 MiB); the issue's (128, 64, 56, 56)
layer (7.2 MB of columns per image) runs in 4 chunks of at most 37 images."""

Pair = tuple[int, int]


def images_per_chunk(n: int, bytes_per_image: int) -> int:
    """How many whole images fit in :data:`WORKSPACE_BYTES` (at least 1, at most ``n``)."""
    return max(1, min(n, WORKSPACE_BYTES // max(1, bytes_per_image)))


def _out_hw(x_hw: tuple[int, ...], kernel: tuple[int, ...], stride: Pair, padding: Pair) -> Pair:
    return (
        output_size(x_hw[0], kernel[0], stride[0], padding[0]),
        output_size(x_hw[1], kernel[1], stride[1], padding[1]),
    )


def forward(x: Any, w: Any, stride: Pair, padding: Pair, native: ModuleType) -> Any:
    """Convolution: x (N, C, H, W), w (F, C, kh, kw) -> (N, F, Ho, Wo); one GEMM per chunk."""
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    ho, wo = _out_hw((h, wd), (kh, kw), stride, padding)
    k, p = c * kh * kw, ho * wo
    out = native.empty((n, f, ho, wo), dtype=x.dtype)
    w_mat = native.ascontiguousarray(w).reshape(f, k)
    b = images_per_chunk(n, k * p * x.itemsize)
    for n0 in range(0, n, b):
        m = min(b, n - n0)
        xpad = padded(x[n0 : n0 + m], padding, native)
        cols = native.ascontiguousarray(window_view(xpad, (kh, kw), stride, (ho, wo), native))
        native.matmul(w_mat, cols.reshape(m, k, p), out=out[n0 : n0 + m].reshape(m, f, p))
        del xpad, cols  # free this chunk's workspace before the next one is allocated
    return out


def grad_input(
    g: Any, w: Any, x_shape: tuple[int, ...], stride: Pair, padding: Pair, native: ModuleType
) -> Any:
    """VJP with respect to the input: g (N, F, Ho, Wo), w (F, C, kh, kw) -> (N, C, H, W)."""
    n, f, ho, wo = g.shape
    _, c, h, wd = x_shape
    (ph, pw), (kh, kw) = padding, w.shape[2:]
    as_conv = input_grad_as_conv(w, stride, padding, native)  # g_x = conv(g, flip(w)ᵀ, padding k − 1 − p)
    if as_conv is not None:
        w_flipped, flipped_padding = as_conv
        return forward(g, w_flipped, stride, flipped_padding, native)
    k, p = c * kh * kw, ho * wo
    hp, wp = h + 2 * ph, wd + 2 * pw
    w_t = native.ascontiguousarray(w).reshape(f, k).T  # (C·kh·kw, F), a transposed view for cuBLAS
    dx = native.empty(x_shape, dtype=g.dtype)
    b = images_per_chunk(n, (k * p + c * hp * wp) * g.itemsize)
    for n0 in range(0, n, b):
        m = min(b, n - n0)
        cols = native.matmul(w_t, g[n0 : n0 + m].reshape(m, f, p))  # (m, C·kh·kw, Ho·Wo)
        dxpad = add_windows(cols.reshape(m, c, kh, kw, ho, wo), (m, c, hp, wp), stride, native)
        dx[n0 : n0 + m] = dxpad[:, :, ph : ph + h, pw : pw + wd]
        del cols, dxpad
    return dx


def grad_weight(
    g: Any, x: Any, w_shape: tuple[int, ...], stride: Pair, padding: Pair, native: ModuleType
) -> Any:
    """VJP with respect to the filters: g (N, F, Ho, Wo), x (N, C, H, W) -> (F, C, kh, kw).

    ``g_w[f, (c, i, j)] = Σ_n Σ_{y, z} g[n, f, y, z] · view[n, c, i, j, y, z]``: one batched
    GEMM per chunk, ``g[n] (F, Ho·Wo) @ cols[n]ᵀ (Ho·Wo, C·kh·kw)`` for every image at once,
    then the sum over the chunk's images.
    """
    n, f, ho, wo = g.shape
    _, c, kh, kw = w_shape
    k, p = c * kh * kw, ho * wo
    gw = None
    b = images_per_chunk(n, (k * p + f * k) * g.itemsize)
    for n0 in range(0, n, b):
        m = min(b, n - n0)
        xpad = padded(x[n0 : n0 + m], padding, native)
        view = window_view(xpad, (kh, kw), stride, (ho, wo), native)  # (m, C, kh, kw, Ho, Wo)
        cols_t = native.ascontiguousarray(view.transpose(0, 4, 5, 1, 2, 3)).reshape(m, p, k)
        per_image = native.matmul(g[n0 : n0 + m].reshape(m, f, p), cols_t)  # no operand copy in CuPy
        part = per_image.sum(axis=0)  # (F, C·kh·kw)
        gw = part if gw is None else gw + part
        del xpad, view, cols_t, per_image
    if gw is None:  # an empty batch: no chunk ran
        return native.zeros(w_shape, dtype=g.dtype)
    return gw.reshape(w_shape)

"""Sliding windows on the GPU: im2col as one strided view, col2im as kh·kw strided adds.

Convolution and pooling both read, for every output position ``(y, z)`` and
kernel tap ``(i, j)``, the pixel ``xpad[n, c, sh·y + i, sw·z + j]``. On the
device that whole set of windows is a *view* of the padded input -- no copy,
no loop -- made by ``as_strided``::

    view[n, c, i, j, y, z] = xpad[n, c, sh·y + i, sw·z + j]
    strides: (s_n, s_c, s_h, s_w, sh·s_h, sw·s_w)      shape (N, C, kh, kw, Ho, Wo)

(the same six-axis layout as :func:`refqt.ops.conv.im2col` before its
reshape). Copying it into a contiguous array is a single kernel. Its adjoint,
col2im, adds every window entry back onto the pixel it came from; taps of
overlapping windows hit the same pixel, so it is written as ``kh·kw`` strided
adds, one per tap, each over the whole chunk of images at once.

Every function takes ``native`` (``numpy`` or ``cupy``); none synchronises
with the host.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

Pair = tuple[int, int]


def padded(x: Any, padding: Pair, native: ModuleType, value: float = 0.0) -> Any:
    """``x`` (N, C, H, W) with ``padding`` rows / columns of ``value`` on every side (x itself if none)."""
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    n, c, h, w = x.shape
    out = native.full((n, c, h + 2 * ph, w + 2 * pw), value, dtype=x.dtype)
    out[:, :, ph : ph + h, pw : pw + w] = x
    return out


def window_view(xpad: Any, kernel: Pair, stride: Pair, out_hw: Pair, native: ModuleType) -> Any:
    """Every window of ``xpad`` (N, C, Hp, Wp) as a read-only view (N, C, kh, kw, Ho, Wo), no copy.

    ``xpad`` may be any strided array (e.g. a slice of a batch); its own
    strides are used.
    """
    sn, sc, sy, sx = xpad.strides
    (kh, kw), (sh, sw), (ho, wo) = kernel, stride, out_hw
    shape = (xpad.shape[0], xpad.shape[1], kh, kw, ho, wo)
    strides = (sn, sc, sy, sx, sh * sy, sw * sx)
    return native.lib.stride_tricks.as_strided(xpad, shape=shape, strides=strides)


def add_windows(cols: Any, padded_shape: tuple[int, ...], stride: Pair, native: ModuleType) -> Any:
    """col2im: the adjoint of :func:`window_view`.

    Shapes: cols (N, C, kh, kw, Ho, Wo) -> (N, C, Hp, Wp), where
    ``out[n, c, sh·y + i, sw·z + j] += cols[n, c, i, j, y, z]``: one strided
    add per tap (``kh·kw`` kernels), each over the whole chunk.
    """
    _, _, kh, kw, ho, wo = cols.shape
    sh, sw = stride
    out = native.zeros(padded_shape, dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            out[:, :, i : i + sh * (ho - 1) + 1 : sh, j : j + sw * (wo - 1) + 1 : sw] += cols[:, :, i, j]
    return out

"""Max and average pooling on the GPU: the windows as one strided view, a reduction, col2im.

The maths is :mod:`refqt.ops.pool`'s: x (N, C, H, W) -> (N, C, Ho, Wo), the
window of output ``(y, z)`` being ``xpad[n, c, sh·y + i, sw·z + j]`` for the
``kh·kw`` taps ``(i, j)``. The CPU path takes the taps as ``kh·kw`` slices,
stacks them and, backward, builds one masked array per tap; here

* **max forward**: the window view (:func:`refqt.gpu.windows.window_view`)
  copied once into (N, C, K, Ho, Wo), K = kh·kw, then ``argmax`` over K (the
  first maximum, as the CPU path and PyTorch) and the max read from it;
* **max backward**: ``g`` placed at the winning tap in one ``where`` against
  ``arange(K)``, then col2im (:func:`refqt.gpu.windows.add_windows`, kh·kw
  strided adds);
* **average**: the mean of the view over its two tap axes (one reduction);
  backward, ``g / K`` broadcast to every tap (a view) and col2im.

**No host synchronisation.**
"""

from __future__ import annotations

from typing import Any

from refqt.backend import backend_of
from refqt.gpu.windows import add_windows, padded, window_view

Pair = tuple[int, int]


def max_pool(x: Any, kernel: Pair, stride: Pair, padding: Pair, out_hw: Pair) -> tuple[Any, Any]:
    """``(out, which)``: out (N, C, Ho, Wo) the window maxima, which the tap ``i·kw + j`` of the first."""
    native = backend_of(x).native
    n, c = x.shape[:2]
    view = window_view(padded(x, padding, native, -float("inf")), kernel, stride, out_hw, native)
    taps = native.ascontiguousarray(view).reshape(n, c, kernel[0] * kernel[1], *out_hw)
    which = native.argmax(taps, axis=2)
    out = native.take_along_axis(taps, which[:, :, None], axis=2)[:, :, 0]
    return out, which


def max_pool_grad(
    g: Any, which: Any, x_shape: tuple[int, ...], kernel: Pair, stride: Pair, padding: Pair
) -> Any:
    """``g_x`` (N, C, H, W): each ``g`` added to the pixel of its window's first maximum."""
    native = backend_of(g).native
    taps = native.arange(kernel[0] * kernel[1]).reshape(-1, 1, 1)
    parts = native.where(which[:, :, None] == taps, g[:, :, None], g.dtype.type(0))  # (N, C, K, Ho, Wo)
    return _col2im(parts, x_shape, kernel, stride, padding)


def avg_pool(x: Any, kernel: Pair, stride: Pair, padding: Pair, out_hw: Pair) -> Any:
    """Window means (N, C, Ho, Wo), zero padding counted in the divisor kh·kw."""
    native = backend_of(x).native
    view = window_view(padded(x, padding, native), kernel, stride, out_hw, native)
    return native.mean(view, axis=(2, 3))


def avg_pool_grad(g: Any, x_shape: tuple[int, ...], kernel: Pair, stride: Pair, padding: Pair) -> Any:
    """``g_x`` (N, C, H, W): ``g / (kh·kw)`` added to every pixel of its window."""
    native = backend_of(g).native
    k = kernel[0] * kernel[1]
    share = native.broadcast_to((g / k)[:, :, None], (*g.shape[:2], k, *g.shape[2:]))
    return _col2im(share, x_shape, kernel, stride, padding)


def _col2im(parts: Any, x_shape: tuple[int, ...], kernel: Pair, stride: Pair, padding: Pair) -> Any:
    """(N, C, kh·kw, Ho, Wo) per-tap values -> (N, C, H, W), added back and cropped."""
    native = backend_of(parts).native
    n, c, h, w = x_shape
    (ph, pw), (ho, wo) = padding, parts.shape[3:]
    cols = parts.reshape(n, c, kernel[0], kernel[1], ho, wo)
    gpad = add_windows(cols, (n, c, h + 2 * ph, w + 2 * pw), stride, native)
    return gpad[:, :, ph : ph + h, pw : pw + w]

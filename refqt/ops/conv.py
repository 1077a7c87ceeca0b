"""2-D convolution (cross-correlation, as in every deep-learning library) with its VJPs.

Shapes: input ``x`` (N, C, H, W), filters ``w`` (F, C, kh, kw), bias ``b`` (F,),
output (N, F, Ho, Wo) with ``Ho = (H + 2·ph − kh) // sh + 1`` (same for W).

    out[n, f, y, z] = b[f] + Σ_{c,i,j} w[f, c, i, j] · xpad[n, c, sh·y + i, sw·z + j]

The VJPs are again convolutions:

* ``g_w[f, c, i, j] = Σ_{n,y,z} g[n, f, y, z] · xpad[n, c, sh·y + i, sw·z + j]``
* ``g_x = crop(col2im(wᵀ g))``: every output position sends ``w[f, :, i, j] · g``
  back to the input pixel it read, and the padding is cut off again.
* ``g_b[f] = Σ_{n,y,z} g[n, f, y, z]``

This file holds the plain *reference* path, written with the array API only
(so it runs on NumPy, CuPy and array_api_strict): im2col by slicing, one
matmul, col2im by slicing. Two fast paths give the same results (each tested
against this one): :mod:`refqt.ops.conv_fast`, tuned for a CPU cache (small
chunks, Winograd), used on NumPy; and :mod:`refqt.gpu.conv`, a few large
kernels per chunk of whole images, used on CuPy (and on NumPy inside
:func:`refqt.backend.emulate_device`). The raw-array helpers
:func:`conv2d_forward`, :func:`conv2d_grad_input` and :func:`conv2d_grad_weight`
pick the path -- the GPU one wherever :func:`refqt.backend.device_path` says
so; the FQT layer calls the two gradient helpers with two differently
quantized cotangents.
"""

from __future__ import annotations

from typing import Any

from refqt.autodiff import Context, Function
from refqt.backend import backend_of, device_path, namespace
from refqt.tensor import Tensor, as_tensor

IntPair = int | tuple[int, int]


def pair(v: IntPair, name: str, op: str = "conv2d") -> tuple[int, int]:
    """``v`` as ``(vertical, horizontal)``; an int is used for both."""
    if isinstance(v, int):
        return (v, v)
    if isinstance(v, tuple | list) and len(v) == 2 and all(isinstance(a, int) for a in v):
        return (v[0], v[1])
    raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {v!r}")


def output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Length of the output along one axis: ``(size + 2·padding − kernel) // stride + 1``."""
    return (size + 2 * padding - kernel) // stride + 1


def input_grad_as_conv(
    w: Any, stride: tuple[int, int], padding: tuple[int, int], native: Any
) -> tuple[Any, tuple[int, int]] | None:
    """The input gradient of a stride-1 convolution as a stride-1 convolution, when it is one.

    With stride 1 and padding ``p ≤ k − 1``, ``g_x = conv(g, flip(w)ᵀ, padding = k − 1 − p)``:
    returns ``(flip(w)ᵀ, k − 1 − p)``, the filters (C, F, kh, kw) contiguous in ``native``
    (``numpy`` or ``cupy``); None otherwise (the fast paths then scatter columns back).
    """
    (ph, pw), (kh, kw) = padding, w.shape[2:]
    if stride != (1, 1) or ph > kh - 1 or pw > kw - 1:
        return None
    return native.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)), (kh - 1 - ph, kw - 1 - pw)


def check_conv_args(x: Any, w: Any, stride: IntPair, padding: IntPair) -> tuple[tuple[int, int], ...]:
    """Validate a conv2d call; return ``(stride, padding, (Ho, Wo))`` as pairs.

    Raises
    ------
    ValueError
        For a non-4-D input or filter, a channel mismatch, a kernel larger than
        the padded input, or a stride < 1 / padding < 0.
    TypeError
        For integer or boolean arrays, or x and w of different dtypes.
    """
    stride, padding = pair(stride, "stride"), pair(padding, "padding")
    if x.ndim != 4:
        raise ValueError(f"conv2d: expected x of shape (N, C, H, W), got shape {tuple(x.shape)}")
    if w.ndim != 4:
        raise ValueError(f"conv2d: expected w of shape (F, C, kh, kw), got shape {tuple(w.shape)}")
    xp = namespace(x)
    for name, a in (("x", x), ("w", w)):
        if not xp.isdtype(a.dtype, "real floating"):
            raise TypeError(f"conv2d: expected a floating-point {name}, got dtype {a.dtype}")
    if x.dtype != w.dtype:
        raise TypeError(f"conv2d: x is {x.dtype} but w is {w.dtype}; cast one of them")
    if x.shape[1] != w.shape[1]:
        raise ValueError(
            f"conv2d: x has {x.shape[1]} channels (shape {tuple(x.shape)}) but w expects "
            f"{w.shape[1]} (shape {tuple(w.shape)})"
        )
    if min(stride) < 1 or min(padding) < 0:
        raise ValueError(f"conv2d: need stride >= 1 and padding >= 0, got stride={stride}, padding={padding}")
    hp, wp = x.shape[2] + 2 * padding[0], x.shape[3] + 2 * padding[1]
    if w.shape[2] > hp or w.shape[3] > wp:
        raise ValueError(
            f"conv2d: kernel {w.shape[2]}×{w.shape[3]} is larger than the padded input {hp}×{wp} "
            f"(x shape {tuple(x.shape)}, padding {padding})"
        )
    out_hw = (
        output_size(x.shape[2], w.shape[2], stride[0], padding[0]),
        output_size(x.shape[3], w.shape[3], stride[1], padding[1]),
    )
    return stride, padding, out_hw


# -- the reference path: array API only ------------------------------------------------------


def pad2d(x: Any, padding: tuple[int, int], value: float = 0.0) -> Any:
    """``x`` (N, C, H, W) with ``padding`` rows/columns of ``value`` added on every side."""
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    xp = namespace(x)
    n, c, h, w = x.shape
    out = xp.full((n, c, h + 2 * ph, w + 2 * pw), value, dtype=x.dtype)
    out[:, :, ph : ph + h, pw : pw + w] = x
    return out


def window(i: int, j: int, stride: tuple[int, int], out_hw: tuple[int, int]) -> tuple[Any, ...]:
    """Index of the pixels that kernel tap ``(i, j)`` reads for every output position."""
    (sh, sw), (ho, wo) = stride, out_hw
    return (
        slice(None),
        slice(None),
        slice(i, i + sh * (ho - 1) + 1, sh),
        slice(j, j + sw * (wo - 1) + 1, sw),
    )


def im2col(xpad: Any, kernel: tuple[int, int], stride: tuple[int, int], out_hw: tuple[int, int]) -> Any:
    """Patches of a padded input as columns.

    Shapes: xpad (N, C, Hp, Wp) -> cols (N, C·kh·kw, Ho·Wo), rows ordered
    ``(c, i, j)`` like ``w.reshape(F, C·kh·kw)``.
    """
    xp = namespace(xpad)
    kh, kw = kernel
    n, c = xpad.shape[:2]
    taps = [xpad[window(i, j, stride, out_hw)] for i in range(kh) for j in range(kw)]
    cols = xp.stack(taps, axis=2)  # (N, C, kh·kw, Ho, Wo)
    return xp.reshape(cols, (n, c * kh * kw, out_hw[0] * out_hw[1]))


def col2im(
    cols: Any,
    padded_shape: tuple[int, ...],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    out_hw: tuple[int, int],
) -> Any:
    """Adjoint of :func:`im2col`: add every column entry back onto the pixel it came from.

    Shapes: cols (N, C·kh·kw, Ho·Wo) -> (N, C, Hp, Wp).
    """
    xp = namespace(cols)
    kh, kw = kernel
    n, c = padded_shape[:2]
    cols = xp.reshape(cols, (n, c, kh, kw, *out_hw))
    out = xp.zeros(padded_shape, dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            idx = window(i, j, stride, out_hw)
            out[idx] = out[idx] + cols[:, :, i, j, :, :]
    return out


def conv2d_forward_reference(x: Any, w: Any, stride: IntPair = 1, padding: IntPair = 0) -> Any:
    """``out = w · im2col(pad(x))``: x (N, C, H, W), w (F, C, kh, kw) -> (N, F, Ho, Wo)."""
    stride, padding, out_hw = check_conv_args(x, w, stride, padding)
    xp = namespace(x)
    f = w.shape[0]
    cols = im2col(pad2d(x, padding), tuple(w.shape[2:]), stride, out_hw)
    out = xp.matmul(xp.reshape(w, (f, -1)), cols)  # (N, F, Ho·Wo)
    return xp.reshape(out, (x.shape[0], f, *out_hw))


def conv2d_grad_input_reference(
    g: Any, w: Any, x_shape: tuple[int, ...], stride: IntPair = 1, padding: IntPair = 0
) -> Any:
    """``g_x = crop(col2im(w_matᵀ · g))``: g (N, F, Ho, Wo) -> (N, C, H, W)."""
    stride, padding = pair(stride, "stride"), pair(padding, "padding")
    xp = namespace(g)
    n, f, ho, wo = g.shape
    (ph, pw), (_, _, h, wd) = padding, x_shape
    w_mat = xp.reshape(w, (f, -1))
    cols = xp.matmul(xp.permute_dims(w_mat, (1, 0)), xp.reshape(g, (n, f, ho * wo)))
    padded = col2im(cols, (n, x_shape[1], h + 2 * ph, wd + 2 * pw), tuple(w.shape[2:]), stride, (ho, wo))
    return padded[:, :, ph : ph + h, pw : pw + wd]


def conv2d_grad_weight_reference(
    g: Any, x: Any, w_shape: tuple[int, ...], stride: IntPair = 1, padding: IntPair = 0
) -> Any:
    """``g_w = Σ_n g[n] · im2col(pad(x))[n]ᵀ``: g (N, F, Ho, Wo), x (N, C, H, W) -> (F, C, kh, kw)."""
    stride, padding = pair(stride, "stride"), pair(padding, "padding")
    xp = namespace(g)
    n, f, ho, wo = g.shape
    cols = im2col(pad2d(x, padding), tuple(w_shape[2:]), stride, (ho, wo))
    gw = xp.matmul(xp.reshape(g, (n, f, ho * wo)), xp.permute_dims(cols, (0, 2, 1)))  # (N, F, C·kh·kw)
    return xp.reshape(xp.sum(gw, axis=0), tuple(w_shape))


# -- the helpers layers call: fast path where there is one -------------------------------------


def conv2d_forward(x: Any, w: Any, stride: IntPair = 1, padding: IntPair = 0) -> Any:
    """Convolution of raw arrays: x (N, C, H, W), w (F, C, kh, kw) -> (N, F, Ho, Wo).

    Uses :mod:`refqt.gpu.conv` where :func:`~refqt.backend.device_path` says so,
    :mod:`refqt.ops.conv_fast` on NumPy, the reference path otherwise.
    """
    from refqt.gpu import conv as gpu_conv
    from refqt.ops import conv_fast

    stride, padding, _ = check_conv_args(x, w, stride, padding)
    native = backend_of(x).native
    if native is None:
        return conv2d_forward_reference(x, w, stride, padding)
    if device_path(x):
        return gpu_conv.forward(x, w, stride, padding, native)
    return conv_fast.forward(x, w, stride, padding, native)


def conv2d_grad_input(
    g: Any, w: Any, x_shape: tuple[int, ...], stride: IntPair = 1, padding: IntPair = 0
) -> Any:
    """VJP of the convolution with respect to its input: g (N, F, Ho, Wo) -> (N, C, H, W)."""
    from refqt.gpu import conv as gpu_conv
    from refqt.ops import conv_fast

    stride, padding = pair(stride, "stride"), pair(padding, "padding")
    _check_cotangent(g, w.shape[0], "conv2d_grad_input")
    native = backend_of(g).native
    if native is None:
        return conv2d_grad_input_reference(g, w, tuple(x_shape), stride, padding)
    if device_path(g):
        return gpu_conv.grad_input(g, w, tuple(x_shape), stride, padding, native)
    return conv_fast.grad_input(g, w, tuple(x_shape), stride, padding, native)


def conv2d_grad_weight(
    g: Any, x: Any, w_shape: tuple[int, ...], stride: IntPair = 1, padding: IntPair = 0
) -> Any:
    """VJP of the convolution with respect to its filters: g (N, F, Ho, Wo) -> (F, C, kh, kw)."""
    from refqt.gpu import conv as gpu_conv
    from refqt.ops import conv_fast

    stride, padding = pair(stride, "stride"), pair(padding, "padding")
    _check_cotangent(g, w_shape[0], "conv2d_grad_weight")
    native = backend_of(g).native
    if native is None:
        return conv2d_grad_weight_reference(g, x, tuple(w_shape), stride, padding)
    if device_path(g):
        return gpu_conv.grad_weight(g, x, tuple(w_shape), stride, padding, native)
    return conv_fast.grad_weight(g, x, tuple(w_shape), stride, padding, native)


def _check_cotangent(g: Any, filters: int, op: str) -> None:
    if g.ndim != 4 or g.shape[1] != filters:
        raise ValueError(f"{op}: expected g of shape (N, {filters}, Ho, Wo), got shape {tuple(g.shape)}")


class Conv2d(Function):
    """out = conv(x, w) + b;  g_x = conv_grad_input(g, w),  g_w = conv_grad_weight(g, x),  g_b = Σ g.

    ``b`` is optional: the op takes two or three tensor inputs.
    """

    @staticmethod
    def forward(ctx: Context, x: Any, w: Any, *b: Any, stride: IntPair = 1, padding: IntPair = 0) -> Any:
        out = conv2d_forward(x, w, stride, padding)
        if b:
            (bias,) = b
            if bias.ndim != 1 or bias.shape[0] != w.shape[0]:
                raise ValueError(
                    f"conv2d: expected b of shape ({w.shape[0]},), got shape {tuple(bias.shape)}"
                )
            out = out + namespace(out).reshape(bias, (1, -1, 1, 1))
        ctx.save_for_backward(x, w, stride, padding)
        return out

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        x, w, stride, padding = ctx.saved
        need = ctx.needs_input_grad
        gx = conv2d_grad_input(g, w, tuple(x.shape), stride, padding) if need[0] else None
        gw = conv2d_grad_weight(g, x, tuple(w.shape), stride, padding) if need[1] else None
        if len(need) == 2:
            return gx, gw
        gb = namespace(g).sum(g, axis=(0, 2, 3)) if need[2] else None
        return gx, gw, gb


def conv2d(x: Any, w: Any, b: Any = None, stride: IntPair = 1, padding: IntPair = 0) -> Tensor:
    """2-D convolution of Tensors: x (N, C, H, W), w (F, C, kh, kw), b (F,) -> (N, F, Ho, Wo).

    ``stride`` and ``padding`` are ints or ``(vertical, horizontal)`` pairs;
    padding adds zeros on every side.
    """
    x = as_tensor(x)
    w = as_tensor(w, like=x)
    if b is None:
        return Conv2d.apply(x, w, stride=stride, padding=padding)
    return Conv2d.apply(x, w, as_tensor(b, like=x), stride=stride, padding=padding)

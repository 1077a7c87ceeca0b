"""Winograd's F(2×2, 3×3): a 3×3, stride-1 convolution with 16 multiplies per 2×2 outputs, not 36.

Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (CVPR 2016).
Cut the padded input into 4×4 tiles ``d`` that overlap by two pixels; each
tile gives a 2×2 block of the output::

    Y = Aᵀ [ (G w Gᵀ) ⊙ (Bᵀ d B) ] A        (⊙: elementwise, summed over channels)

    Bᵀ = [[1, 0,-1, 0],    G = [[ 1,   0,   0 ],    Aᵀ = [[1, 1, 1, 0],
          [0, 1, 1, 0],         [1/2, 1/2, 1/2],          [0, 1,-1,-1]]
          [0,-1, 1, 0],         [1/2,-1/2, 1/2],
          [0, 1, 0,-1]]         [ 0,   0,   1 ]]

Summing over channels turns the ⊙ into 16 matrix products, one per position
``(ξ, ν)`` of the 4×4 transformed tile: ``M[ξν] = U[ξν] (F, C) @ V[ξν] (C, tiles)``.
Those products are the work; the transforms are additions.

Memory layout, so that NumPy only ever touches contiguous rows: the padded
image is split into four *parity planes* ``plane[qr][qc][c, a, b] =
padded[c, 2a + qr, 2b + qc]``, each flattened to one axis with rows of length
``r = tw + 1``. Tap ``(u, v)`` of tile ``(a, b)`` is then
``plane[u % 2][v % 2].flat[t + (u // 2)·r + v // 2]`` with ``t = a·r + b``: a
shifted contiguous slice, for all tiles at once. Tiles with ``b = tw`` are junk
(they wrap into the next row) and are dropped at the end.

Used by :mod:`refqt.ops.conv_fast` on NumPy / CuPy (``native`` is the
``numpy`` or ``cupy`` module); tested against the im2col reference in
:mod:`refqt.ops.conv`.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

_G = [[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]]


def applies(w_shape: tuple[int, ...], stride: tuple[int, int]) -> bool:
    """Whether a convolution with filters of ``w_shape`` and ``stride`` can use F(2×2, 3×3)."""
    return tuple(w_shape[2:]) == (3, 3) and stride == (1, 1)


def _bt(d0: Any, d1: Any, d2: Any, d3: Any, out: Any, native: ModuleType) -> None:
    """``out[k] = (Bᵀ d)[k]`` for a 4-tap signal ``d0..d3``: d0−d2, d1+d2, d2−d1, d1−d3."""
    native.subtract(d0, d2, out=out[0])
    native.add(d1, d2, out=out[1])
    native.subtract(d2, d1, out=out[2])
    native.subtract(d1, d3, out=out[3])


def _at(m0: Any, m1: Any, m2: Any, m3: Any, out0: Any, out1: Any, native: ModuleType) -> None:
    """``(out0, out1) = Aᵀ m``: m0+m1+m2 and m1−m2−m3."""
    native.add(m0, m1, out=out0)
    out0 += m2
    native.subtract(m1, m2, out=out1)
    out1 -= m3


def conv3x3(x: Any, w: Any, padding: tuple[int, int], native: ModuleType) -> Any:
    """3×3, stride-1 convolution of raw arrays by F(2×2, 3×3).

    Parameters
    ----------
    x : array (N, C, H, W)
    w : array (F, C, 3, 3)
    padding : (ph, pw)
        Zeros added on every side.
    native : module
        ``numpy`` or ``cupy``.

    Returns
    -------
    array (N, F, H + 2ph − 2, W + 2pw − 2)
    """
    n, c, h, wd = x.shape
    f = w.shape[0]
    ph, pw = padding
    ho, wo = h + 2 * ph - 2, wd + 2 * pw - 2
    th, tw = (ho + 1) // 2, (wo + 1) // 2  # tiles per column / row
    r = tw + 1  # length of a parity-plane row
    dtype = x.dtype
    out = native.empty((n, f, ho, wo), dtype=dtype)

    g_mat = native.asarray(_G, dtype=dtype)
    u = native.einsum("xi,fcij,yj->xyfc", g_mat, w, g_mat).reshape(16, f, c)  # G w Gᵀ per (ξ, ν)

    # Parity planes of the padded image, all channels on one flat axis (channel c
    # starts at c·lp), so that every transform step is one contiguous 1-D array op.
    # Positions whose tile index t = p − c·lp is ≥ th·r are junk and never read back.
    lp = (th + 1) * r + 1
    length = c * lp
    planes = native.zeros((2, 2, length + r + 2), dtype=dtype)  # padding zeros are written once
    grid = planes[:, :, :length].reshape(2, 2, c, lp)[..., : (th + 1) * r].reshape(2, 2, c, th + 1, r)
    fills = []  # (destination in a plane, first input row, first input column)
    for qr in range(2):
        i0 = (qr - ph) % 2  # first input row whose padded row has parity qr
        rows = range(i0, h, 2)
        for qc in range(2):
            j0 = (qc - pw) % 2
            cols = range(j0, wd, 2)
            a0, b0 = (ph + i0 - qr) // 2, (pw + j0 - qc) // 2
            fills.append((grid[qr, qc, :, a0 : a0 + len(rows), b0 : b0 + len(cols)], i0, j0))

    t = native.empty((4, 2, length + 1), dtype=dtype)  # Bᵀ applied along rows
    v = native.empty((4, 4, length), dtype=dtype)  # Bᵀ d B
    tiles = th * r
    m = native.empty((16, f, tiles), dtype=dtype)  # U ⊙ V summed over channels
    s = native.empty((4, 2, f * tiles), dtype=dtype)  # Aᵀ applied along columns
    y = native.empty((f, th, 2, r, 2), dtype=dtype)  # y[:, a, u, b, v] = out[:, 2a+u, 2b+v]

    for k in range(n):
        for dst, i0, j0 in fills:
            dst[...] = x[k, :, i0::2, j0::2]
        for qc in range(2):  # vertical taps u = 0..3 live in planes (0, 1, 0, 1), rows (+0, +0, +1, +1)
            _bt(
                *[planes[uu % 2, qc, (uu // 2) * r : (uu // 2) * r + length + 1] for uu in range(4)],
                t[:, qc],
                native,
            )
        for xi in range(4):  # horizontal taps v = 0..3: parity (0, 1, 0, 1), shift (+0, +0, +1, +1)
            _bt(*[t[xi, vv % 2, vv // 2 : vv // 2 + length] for vv in range(4)], v[xi], native)
        native.matmul(u, v.reshape(16, c, lp)[:, :, :tiles], out=m)
        mm = m.reshape(4, 4, f * tiles)
        for xi in range(4):
            _at(*mm[xi], s[xi, 0], s[xi, 1], native)
        for vv in range(2):
            _at(
                *[s[xi, vv].reshape(f, th, r) for xi in range(4)],
                y[:, :, 0, :, vv],
                y[:, :, 1, :, vv],
                native,
            )
        out[k] = y.reshape(f, 2 * th, 2 * r)[:, :ho, :wo]
    return out

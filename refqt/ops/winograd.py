"""Winograd's F(2×2, 3×3): a 3×3, stride-1 convolution with 16 multiplies per 2×2 outputs, not 36.

Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (CVPR 2016).
Cut the padded input into 4×4 tiles ``d`` that overlap by two pixels; each
tile gives a 2×2 block of the output::

    Y = Aᵀ [ U ⊙ V ] A,   U = G w Gᵀ,   V = Bᵀ d B     (⊙: elementwise, summed over channels)

    Bᵀ = [[1, 0,-1, 0],    G = [[ 1,   0,   0 ],    Aᵀ = [[1, 1, 1, 0],
          [0, 1, 1, 0],         [1/2, 1/2, 1/2],          [0, 1,-1,-1]]
          [0,-1, 1, 0],         [1/2,-1/2, 1/2],
          [0, 1, 0,-1]]         [ 0,   0,   1 ]]

Summing over channels turns the ⊙ into 16 matrix products, one per position
``(ξ, ν)`` of the 4×4 transformed tile: ``M[ξν] = U[ξν] (F, C) @ V[ξν] (C, tiles)``.
Those products are the work; the transforms are additions.

The weight gradient is the same picture read backwards (the map is linear in
``U``): with ``g`` cut into the 2×2 blocks the tiles produced,

    g_U[ξν] = Σ_tiles (A g Aᵀ)[ξν] (F, tiles) @ V[ξν]ᵀ (tiles, C),     g_w = Gᵀ g_U G.

Three things make it fast on a CPU (measured on the ResNet layer of
:mod:`refqt.benchmarks.conv`, one thread):

* **Bands.** An image is done a *band* of tile rows at a time, sized
  (``CPU_BAND_BYTES``) so that the buffers of a band mostly stay in the
  processor's L2 cache; the buffers are allocated once and reused.
* **Parity planes**, so that NumPy only ever touches long contiguous rows: the
  band's padded rows are split into four planes ``plane[qr][qc][c, a, b] =
  padded[c, row0 + 2a + qr, 2b + qc]``, each flattened to one axis (all
  channels, rows of length ``r = tw + 1``). Tap ``(u, v)`` of tile ``(a, b)``
  is then ``plane[u % 2][v % 2].flat[t + (u // 2)·r + v // 2]`` with
  ``t = a·r + b``: a shifted contiguous slice, for all tiles at once. Tiles
  with ``b = tw`` are junk (they wrap into the next row): they are dropped
  from the output, and their ``g`` is zero in the weight gradient.
* **Cache-line-aligned rows.** Every buffer row starts on a 64-byte boundary,
  so NumPy's vector loops store whole cache lines (the transforms ran 1.8×
  slower without it).

Used by :mod:`refqt.ops.conv_fast` on NumPy / CuPy (``native`` is the
``numpy`` or ``cupy`` module); tested against the im2col reference in
:mod:`refqt.ops.conv`.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import Any

CPU_BAND_BYTES = 3 << 20  # buffers of one band: about an L2 cache (not all of them are live at once)
GPU_BAND_BYTES = 1 << 30

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


class _Geometry:
    """Sizes of the tiling of one image, and the bands of tile rows it is done in."""

    def __init__(
        self, x_shape: tuple[int, ...], f: int, padding: tuple[int, int], itemsize: int, native: ModuleType
    ):
        _, c, self.h, self.w = x_shape
        self.ph, self.pw = padding
        self.ho, self.wo = self.h + 2 * self.ph - 2, self.w + 2 * self.pw - 2  # output size
        self.th, self.tw = (self.ho + 1) // 2, (self.wo + 1) // 2  # tiles per column / row
        self.r = self.tw + 1  # length of a parity-plane row (one junk tile per row)
        budget = CPU_BAND_BYTES if native.__name__ == "numpy" else GPU_BAND_BYTES
        # Per tile row, the band buffers hold 28 values per channel (planes, Bᵀ d, V) and 28
        # per filter (U ⊙ V, Aᵀ m and y in the forward; g, A g, A g Aᵀ in the weight gradient).
        self.itemsize = itemsize
        bytes_per_tile_row = 28 * (c + f) * self.r * itemsize
        bands = -(-self.th // max(1, budget // bytes_per_tile_row))
        self.nb = -(-self.th // bands)  # tile rows per band: as many as fit, split evenly
        self.tiles = self.nb * self.r  # tiles of a band, junk included
        self.lp = (self.nb + 1) * self.r + 1  # one channel of a parity plane, with room for the shifts

    def bands(self) -> Iterator[tuple[int, int]]:
        """``(a0, rows)``: first tile row of each band and how many of its rows are real."""
        for a0 in range(0, self.th, self.nb):
            yield a0, min(self.nb, self.th - a0)

    def row_range(self, first: int, rows: int, size: int) -> tuple[int, int]:
        """Which ``a`` in ``[0, rows)`` read a real row ``first + 2a`` of an image with ``size`` rows."""
        lo = min(rows, max(0, (-first + 1) // 2))
        return lo, max(lo, min(rows, (size - first + 1) // 2))


def _fill(grid: Any, image: Any, row0: int, geo: _Geometry) -> None:
    """``grid[qr, qc, c, a, b] = padded[c, row0 + 2a + qr, 2b + qc]`` for one image (C, H, W).

    Columns that fall in the padding are never written (they stay zero from the
    allocation); rows that fall in the padding are zeroed here.
    """
    rows = grid.shape[3]
    for qr in range(2):
        first = row0 + qr - geo.ph  # image row read by a = 0
        lo, hi = geo.row_range(first, rows, geo.h)
        for qc in range(2):
            j0 = (qc - geo.pw) % 2  # first image column whose padded column has parity qc
            b0, cols = (geo.pw + j0 - qc) // 2, len(range(j0, geo.w, 2))
            if lo > 0:
                grid[qr, qc, :, :lo] = 0
            if hi < rows:
                grid[qr, qc, :, hi:] = 0
            if hi > lo:
                rows_read = slice(first + 2 * lo, first + 2 * hi - 1, 2)
                grid[qr, qc, :, lo:hi, b0 : b0 + cols] = image[:, rows_read, j0::2]


def _aligned_empty(size: int, dtype: Any, native: ModuleType) -> Any:
    """A 1-D buffer of ``size`` values that starts on a 64-byte boundary (a cache line)."""
    if native.__name__ != "numpy":
        return native.empty(size, dtype=dtype)  # CuPy's allocations are already 256-byte aligned
    raw = native.empty(size + 64, dtype=dtype)
    skip = (-raw.ctypes.data % 64) // raw.itemsize
    return raw[skip : skip + size]


def _row(n: int, itemsize: int) -> int:
    """``n`` rounded up to whole cache lines (64 bytes) of ``itemsize``-byte values."""
    per_line = max(1, 64 // itemsize)
    return n + (-n) % per_line


class _InputTransform:
    """``V = Bᵀ d B`` for every tile of a band: buffers (C channels) allocated once.

    Every row of a buffer (a flat plane, a row of ``t`` or of ``v``) starts on a
    cache line (see the module docstring).
    """

    def __init__(
        self, c: int, geo: _Geometry, dtype: Any, native: ModuleType, share: tuple[int, int] = (0, 0)
    ):
        """``share``: sizes of buffers the caller will carve out of ``t_memory`` and ``v_memory``."""
        self.geo, self.native, self.length = geo, native, c * geo.lp
        r, nb, size = geo.r, geo.nb, geo.itemsize
        p_row, t_row, v_row = (
            _row(self.length + r + 2, size),
            _row(self.length + 1, size),
            _row(self.length, size),
        )
        self.planes = _aligned_empty(4 * p_row, dtype, native).reshape(2, 2, p_row)
        self.planes[...] = 0  # the padding zeros are written once
        grid = self.planes[:, :, : self.length].reshape(2, 2, c, geo.lp)[..., : (nb + 1) * r]
        self.grid = grid.reshape(2, 2, c, nb + 1, r)
        self.t_memory = _aligned_empty(max(8 * t_row, share[0]), dtype, native)
        self.v_memory = _aligned_empty(max(16 * v_row, share[1]), dtype, native)
        t = self.t_memory[: 8 * t_row].reshape(4, 2, t_row)[..., : self.length + 1]  # Bᵀ along columns
        self.v = self.v_memory[: 16 * v_row].reshape(4, 4, v_row)[..., : self.length]
        # The two passes, as views of these buffers (set up once: they are the same for every band).
        # Vertical taps u = 0..3 are planes qr = (0, 1, 0, 1) shifted by (0, 0, 1, 1) rows; both qc at once.
        length = self.length
        self.vertical = [self.planes[u % 2, :, (u // 2) * r : (u // 2) * r + length + 1] for u in range(4)], t
        # Horizontal taps v = 0..3 are parities qc = (0, 1, 0, 1) shifted by (0, 0, 1, 1); all ξ at once.
        self.horizontal = [t[:, v % 2, v // 2 : v // 2 + length] for v in range(4)], self.v.transpose(1, 0, 2)
        self.result = self.v.reshape(16, c, geo.lp)[:, :, : geo.tiles]  # splits the last axis: a view

    def __call__(self, image: Any, a0: int) -> Any:
        """V of the band starting at tile row ``a0`` of ``image`` (C, H, W): (16, C, tiles), a view.

        Each pass runs over all channels as one flat axis (a few positions in it
        are junk), which is what NumPy does fastest.
        """
        _fill(self.grid, image, 2 * a0, self.geo)
        taps, out = self.vertical
        _bt(*taps, out, self.native)
        taps, out = self.horizontal
        _bt(*taps, out, self.native)
        return self.result


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
    n, c = x.shape[:2]
    f = w.shape[0]
    geo = _Geometry(x.shape, f, padding, x.itemsize, native)
    nb, r, tiles = geo.nb, geo.r, geo.tiles
    out = native.empty((n, f, geo.ho, geo.wo), dtype=x.dtype)

    g_mat = native.asarray(_G, dtype=x.dtype)
    w_tiles = native.einsum("xi,fcij,yj->xyfc", g_mat, w, g_mat).reshape(16, f, c)  # U = G w Gᵀ per (ξ, ν)
    transform = _InputTransform(c, geo, x.dtype, native, share=(8 * f * tiles, 4 * f * nb * r))
    m = _aligned_empty(16 * f * tiles, x.dtype, native).reshape(16, f, tiles)  # U ⊙ V summed over channels
    # Aᵀ's buffers reuse the memory of Bᵀ's, which is free again once m is computed: fewer
    # bytes to keep in the L2 cache (about 5% faster here). s: Aᵀ applied along ν;
    # y[u, v, :, a, b] = out[:, 2(a0 + a) + u, 2b + v].
    s = transform.t_memory[: 8 * f * tiles].reshape(4, 2, f * tiles)
    y = transform.v_memory[: 4 * f * nb * r].reshape(2, 2, f, nb, r)

    # Aᵀ along ν (all ξ at once) into s, then along ξ (both v at once) into y: views set up once.
    along_nu = [*m.reshape(4, 4, f * tiles).transpose(1, 0, 2), s[:, 0], s[:, 1]]
    along_xi = [*s.reshape(4, 2 * f * tiles), y[0].reshape(-1), y[1].reshape(-1)]
    for k in range(n):
        for a0, rows in geo.bands():
            native.matmul(w_tiles, transform(x[k], a0), out=m)
            _at(*along_nu, native)
            _at(*along_xi, native)
            y_rows = min(2 * rows, geo.ho - 2 * a0)  # the last band may hold a half tile row
            for u in range(2):  # interleave y into the output
                for v in range(2):
                    block = out[k, :, 2 * a0 + u : 2 * a0 + y_rows : 2, v::2]
                    block[...] = y[u, v, :, : block.shape[1], : block.shape[2]]
    return out


def grad_weight3x3(g: Any, x: Any, padding: tuple[int, int], native: ModuleType) -> Any:
    """Weight gradient of a 3×3, stride-1 convolution by F(2×2, 3×3).

    ``g_w[f, c, i, j] = Σ_{n,y,z} g[n, f, y, z] · xpad[n, c, y + i, z + j]``,
    computed as ``Gᵀ (Σ_tiles (A g Aᵀ) ⊙ V) G``.

    One sign is moved to save work: with ``D = diag(1, 1, 1, −1)``, ``A' = D A``
    maps a 2-tap ``(p0, p1)`` to ``(p0, p0 + p1, p0 − p1, p1)``, so the four
    corners of ``A' g A'ᵀ`` are the 2×2 block of ``g`` itself, written straight
    from ``g``; the sign comes back through ``G' = D G``:
    ``g_w = G'ᵀ (Σ_tiles (A' g A'ᵀ) ⊙ V) G'``.

    Parameters
    ----------
    g : array (N, F, Ho, Wo)
        Cotangent of the output, ``Ho = H + 2ph − 2`` (same for W).
    x : array (N, C, H, W)
    padding : (ph, pw)
    native : module
        ``numpy`` or ``cupy``.

    Returns
    -------
    array (F, C, 3, 3)
    """
    n, c = x.shape[:2]
    f = g.shape[1]
    geo = _Geometry(x.shape, f, padding, x.itemsize, native)
    nb, tiles = geo.nb, geo.tiles

    transform = _InputTransform(c, geo, x.dtype, native)
    # A' g A'ᵀ of a band, tile-major with the filters last, so that the products below are
    # plain (C, tiles) @ (tiles, F) matrix products, the fastest kind for BLAS. Junk tiles stay 0.
    g_tiles = _aligned_empty(16 * nb * geo.r * f, x.dtype, native).reshape(4, 4, nb, geo.r, f)
    g_tiles[...] = 0
    g_u = native.zeros((16, c, f), dtype=x.dtype)  # Σ over tiles of V[ξν] (A' g A'ᵀ)[ξν]
    part = native.empty_like(g_u)
    for k in range(n):
        for a0, _ in geo.bands():
            for u in range(2):  # corners: g_tiles[3u, 3v, a, b] = g[:, 2(a0 + a) + u, 2b + v]
                lo, hi = geo.row_range(2 * a0 + u, nb, geo.ho)
                for v in range(2):
                    corner = g_tiles[3 * u, 3 * v]
                    corner[:lo] = 0
                    corner[hi:] = 0
                    cols = len(range(v, geo.wo, 2))
                    rows_read = slice(2 * a0 + u + 2 * lo, 2 * a0 + u + 2 * hi - 1, 2)
                    corner[lo:hi, :cols] = g[k, :, rows_read, v::2].transpose(1, 2, 0)
            ends = g_tiles[:, ::3]  # A' vertically: ξ = 1, 2 from ξ = 0, 3, at ν = 0, 3
            native.add(ends[0], ends[3], out=ends[1])
            native.subtract(ends[0], ends[3], out=ends[2])
            native.add(g_tiles[:, 0], g_tiles[:, 3], out=g_tiles[:, 1])  # A' horizontally, all ξ
            native.subtract(g_tiles[:, 0], g_tiles[:, 3], out=g_tiles[:, 2])
            native.matmul(transform(x[k], a0), g_tiles.reshape(16, tiles, f), out=part)
            g_u += part
    g_mat = native.asarray([*_G[:3], [0.0, 0.0, -1.0]], dtype=x.dtype)  # G' = D G
    return native.einsum("xi,xycf,yj->fcij", g_mat, g_u.reshape(4, 4, c, f), g_mat)

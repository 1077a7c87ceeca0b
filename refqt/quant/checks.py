"""Input checks shared by the quantizers: bits, dtype, finiteness, the row view."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from refqt.backend import backend_of, is_array, namespace

MAX_BITS = 16


def check_bits(owner: str, bits: Any) -> int:
    """``bits`` as an int in 1..16, else ValueError naming ``owner``."""
    if isinstance(bits, bool) or not isinstance(bits, numbers.Integral):
        raise ValueError(f"{owner}: bits must be an integer in 1..{MAX_BITS}, got {bits!r}")
    if not 1 <= int(bits) <= MAX_BITS:
        raise ValueError(f"{owner}: bits must be in 1..{MAX_BITS}, got {bits}")
    return int(bits)


NUMPY_FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


def check_float_array(owner: str, x: Any) -> None:
    """TypeError unless ``x`` is a real floating array (float16/32/64) of a known backend."""
    if type(x) is np.ndarray and x.dtype in NUMPY_FLOATS:  # the common case, without the namespace lookup
        return
    if not is_array(x):
        hint = " (a refqt Tensor: pass tensor.data)" if type(x).__name__ == "Tensor" else ""
        raise TypeError(
            f"{owner}: expected a NumPy, CuPy or array_api_strict array, got {type(x).__name__}{hint}"
        )
    xp = namespace(x)
    if not xp.isdtype(x.dtype, "real floating"):
        raise TypeError(
            f"{owner}: expected a float16/float32/float64 array, "
            f"got dtype {x.dtype} of shape {tuple(x.shape)}"
        )


class NonFiniteInputError(ValueError):
    """A quantizer was given NaN or Inf, or a range too wide for its dtype (in training: the run diverged)."""


def check_finite_ranges(owner: str, mins: Any, maxs: Any, shape: tuple[int, ...]) -> None:
    """NonFiniteInputError (a ValueError) if a range is not finite: the input held NaN or Inf.

    The row minima and maxima carry any NaN / Inf of the input, so this costs
    nothing beyond the range finding every quantizer does anyway.
    """
    if isinstance(mins, np.ndarray):  # NaN and ±Inf reach the smallest minimum or the largest maximum
        if mins.size and not (math.isfinite(mins.min()) and math.isfinite(maxs.max())):
            raise _non_finite(owner, shape)
        return
    xp = namespace(mins)
    if not bool(xp.all(xp.isfinite(mins)) & xp.all(xp.isfinite(maxs))):  # one read from a device, not two
        raise _non_finite(owner, shape)


def check_finite_range(owner: str, mn: float, mx: float, shape: tuple[int, ...]) -> None:
    """:func:`check_finite_ranges` for one tensor-wide range given as Python floats."""
    if not (math.isfinite(mn) and math.isfinite(mx)):
        raise _non_finite(owner, shape)


def _non_finite(owner: str, shape: tuple[int, ...]) -> NonFiniteInputError:
    return NonFiniteInputError(
        f"{owner}: input of shape {shape} contains NaN or Inf; refusing to quantize it"
    )


def work_dtype(xp: Any, dtype: Any) -> Any:
    """float64 for float64 input, float32 otherwise (float16 is computed in float32)."""
    return xp.float64 if dtype == xp.float64 else xp.float32


def as_rows(x: Any) -> Any:
    """View ``x`` of shape (N, ...) as the (N, D) matrix of its rows.

    A conv gradient (N, C, H, W) becomes (N, C·H·W); a 1-D array (N,) becomes
    (N, 1); a scalar becomes (1, 1).
    """
    if x.ndim == 0:
        return namespace(x).reshape(x, (1, 1))
    n = x.shape[0]
    d = math.prod(x.shape[1:])
    if isinstance(x, np.ndarray):
        return x.reshape(n, d)
    return namespace(x).reshape(x, (n, d))


def host_min_max(x: Any) -> tuple[float, float]:
    """``(min, max)`` of the whole array as Python floats, read back in one device-to-host copy.

    On a device this is one host synchronisation where two ``float()`` calls
    would be two; the forward and per-tensor gradient quantizers' device paths use it.
    """
    backend = backend_of(x)
    xp = backend.xp
    mn, mx = backend.to_numpy(xp.stack([xp.min(x), xp.max(x)])).tolist()
    return mn, mx

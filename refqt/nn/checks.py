"""Argument checks shared by the layer constructors.

Each check raises an exception that names the layer, the argument and what was
expected, so a mistake shows up where the layer is built rather than as a
NumPy error deep inside its first forward pass.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def is_int(value: Any) -> bool:
    """Whether ``value`` is a Python or NumPy integer (``True``/``False`` are not)."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def int_at_least(layer: str, name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an int if it is one and ≥ ``minimum``.

    Raises TypeError for a non-int (2.5, True), ValueError for one below ``minimum``.
    """
    if not is_int(value):
        raise TypeError(f"{layer}: {name} must be an int >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{layer}: {name} must be an int >= {minimum}, got {value}")
    return int(value)


def float_dtype(layer: str, dtype: Any) -> np.dtype:
    """``dtype`` as a NumPy dtype if it is a real floating type, else TypeError."""
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        resolved = None
    if resolved is None or not np.issubdtype(resolved, np.floating):
        shown = getattr(dtype, "__name__", repr(dtype))
        raise TypeError(f"{layer}: dtype must be a real floating type such as float32, got {shown}")
    return resolved

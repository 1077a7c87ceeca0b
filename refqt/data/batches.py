"""Mini-batches from host arrays, shuffled by an explicit generator, moved to a backend."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from refqt.backend import Backend


def iterate_batches(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    rng: np.random.Generator | None = None,
    shuffle: bool = True,
    drop_last: bool = False,
    backend: Backend | None = None,
) -> Iterator[tuple[Any, Any]]:
    """Yield ``(x_batch, y_batch)`` pairs covering ``(x, y)`` once (one epoch).

    Parameters
    ----------
    x : ndarray, shape (N, ...)
        Host (NumPy) array; the data set stays on the host.
    y : ndarray, shape (N,) or (N, ...)
    batch_size : int
        Examples per batch; the last batch is smaller unless ``drop_last``.
    rng : numpy.random.Generator, optional
        Draws the epoch's permutation. Required when ``shuffle`` is true:
        nothing here draws from global random state.
    shuffle : bool
        Visit examples in a random order (``True``) or in order.
    drop_last : bool
        Skip a final batch smaller than ``batch_size``.
    backend : refqt.backend.Backend, optional
        Move each batch to this backend (e.g. ``get_backend("cupy")``);
        ``None`` yields NumPy arrays.

    Yields
    ------
    x_batch : array, shape (B, ...), on ``backend``
    y_batch : array, shape (B, ...), on ``backend``
    """
    for name, a in (("x", x), ("y", y)):
        if not isinstance(a, np.ndarray):
            raise TypeError(
                f"iterate_batches: {name} must be a host NumPy array, got {type(a).__name__}; "
                "pass backend= to move batches to a device"
            )
    if len(x) != len(y):
        raise ValueError(f"iterate_batches: x {x.shape} and y {y.shape} differ in length")
    if batch_size < 1:
        raise ValueError(f"iterate_batches: batch_size must be >= 1, got {batch_size}")
    if shuffle and rng is None:
        raise ValueError("iterate_batches: shuffle=True needs rng= (a numpy.random.Generator)")
    order = rng.permutation(len(x)) if shuffle else np.arange(len(x))
    stop = len(x) - len(x) % batch_size if drop_last else len(x)
    for start in range(0, stop, batch_size):
        index = order[start : start + batch_size]
        x_batch, y_batch = x[index], y[index]
        if backend is not None:
            x_batch, y_batch = backend.asarray(x_batch), backend.asarray(y_batch)
        yield x_batch, y_batch

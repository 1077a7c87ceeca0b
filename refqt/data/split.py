"""A seeded, stratified train/test split of host arrays."""

from __future__ import annotations

import numpy as np


def train_test_split(
    x: np.ndarray,
    y: np.ndarray,
    test_fraction: float = 0.2,
    seed: int | np.random.Generator = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split ``(x, y)`` into train and test parts, class by class.

    From each class ``c`` with ``n_c`` examples, ``round(test_fraction * n_c)``
    are drawn (without replacement, from ``seed``) for the test set, so both
    parts keep the class proportions. Examples keep their original order
    within each part.

    Parameters
    ----------
    x : ndarray, shape (N, ...)
    y : integer ndarray, shape (N,)
        Class labels; stratification is over its distinct values.
    test_fraction : float
        Share of each class for the test set, strictly between 0 and 1.
    seed : int or numpy.random.Generator
        The same seed gives the same split.

    Returns
    -------
    x_train, y_train, x_test, y_test : ndarray
        ``x_train`` has shape (N_train, ...), ``x_test`` (N_test, ...),
        N_train + N_test = N.
    """
    x = np.asarray(x)
    y = np.asarray(y)
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"train_test_split: test_fraction must be in (0, 1), got {test_fraction}")
    if y.ndim != 1 or len(x) != len(y):
        raise ValueError(f"train_test_split: expected x (N, ...) and y (N,), got x {x.shape} and y {y.shape}")
    rng = np.random.default_rng(seed)
    is_test = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        n_test = round(test_fraction * len(members))
        is_test[rng.choice(members, size=n_test, replace=False)] = True
    if is_test.all() or not is_test.any():
        raise ValueError(
            f"train_test_split: test_fraction={test_fraction} of {len(y)} examples leaves an empty part"
        )
    return x[~is_test], y[~is_test], x[is_test], y[is_test]

"""The bundled UCI handwritten digits: 1,797 images of 8×8 pixels, 10 classes.

Small enough to ship inside the package (45 kB) and to train an MLP on in
seconds, so every example and test can run on a fresh machine with no download.
Source and licence: ``refqt/data/README.md``; the file was made by
``scripts/export_digits.py``.
"""

from __future__ import annotations

from importlib import resources

import numpy as np

DIGITS_FILE = "digits.npz"
N_DIGITS = 1797
MAX_PIXEL = 16  # pixels count the "on" cells of a 4×4 block: 0..16


def load_digits_raw() -> tuple[np.ndarray, np.ndarray]:
    """The digits exactly as stored: pixel counts and labels.

    Returns
    -------
    images : uint8 ndarray, shape (1797, 8, 8), values 0..16
    labels : uint8 ndarray, shape (1797,), values 0..9
    """
    with resources.files("refqt.data").joinpath(DIGITS_FILE).open("rb") as f, np.load(f) as archive:
        images = archive["images"]
        labels = archive["labels"]
    return images, labels


def load_digits(flat: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The bundled digits as host NumPy arrays ready for training.

    Parameters
    ----------
    flat : bool
        ``False`` (default) gives images shaped for a CNN, ``True`` gives
        flat feature vectors for an MLP.

    Returns
    -------
    images : float32 ndarray, shape (1797, 1, 8, 8), or (1797, 64) when ``flat``
        Pixel counts divided by 16, so in [0, 1].
    labels : int64 ndarray, shape (1797,)
        The digit, 0..9.

    Move them to a device with ``backend.asarray`` or batch by batch with
    :func:`refqt.data.iterate_batches`.
    """
    images, labels = load_digits_raw()
    x = images.astype(np.float32) / np.float32(MAX_PIXEL)
    x = x.reshape(len(x), 64) if flat else x.reshape(len(x), 1, 8, 8)
    return x, labels.astype(np.int64)

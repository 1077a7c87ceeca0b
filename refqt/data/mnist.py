"""Load MNIST from a local folder of IDX files (no download).

The folder must hold the four files from the MNIST distribution, each either
plain or gzipped (``.gz``)::

    train-images-idx3-ubyte   train-labels-idx1-ubyte
    t10k-images-idx3-ubyte    t10k-labels-idx1-ubyte

(The spelling ``train-images.idx3-ubyte``, with a dot, is accepted too.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from refqt.data.idx import read_idx

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _find(folder: Path, name: str) -> Path | None:
    dotted = name.replace("-idx", ".idx")
    for candidate in (name, name + ".gz", dotted, dotted + ".gz"):
        if (folder / candidate).is_file():
            return folder / candidate
    return None


def load_mnist(folder: str | Path, split: str = "train", flat: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """MNIST images and labels from the IDX files in ``folder``.

    Parameters
    ----------
    folder : str or Path
        Folder holding the IDX files (see the module docstring).
    split : {"train", "test"}
        ``"train"`` (60,000 images) or ``"test"`` (10,000, the ``t10k`` files).
    flat : bool
        Return images as flat vectors (N, H*W) instead of (N, 1, H, W).

    Returns
    -------
    images : float32 ndarray, shape (N, 1, 28, 28) or (N, 784) when ``flat``
        Pixels divided by 255, so in [0, 1].
    labels : int64 ndarray, shape (N,)

    Raises
    ------
    FileNotFoundError
        Naming the folder and the files it lacks.
    ValueError
        For a malformed file: bad magic number, wrong sizes, image and label
        counts that differ.
    """
    if split not in MNIST_FILES:
        raise ValueError(f"load_mnist: split must be 'train' or 'test', got {split!r}")
    folder = Path(folder)
    names = MNIST_FILES[split]
    paths = [_find(folder, name) for name in names]
    missing = [name for name, path in zip(names, paths, strict=True) if path is None]
    if missing:
        raise FileNotFoundError(
            f"load_mnist: folder {str(folder)!r} lacks {', '.join(missing)} (plain or .gz); "
            f"the {split!r} split needs {' and '.join(names)}"
        )
    images_path, labels_path = paths
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(
            f"{images_path}: expected uint8 images (N, H, W), got {images.dtype} of shape {images.shape}"
        )
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise ValueError(
            f"{labels_path}: expected uint8 labels (N,), got {labels.dtype} of shape {labels.shape}"
        )
    if len(images) != len(labels):
        raise ValueError(
            f"load_mnist: {images_path.name} holds {len(images)} images "
            f"but {labels_path.name} holds {len(labels)} labels"
        )
    if labels.size and labels.max() > 9:
        raise ValueError(f"{labels_path}: labels must be digits 0..9, found {int(labels.max())}")
    n, h, w = images.shape
    x = images.astype(np.float32) / np.float32(255)
    x = x.reshape(n, h * w) if flat else x.reshape(n, 1, h, w)
    return x, labels.astype(np.int64)

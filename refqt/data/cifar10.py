"""Load CIFAR-10 from a local copy of the "python version" (no download).

The folder is ``cifar-10-batches-py`` as unpacked from ``cifar-10-python.tar.gz``
(or the folder that contains it). It holds five training batches
``data_batch_1`` .. ``data_batch_5`` and ``test_batch``; each is a pickled dict
with ``b"data"``, a uint8 array (10000, 3072) -- 1024 red, then 1024 green, then
1024 blue values of a 32×32 image, row by row -- and ``b"labels"``, a list of
class numbers 0..9.

Pickle can run arbitrary code while loading, so the batches are read with an
unpickler that only accepts the few names a CIFAR batch needs (NumPy arrays
and dtypes); anything else is refused. Still, load only files you trust.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_FILES = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

# (module, name) pairs a CIFAR batch pickle may refer to: NumPy's array
# rebuilding (under its NumPy 1 and NumPy 2 module names; ``_frombuffer`` for
# pickle protocol 5) and, for pickles written by Python 3 with protocol 2, the
# codec used to store bytes.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}

_NUMPY_MAJOR = int(np.__version__.split(".")[0])


class _BatchUnpickler(pickle.Unpickler):
    """An unpickler that refuses every global outside ``_ALLOWED``."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR-10 batch file")
        if module.startswith("numpy.core.") and _NUMPY_MAJOR >= 2:
            module = "numpy._core." + module.removeprefix("numpy.core.")  # renamed in NumPy 2
        return super().find_class(module, name)


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with path.open("rb") as f:
            batch = _BatchUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as err:
        raise ValueError(f"{path}: not a CIFAR-10 batch pickle ({err})") from err
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise ValueError(f"{path}: expected a dict with keys b'data' and b'labels', got {keys}")
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[b"labels"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"{path}: expected b'data' uint8 of shape (N, 3072), got {data.dtype} {data.shape}")
    if labels.shape != (len(data),):
        raise ValueError(f"{path}: {len(data)} images but b'labels' has shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{path}: labels must be 0..9, found {int(labels.min())}..{int(labels.max())}")
    return data, labels


def load_cifar10(folder: str | Path, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 images and labels from the pickled batches in ``folder``.

    Parameters
    ----------
    folder : str or Path
        ``cifar-10-batches-py`` itself, or a folder that contains it.
    split : {"train", "test"}
        ``"train"``: ``data_batch_1`` .. ``data_batch_5`` (50,000 images) in
        order; ``"test"``: ``test_batch`` (10,000).

    Returns
    -------
    images : float32 ndarray, shape (N, 3, 32, 32)
        Channels first (red, green, blue), divided by 255, so in [0, 1].
    labels : int64 ndarray, shape (N,)
        Class numbers; names in ``CIFAR10_CLASSES``.

    Raises
    ------
    FileNotFoundError
        Naming the folder and the batch files it lacks.
    ValueError
        For a file that is not a CIFAR-10 batch or has the wrong sizes.
    """
    if split not in CIFAR10_FILES:
        raise ValueError(f"load_cifar10: split must be 'train' or 'test', got {split!r}")
    folder = Path(folder)
    if (folder / CIFAR10_FOLDER).is_dir():
        folder = folder / CIFAR10_FOLDER
    names = CIFAR10_FILES[split]
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"load_cifar10: folder {str(folder)!r} lacks {', '.join(missing)}; the {split!r} split needs "
            f"{', '.join(names)} (unpack cifar-10-python.tar.gz and pass its {CIFAR10_FOLDER} folder)"
        )
    parts = [_read_batch(folder / name) for name in names]
    data = np.concatenate([d for d, _ in parts])
    labels = np.concatenate([y for _, y in parts])
    images = data.reshape(len(data), 3, 32, 32).astype(np.float32) / np.float32(255)
    return images, labels.astype(np.int64)

"""Data: the bundled UCI digits, MNIST / CIFAR-10 from local files, splits and batches.

Everything here returns host NumPy arrays (float32 images in [0, 1], int64
labels); :func:`iterate_batches` moves each batch to a backend when asked.
Nothing is downloaded.
"""

from refqt.data.batches import iterate_batches
from refqt.data.cifar10 import CIFAR10_CLASSES, load_cifar10
from refqt.data.digits import load_digits, load_digits_raw
from refqt.data.idx import read_idx
from refqt.data.mnist import load_mnist
from refqt.data.parallel_text import load_parallel_corpus
from refqt.data.split import train_test_split
from refqt.data.translation import TranslationTask, iterate_translation_batches, make_translation_task

__all__ = [
    "CIFAR10_CLASSES",
    "TranslationTask",
    "iterate_batches",
    "iterate_translation_batches",
    "load_cifar10",
    "load_digits",
    "load_digits_raw",
    "load_mnist",
    "load_parallel_corpus",
    "make_translation_task",
    "read_idx",
    "train_test_split",
]

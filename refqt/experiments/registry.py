"""Names of models and data sets, for ``refqt train`` and ``refqt reproduce``.

Two plain dictionaries map a name to a function:

* ``DATASETS[name](data_dir) -> Dataset``, host arrays split into train and test;
* ``MODELS[name](dataset, rng) -> Module``, a fresh model sized for that data set.

Adding a model or a data set is adding a function and one dictionary entry.
``TASKS`` says which kind of data each name works with, so a mismatch
(a transformer on digits) is caught before anything is loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from refqt.data import load_cifar10, load_digits, load_mnist, make_translation_task, train_test_split
from refqt.models import MLP, PreActResNet, Seq2SeqTransformer, SmallCNN
from refqt.nn import Module

DIGITS_SPLIT_SEED = 0  # one fixed digits test set, whatever the run's seed
TRANSLATION_SEED = 0  # one fixed synthetic language pair, whatever the run's seed


@dataclass(frozen=True)
class Dataset:
    """A data set ready for training: host arrays, split.

    Attributes
    ----------
    name : str
    task : str
        ``"classification"``: x images (N, C, H, W), y labels (N,).
        ``"translation"``: x source ids (N, Ls), y target ids then EOS (N, Lt),
        both padded with PAD = 0 (see :mod:`refqt.data.translation`).
    x_train, y_train, x_test, y_test : ndarray
    classes : int
        Labels, or the target vocabulary (one class per token).
    input_vocab : int
        Source vocabulary (translation only; 0 otherwise).
    """

    name: str
    task: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int
    input_vocab: int = 0

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example, e.g. (1, 8, 8)."""
        return tuple(self.x_train.shape[1:])


def _data_folder(name: str, data_dir: str | Path | None) -> Path:
    if data_dir is None:
        raise ValueError(f"dataset {name!r} is read from local files: pass its folder as --data-dir")
    folder = Path(data_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"dataset {name!r}: data folder {str(folder)!r} does not exist")
    return folder


def digits(data_dir: str | Path | None = None) -> Dataset:
    """The bundled 8×8 UCI digits (1797 images), 80 / 20 stratified split; ``data_dir`` unused."""
    x, y = load_digits()
    x_train, y_train, x_test, y_test = train_test_split(x, y, seed=DIGITS_SPLIT_SEED)
    return Dataset("digits", "classification", x_train, y_train, x_test, y_test, classes=10)


def mnist(data_dir: str | Path | None) -> Dataset:
    """MNIST from the IDX files in ``data_dir`` (official 60,000 / 10,000 split)."""
    folder = _data_folder("mnist", data_dir)
    x_train, y_train = load_mnist(folder, "train")
    x_test, y_test = load_mnist(folder, "test")
    return Dataset("mnist", "classification", x_train, y_train, x_test, y_test, classes=10)


def cifar10(data_dir: str | Path | None) -> Dataset:
    """CIFAR-10 from the python batches in ``data_dir`` (official 50,000 / 10,000 split)."""
    folder = _data_folder("cifar10", data_dir)
    x_train, y_train = load_cifar10(folder, "train")
    x_test, y_test = load_cifar10(folder, "test")
    return Dataset("cifar10", "classification", x_train, y_train, x_test, y_test, classes=10)


def translation(data_dir: str | Path | None = None) -> Dataset:
    """The synthetic translation task (4000 / 500 sentence pairs), generated; ``data_dir`` unused."""
    task = make_translation_task(n_train=4000, n_test=500, seed=TRANSLATION_SEED)
    return Dataset(
        "translation",
        "translation",
        task.src_train,
        task.tgt_train,
        task.src_test,
        task.tgt_test,
        classes=task.tgt_vocab,
        input_vocab=task.src_vocab,
    )


def mlp(dataset: Dataset, rng: np.random.Generator) -> Module:
    """``MLP`` with two hidden layers of 128 on the flattened images."""
    return MLP(int(np.prod(dataset.input_shape)), hidden=128, depth=2, classes=dataset.classes, rng=rng)


def mlp6(dataset: Dataset, rng: np.random.Generator) -> Module:
    """``MLP`` with five hidden layers of 256 (six linear layers): deep enough for low-bit FQT to fail."""
    return MLP(int(np.prod(dataset.input_shape)), hidden=256, depth=5, classes=dataset.classes, rng=rng)


def cnn(dataset: Dataset, rng: np.random.Generator) -> Module:
    """``SmallCNN`` (two 3×3 convolutions of 16 channels, a dense layer of 64)."""
    channels, height, width = dataset.input_shape
    if height != width:
        raise ValueError(f"model 'cnn' needs square images, dataset {dataset.name!r} has {height}×{width}")
    return SmallCNN(channels, height, channels=16, hidden=64, classes=dataset.classes, rng=rng)


def resnet(dataset: Dataset, rng: np.random.Generator) -> Module:
    """``PreActResNet``-8 (one pre-activation block per stage), width 16: quick on small images."""
    return PreActResNet(8, width=16, in_channels=dataset.input_shape[0], classes=dataset.classes, rng=rng)


def resnet20(dataset: Dataset, rng: np.random.Generator) -> Module:
    """``PreActResNet``-20 (three blocks per stage), width 16: He et al.'s CIFAR ResNet."""
    return PreActResNet(20, width=16, in_channels=dataset.input_shape[0], classes=dataset.classes, rng=rng)


def transformer(dataset: Dataset, rng: np.random.Generator) -> Module:
    """``Seq2SeqTransformer``: width 64, 4 heads, 2 + 2 layers, feed-forward 128, no dropout."""
    return Seq2SeqTransformer(
        dataset.input_vocab,
        dataset.classes,
        d_model=64,
        heads=4,
        layers=2,
        dim_feedforward=128,
        max_len=max(dataset.x_train.shape[1], dataset.y_train.shape[1]),
        rng=rng,
    )


DATASETS: dict[str, Callable[[str | Path | None], Dataset]] = {
    "digits": digits,
    "mnist": mnist,
    "cifar10": cifar10,
    "translation": translation,
}

MODELS: dict[str, Callable[[Dataset, np.random.Generator], Module]] = {
    "mlp": mlp,
    "mlp6": mlp6,
    "cnn": cnn,
    "resnet": resnet,
    "resnet20": resnet20,
    "transformer": transformer,
}

# The kind of data each name works with; a model trains on data sets of its task.
TASKS: dict[str, str] = {
    "digits": "classification",
    "mnist": "classification",
    "cifar10": "classification",
    "mlp": "classification",
    "mlp6": "classification",
    "cnn": "classification",
    "resnet": "classification",
    "resnet20": "classification",
    "translation": "translation",
    "transformer": "translation",
}


def check_pair(model: str, dataset: str) -> None:
    """Raise ``ValueError`` unless ``model`` and ``dataset`` are known and of the same task."""
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; expected one of {sorted(MODELS)}")
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {sorted(DATASETS)}")
    if TASKS[model] != TASKS[dataset]:
        fits = sorted(d for d in DATASETS if TASKS[d] == TASKS[model])
        raise ValueError(
            f"model {model!r} ({TASKS[model]}) does not train on dataset {dataset!r} "
            f"({TASKS[dataset]}); use one of {fits}"
        )


def load_dataset(name: str, data_dir: str | Path | None = None) -> Dataset:
    """``DATASETS[name](data_dir)`` with a clear error for an unknown name."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(DATASETS)}")
    return DATASETS[name](data_dir)


def build_model(name: str, dataset: Dataset, rng: np.random.Generator) -> Module:
    """``MODELS[name](dataset, rng)`` after :func:`check_pair`."""
    check_pair(name, dataset.name)
    return MODELS[name](dataset, rng)

"""How far the home page's numbers move from seed to seed: the tolerances of its test.

``docs/examples/home.py`` trains one seed; on another machine the BLAS kernel
adds in another order and the run ends elsewhere, as a different seed would.
This script repeats the home example's run (same model, data, schedule and
measurements) for seeds 0 .. K-1, varying the initialisation, the batch order
and the quantizer noise, and prints the mean and standard deviation of each
printed number. tests/test_docs.py allows two runs to differ by 4·√2·σ (two
independent draws differ with standard deviation √2·σ; 4 of those is a
6e-5 false-alarm rate for normal errors)::

    python docs/examples/home_spread.py [K]
"""

import sys

import numpy as np

from refqt.data import load_digits, train_test_split
from refqt.experiments.training import classification_loss, evaluate, train_epoch
from refqt.fqt import QuantConfig, quantize
from refqt.models import SmallCNN
from refqt.optim import SGD
from refqt.stats import quantization_variance, sampling_variance


def home_run(seed: int) -> tuple[float, float]:
    """(test accuracy, quantization / sampling variance) of the home example with ``seed``."""
    x, y = load_digits()
    x_train, y_train, x_test, y_test = train_test_split(x, y, seed=0)
    config = QuantConfig(mode="fqt", grad_quantizer="bhq", grad_bits=4, seed=seed)
    model = quantize(SmallCNN(rng=np.random.default_rng(seed)), config)
    opt = SGD(model.parameters(), lr=0.05, momentum=0.9)
    for epoch in range(2):
        train_epoch(model, opt, x_train, y_train, 16, np.random.default_rng([seed, epoch]))
    accuracy = evaluate(model, x_test, y_test)["accuracy"]
    batches = [(x_train[i : i + 128], y_train[i : i + 128]) for i in range(0, 512, 128)]
    quant = quantization_variance(model, classification_loss, batches[:2], k=8)["total"]["variance"]
    samp = sampling_variance(model, classification_loss, batches)["total"]["variance"]
    return accuracy, quant / samp


if __name__ == "__main__":
    k = int(sys.argv[1]) if len(sys.argv) > 1 else 12
    runs = np.array([home_run(seed) for seed in range(k)])
    for name, values in zip(("test accuracy", "variance ratio"), runs.T, strict=True):
        sd = values.std(ddof=1)
        print(
            f"{name:<15} over {k} seeds: mean {values.mean():.4f}  sd {sd:.4f}  "
            f"min {values.min():.4f}  max {values.max():.4f}  4·√2·sd {4 * np.sqrt(2) * sd:.4f}"
        )

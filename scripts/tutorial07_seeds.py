"""Tutorial 7 over several seeds: the spread its assertions are sized by.

Tutorial 7 (``tutorials/07_training_a_cnn.py``) trains one seed. On another
machine the BLAS kernel adds in another order and that run ends like another
seed would, so its checks must hold for any seed. This script repeats its
runs for seeds 0 .. K-1 (seed s: initialisation ``default_rng(s)``, batch
order ``default_rng(1)`` for s = 0 as in the tutorial, ``default_rng(1000 + s)``
otherwise, quantizer noise ``QuantConfig(seed=s)``) and prints, per mode, the
test accuracy's mean / sd / min, and on each seed's QAT-trained weights the
4-bit gradient variance of PTQ, PSQ and BHQ (the tutorial's last cell)::

    python scripts/tutorial07_seeds.py [K] [--variance-only]
"""

from __future__ import annotations

import sys

import numpy as np

from refqt.data import load_digits, train_test_split
from refqt.experiments.training import classification_loss, evaluate, train_epoch
from refqt.fqt import QuantConfig, quantize
from refqt.models import SmallCNN
from refqt.optim import SGD
from refqt.optim.schedules import CosineSchedule
from refqt.stats import quantization_variance

MODES = {
    "QAT": {"mode": "qat"},
    "FQT PSQ 8-bit": {"mode": "fqt", "grad_quantizer": "psq", "grad_bits": 8},
    "FQT BHQ 4-bit": {"mode": "fqt", "grad_quantizer": "bhq", "grad_bits": 4},
    "FQT PTQ 4-bit": {"mode": "fqt", "grad_quantizer": "ptq", "grad_bits": 4},
}


def run(seed: int, labels: list[str]) -> tuple[dict[str, float], dict[str, float]]:
    """(test accuracy per mode, 4-bit variance per quantizer on the QAT-trained weights) of one seed."""
    x, y = load_digits()
    x_train, y_train, x_test, y_test = train_test_split(x, y, seed=0)
    epochs, batch_size = 2, 16
    steps = epochs * -(-len(y_train) // batch_size)
    accuracy, models = {}, {}
    for label in labels:
        config = QuantConfig(seed=seed, **MODES[label])
        model = quantize(SmallCNN(channels=8, hidden=32, rng=np.random.default_rng(seed)), config)
        opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
        schedule = CosineSchedule(0.1, steps)
        shuffle = np.random.default_rng(1 if seed == 0 else 1000 + seed)
        step = 0
        for _ in range(epochs):
            step = train_epoch(model, opt, x_train, y_train, batch_size, shuffle, schedule, step)["step"]
        accuracy[label], models[label] = evaluate(model, x_test, y_test)["accuracy"], model
    model = models["QAT"]
    batches = [(x_train[i : i + 128], y_train[i : i + 128]) for i in (0, 128)]
    variance = {}
    for name in ("ptq", "psq", "bhq"):
        quantize(model, QuantConfig(mode="fqt", grad_quantizer=name, grad_bits=4, seed=seed))
        measured = quantization_variance(model, classification_loss, batches, k=4)
        variance[name.upper()] = measured["total"]["variance"]
    return accuracy, variance


if __name__ == "__main__":
    k = int(next((a for a in sys.argv[1:] if a.isdigit()), 8))
    labels = ["QAT"] if "--variance-only" in sys.argv else list(MODES)
    accs, variances = [], []
    for seed in range(k):
        a, v = run(seed, labels)
        accs.append(a)
        variances.append(v)
        print(seed, {n: round(x, 4) for n, x in a.items()}, {n: f"{x:.3g}" for n, x in v.items()}, flush=True)
    for label in labels:
        values = np.array([a[label] for a in accs])
        print(f"{label:<14} accuracy over {k} seeds: mean {values.mean():.4f} sd {values.std(ddof=1):.4f} "
              f"min {values.min():.4f} max {values.max():.4f}")
    for a, b in (("PTQ", "PSQ"), ("PSQ", "BHQ"), ("PTQ", "BHQ")):
        ratio = np.array([v[a] / v[b] for v in variances])
        print(f"variance {a} / {b} over {k} seeds: min {ratio.min():.3g} median {np.median(ratio):.3g} "
              f"max {ratio.max():.3g}")

"""``refqt demo``: exact, QAT and FQT training of a small CNN on the bundled digits.

The newcomer's first run (about a minute on one CPU core): the same model and
the same batch order trained in every mode, with PTQ / PSQ / BHQ gradients at
a chosen bit width, and a table of test accuracy and of the ratio of
quantization to sampling gradient variance -- the number that predicts when
low-bit training breaks.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from refqt.data import load_digits, train_test_split
from refqt.experiments.training import classification_loss, evaluate, train_epoch
from refqt.fqt import QuantConfig, quantize
from refqt.models import SmallCNN
from refqt.optim import SGD
from refqt.optim.schedules import CosineSchedule
from refqt.stats import quantization_variance, sampling_variance


def run_demo(epochs: int = 5, bits: int = 4, batch_size: int = 32, seed: int = 0) -> list[dict]:
    """Train one SmallCNN per mode; return one result dict per row of the table."""
    x, y = load_digits()
    x_train, y_train, x_test, y_test = train_test_split(x, y, seed=seed)
    configs = [("exact", QuantConfig(mode="exact")), ("QAT", QuantConfig(mode="qat"))]
    for q in ("ptq", "psq", "bhq"):
        configs.append(
            (f"FQT {q.upper()} {bits}-bit", QuantConfig(mode="fqt", grad_quantizer=q, grad_bits=bits))
        )
    steps = epochs * -(-len(y_train) // batch_size)
    probe = [(x_train[i * 128 : (i + 1) * 128], y_train[i * 128 : (i + 1) * 128]) for i in range(4)]
    rows = []
    for label, config in configs:
        start = time.perf_counter()
        model = quantize(SmallCNN(rng=np.random.default_rng(seed)), config)
        opt = SGD(model.parameters(), lr=0.05, momentum=0.9)
        schedule = CosineSchedule(0.05, steps)
        shuffle = np.random.default_rng(seed + 1)  # same batch order in every mode
        step = 0
        for _ in range(epochs):
            step = train_epoch(model, opt, x_train, y_train, batch_size, shuffle, schedule, step)["step"]
        row = {"mode": label, "test_accuracy": evaluate(model, x_test, y_test)["accuracy"]}
        if config.mode == "fqt":
            quant = quantization_variance(model, classification_loss, probe[:2], k=8)["total"]["variance"]
            sampling = sampling_variance(model, classification_loss, probe)["total"]["variance"]
            row["variance_ratio"] = quant / sampling
        row["seconds"] = time.perf_counter() - start
        rows.append(row)
        print(_format_row(row), flush=True)
    return rows


def _format_row(row: dict) -> str:
    ratio = f"{row['variance_ratio']:.2e}" if "variance_ratio" in row else "-"
    return f"{row['mode']:<18} {100 * row['test_accuracy']:6.2f}%   {ratio:>10}   {row['seconds']:5.1f} s"


def run(args: argparse.Namespace) -> int:
    from refqt.experiments.train_cmd import checked
    from refqt.experiments.train_config import TrainConfig

    # The options' checks are refqt train's: a bad value names its option.
    checked(
        TrainConfig,
        model="cnn",
        bits=args.bits,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
    )
    print(
        f"SmallCNN on the bundled UCI digits, {args.epochs} epochs, batch {args.batch_size}, seed {args.seed}"
    )
    print(f"{'mode':<18} {'test acc':>7}   {'quant/samp':>10}   time")
    run_demo(args.epochs, args.bits, args.batch_size, args.seed)
    print("quant/samp: gradient quantization variance over QAT sampling variance (small = harmless)")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``refqt demo``."""
    parser = subparsers.add_parser(
        "demo",
        help="train a small CNN on the bundled digits, exact vs QAT vs FQT",
        description=(
            "The same SmallCNN and batch order trained exact, with QAT and with FQT "
            "(PTQ / PSQ / BHQ gradients at --bits): test accuracy and the ratio of quantization "
            "to sampling gradient variance, the number that predicts when low-bit training breaks."
        ),
    )
    parser.add_argument("--epochs", type=int, default=5, help="epochs of each run")
    parser.add_argument("--bits", type=int, default=4, help="gradient bits of the FQT runs (1-16)")
    parser.add_argument("--batch-size", type=int, default=32, help="examples per SGD step")
    parser.add_argument("--seed", type=int, default=0, help="weights, batch order and quantizer noise")
    parser.set_defaults(run=run)

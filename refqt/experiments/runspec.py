"""One digits training run, described by a small frozen value: what ``refqt reproduce`` farms out.

A :class:`RunSpec` says everything a run depends on (model, mode, quantizer,
bits, seed, epochs, recipe), so a run gives the same numbers in any process
and in any order -- which is what lets the reproduction run them in a process
pool. Three independent random streams come from the seed:

* the initial weights: ``default_rng([seed, 1])``;
* the data shuffling: ``default_rng([seed, 2])`` -- the same batch order in
  every mode for one seed (the prototype found 8-bit FQT ≈ QAT only then);
* the gradient-quantization noise: ``QuantConfig(seed=seed)``, one stream
  per layer, never touched by the shuffling.

The recipe is the prototype's: SGD with momentum 0.9, lr 0.05 on a cosine
schedule, batch 32. A run **fails** when its loss stops being finite or its
test accuracy stays below twice chance (20% on the ten digits).

Next to each FQT accuracy the run measures the ratio of gradient
quantization variance to QAT sampling variance (:mod:`refqt.stats.variance`)
after the first epoch -- when the prototype saw failures start -- and at the
end. The measurement saves and restores the quantizers' random state, so it
does not change the run.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from refqt.data import load_digits, train_test_split
from refqt.experiments.training import classification_loss, evaluate, train_epoch
from refqt.fqt import QuantConfig, load_quantizer_state, quantize, quantizer_state
from refqt.models import MLP, SmallCNN
from refqt.nn import Module
from refqt.optim import SGD
from refqt.optim.schedules import ConstantSchedule, CosineSchedule
from refqt.quant import NonFiniteInputError
from refqt.stats import quantization_variance, sampling_variance

MODELS = ("cnn", "mlp6")
FAIL_ACCURACY = 0.2  # twice chance on ten classes


def build_model(name: str, seed: int) -> Module:
    """``"cnn"``: :class:`SmallCNN` (2 conv + 2 linear); ``"mlp6"``: 6 linear layers of width 256."""
    rng = np.random.default_rng([seed, 1])
    if name == "cnn":
        return SmallCNN(rng=rng)
    if name == "mlp6":
        return MLP(in_features=64, hidden=256, depth=5, rng=rng)
    raise ValueError(f"unknown digits model {name!r}; choose one of {MODELS}")


@dataclass(frozen=True)
class RunSpec:
    """One training run on the bundled digits.

    ``mode`` is ``"exact"``, ``"qat"`` or ``"fqt"``; ``quantizer`` and
    ``bits`` describe the FQT gradient quantizer (ignored otherwise).
    ``limit`` keeps only the first ``limit`` training examples (tiny runs for tests).
    ``schedule`` is ``"cosine"`` (the paper's recipe) or ``"constant"`` (the
    learning rate never decays: the stress setting where low-bit FQT fails).
    """

    model: str = "cnn"
    mode: str = "fqt"
    quantizer: str = "bhq"
    bits: int = 8
    seed: int = 0
    epochs: int = 15
    batch_size: int = 32
    lr: float = 0.05
    momentum: float = 0.9
    measure_variance: bool = True
    variance_batches: int = 8
    variance_draws: int = 8
    limit: int | None = None
    schedule: str = "cosine"

    @property
    def group(self) -> str:
        """Which table of the report the run belongs to: the model, plus the schedule if not cosine."""
        return self.model if self.schedule == "cosine" else f"{self.model}-{self.schedule}"

    @property
    def label(self) -> str:
        """``"exact"``, ``"QAT"`` or e.g. ``"PTQ 4"``."""
        if self.mode == "fqt":
            return f"{self.quantizer.upper()} {self.bits}"
        return "QAT" if self.mode == "qat" else "exact"

    def config(self) -> QuantConfig:
        if self.mode == "fqt":
            return QuantConfig(mode="fqt", grad_quantizer=self.quantizer, grad_bits=self.bits, seed=self.seed)
        return QuantConfig(mode=self.mode, seed=self.seed)


def digits_split(limit: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The fixed train/test split every run uses (split seed 0), optionally truncated."""
    x, y = load_digits()
    x_train, y_train, x_test, y_test = train_test_split(x, y, seed=0)
    if limit is not None:
        x_train, y_train = x_train[:limit], y_train[:limit]
        x_test, y_test = x_test[: max(limit // 2, 1)], y_test[: max(limit // 2, 1)]
    return x_train, y_train, x_test, y_test


def variance_ratio(
    model: Module, x: np.ndarray, y: np.ndarray, batch_size: int, n_batches: int = 8, k: int = 8
) -> dict[str, float]:
    """Quantization and sampling variance of an FQT ``model`` on the first batches of ``(x, y)``.

    Sampling variance over ``n_batches`` batches of ``batch_size`` (the noise
    SGD has at that batch size); quantization variance over ``k`` draws on the
    first two of them. The quantizers' random state is restored afterwards.
    """
    n_batches = max(2, min(n_batches, len(y) // batch_size))
    batches = [
        (x[i * batch_size : (i + 1) * batch_size], y[i * batch_size : (i + 1) * batch_size])
        for i in range(n_batches)
    ]
    saved = quantizer_state(model)
    quant = quantization_variance(model, classification_loss, batches[:2], k=k)["total"]["variance"]
    samp = sampling_variance(model, classification_loss, batches)["total"]["variance"]
    load_quantizer_state(model, saved)
    return {"quantization": quant, "sampling": samp, "ratio": quant / samp if samp > 0 else math.inf}


def run_spec(spec: RunSpec) -> dict[str, Any]:
    """Train one run; returns the spec's fields and its results (a JSON-ready dict)."""
    return train(spec)[1]


def train(spec: RunSpec) -> tuple[Module, dict[str, Any]]:
    """Train one run; returns the trained model and the result dict of :func:`run_spec`.

    Keys added to the spec's: ``label``, ``test_accuracy``, ``history`` (per
    epoch train loss / accuracy), ``diverged``, ``failed``, ``epochs_run``,
    ``seconds``, and for FQT runs with ``measure_variance``: ``variance_early``
    (after epoch 1) and ``variance_final`` (end of training, absent when the
    run diverged), each ``{"quantization", "sampling", "ratio"}``.
    """
    start = time.perf_counter()
    x_train, y_train, x_test, y_test = digits_split(spec.limit)
    model = quantize(build_model(spec.model, spec.seed), spec.config())
    optimizer = SGD(model.parameters(), lr=spec.lr, momentum=spec.momentum)
    steps = spec.epochs * -(-len(y_train) // spec.batch_size)
    if spec.schedule not in ("cosine", "constant"):
        raise ValueError(f"RunSpec: schedule must be 'cosine' or 'constant', got {spec.schedule!r}")
    schedule = CosineSchedule(spec.lr, steps) if spec.schedule == "cosine" else ConstantSchedule(spec.lr)
    shuffle = np.random.default_rng([spec.seed, 2])
    probe = np.random.default_rng([spec.seed, 3]).permutation(len(y_train))
    measure = spec.measure_variance and spec.mode == "fqt"
    result: dict[str, Any] = {
        **asdict(spec),
        "label": spec.label,
        "group": spec.group,
        "history": [],
        "diverged": False,
    }
    step = 0
    # A diverging run overflows; that is a result here, not a warning.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        for epoch in range(spec.epochs):
            try:
                stats = train_epoch(
                    model, optimizer, x_train, y_train, spec.batch_size, shuffle, schedule, step
                )
            except NonFiniteInputError:  # a gradient overflowed before the loss did: diverged
                result["diverged"] = True
                break
            step = stats["step"]
            result["history"].append({"loss": stats["loss"], "accuracy": stats["accuracy"]})
            if not math.isfinite(stats["loss"]):
                result["diverged"] = True
                break
            if measure and epoch == 0:
                result["variance_early"] = variance_ratio(
                    model,
                    x_train[probe],
                    y_train[probe],
                    spec.batch_size,
                    spec.variance_batches,
                    spec.variance_draws,
                )
        if measure and not result["diverged"]:
            result["variance_final"] = variance_ratio(
                model,
                x_train[probe],
                y_train[probe],
                spec.batch_size,
                spec.variance_batches,
                spec.variance_draws,
            )
        result["test_accuracy"] = evaluate(model, x_test, y_test)["accuracy"]
    result["epochs_run"] = len(result["history"])
    result["failed"] = result["diverged"] or result["test_accuracy"] < FAIL_ACCURACY
    result["seconds"] = time.perf_counter() - start
    return model, result

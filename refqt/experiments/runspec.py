"""One digits training run, described by a small frozen value: what ``refqt reproduce`` farms out.

A :class:`RunSpec` says everything a run depends on (model, mode, quantizer,
bits, seed, epochs, recipe), so a run gives the same numbers in any process
and in any order -- which is what lets the reproduction run them in a process
pool. It *is* a :class:`~refqt.experiments.train_config.TrainConfig` (the
description ``refqt train`` uses: same fields, defaults and checks) plus three
fields saying what to measure on the run. Three independent random streams
come from the seed:

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
from refqt.experiments import registry
from refqt.experiments.train_config import TrainConfig, is_int
from refqt.experiments.training import classification_loss, evaluate, train_epoch
from refqt.fqt import QuantConfig, load_quantizer_state, quantize, quantizer_state
from refqt.nn import Module
from refqt.optim import SGD
from refqt.optim.schedules import ConstantSchedule, CosineSchedule
from refqt.quant import NonFiniteInputError
from refqt.stats import quantization_variance, sampling_variance
from refqt.stats.noise_monitor import NoiseMonitor

# The registry's models that train on the digits (the names `refqt train` uses too).
MODELS = tuple(
    sorted(m for m, task in registry.TASKS.items() if m in registry.MODELS and task == "classification")
)
FAIL_ACCURACY = 0.2  # twice chance on ten classes


def build_model(name: str, seed: int) -> Module:
    """A fresh digits model from :mod:`refqt.experiments.registry`, weights from ``default_rng([seed, 1])``.

    ``"cnn"``: :class:`SmallCNN` (2 conv + 2 linear); ``"mlp6"``: 6 linear
    layers of width 256; ``"mlp"``: 2 hidden layers of 128; ``"resnet"``, ``"resnet20"``.
    """
    if name not in MODELS:
        raise ValueError(f"unknown digits model {name!r}; choose one of {MODELS}")
    return registry.build_model(name, registry.digits(), np.random.default_rng([seed, 1]))


@dataclass(frozen=True)
class RunSpec(TrainConfig):
    """One training run on the bundled digits, and what to measure on it.

    The training fields, their defaults and their checks are
    :class:`~refqt.experiments.train_config.TrainConfig`'s (``model``,
    ``mode``, ``quantizer``, ``bits``, ``seed``, ``epochs``, ``batch_size``,
    ``lr``, ``momentum``, ``schedule``, ``limit``...). ``dataset`` must be
    ``"digits"`` and ``backend`` ``"numpy"``. The measurement fields:

    measure_variance : bool
        FQT runs: measure quantization / sampling variance after epoch 1 and at the end.
    variance_batches : int
        Batches of the sampling variance (>= 2).
    variance_draws : int
        Quantizer draws per batch of the quantization variance (>= 1).
    noise_every : int
        FQT runs: log each layer's ‖G‖/σ_q every this many steps
        (:class:`~refqt.stats.noise_monitor.NoiseMonitor`); 0: not at all.
    """

    measure_variance: bool = True
    variance_batches: int = 8
    variance_draws: int = 8
    noise_every: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        self._require("dataset", self.dataset == "digits", "'digits' (the reproduction's data)")
        self._require("backend", self.backend == "numpy", "'numpy' (the reproduction's runs)")
        self._require("measure_variance", isinstance(self.measure_variance, bool), "True or False")
        self._require("variance_batches", is_int(self.variance_batches, 2), "an integer >= 2")
        self._require("variance_draws", is_int(self.variance_draws, 1), "an integer >= 1")
        self._require("noise_every", is_int(self.noise_every, 0), "an integer >= 0")

    @property
    def group(self) -> str:
        """Which table of the report the run belongs to: the model, plus the schedule if not cosine."""
        return self.model if self.schedule == "cosine" else f"{self.model}-{self.schedule}"

    def config(self) -> QuantConfig:
        """The run's :class:`QuantConfig` (:meth:`TrainConfig.quant_config`)."""
        return self.quant_config()


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
    run diverged), each ``{"quantization", "sampling", "ratio"}``; with
    ``noise_every``, ``noise``: the NoiseMonitor's records (step, layer,
    ‖G‖, σ and ratio per path).
    """
    start = time.perf_counter()
    x_train, y_train, x_test, y_test = digits_split(spec.limit)
    model = quantize(build_model(spec.model, spec.seed), spec.config())
    optimizer = SGD(model.parameters(), lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay)
    steps = spec.epochs * -(-len(y_train) // spec.batch_size)
    schedule = CosineSchedule(spec.lr, steps) if spec.schedule == "cosine" else ConstantSchedule(spec.lr)
    shuffle = np.random.default_rng([spec.seed, 2])
    probe = np.random.default_rng([spec.seed, 3]).permutation(len(y_train))
    measure = spec.measure_variance and spec.mode == "fqt"
    noise = None
    if spec.noise_every and spec.mode == "fqt":
        noise = NoiseMonitor(model, None, every=spec.noise_every)
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
                    model, optimizer, x_train, y_train, spec.batch_size, shuffle, schedule, step, noise=noise
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
    if noise is not None:
        result["noise"] = noise.records
    result["epochs_run"] = len(result["history"])
    result["failed"] = result["diverged"] or result["test_accuracy"] < FAIL_ACCURACY
    result["seconds"] = time.perf_counter() - start
    return model, result

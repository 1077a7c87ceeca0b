"""``TrainConfig``: everything that decides a training run, as one checked value.

A run is reproducible from its config alone: the same config gives the same
weights, batch order and gradient noise (on the same backend). It is written
to ``config.json`` in the run's folder, and a resumed run must match it.

It is the one description of a training run: ``refqt train`` builds it from
its options, and ``refqt reproduce`` describes each of its runs with
:class:`~refqt.experiments.runspec.RunSpec`, a ``TrainConfig`` plus what the
reproduction measures on the run -- same fields, same defaults, same checks.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from refqt.backend import BACKEND_NAMES, gpu_available
from refqt.experiments.registry import check_pair
from refqt.fqt import QuantConfig
from refqt.fqt.config import GRAD_QUANTIZERS, MODES, RECIPES, recipe

SCHEDULES = ("cosine", "constant")
QUANTIZERS = tuple(q for q in GRAD_QUANTIZERS if q != "none")  # "none" is QAT: use mode="qat"
# Fields a resumed run may change: they do not alter the arithmetic on one
# backend (epochs only extends the run; see TrainConfig.epochs).
RESUMABLE_CHANGES = ("epochs", "data_dir", "backend")


@dataclass(frozen=True)
class TrainConfig:
    """One training run.

    Parameters
    ----------
    model, dataset : str
        Names in :mod:`refqt.experiments.registry`: ``mlp``, ``cnn``, ``resnet``, ``resnet20``
        on ``digits``, ``mnist``, ``cifar10``; ``transformer`` on ``translation``.
    data_dir : str or None
        Folder of the MNIST / CIFAR-10 files (unused for the bundled digits).
    mode : {"exact", "qat", "fqt"}
    quantizer : {"ptq", "psq", "bhq", "shift"}
        Gradient quantizer ``Q_b`` of FQT (ignored by exact and QAT).
    recipe : {"nvfp4", "mxfp8"} or None
        FQT only: a low-precision recipe (:data:`refqt.fqt.config.RECIPES`,
        docs/theory/formats.md) that sets every forward and gradient
        quantizer; ``quantizer``, ``bits``, ``act_bits`` and ``weight_bits``
        are then ignored. None: the paper's FQT with ``quantizer``.
    bits : int
        Bits of ``Q_b`` (1..16; ignored by exact and QAT).
    act_bits, weight_bits : int
        Bits of the forward quantizers of QAT and FQT (ignored by exact).
    epochs, batch_size : int
    lr, momentum, weight_decay : float
        SGD settings.
    schedule : {"cosine", "constant"}
        Cosine decays ``lr`` to 0 over ``epochs`` (so changing ``epochs`` on
        resume changes the remaining learning rates).
    seed : int
        Seeds the initial weights, the batch order (its own stream) and the
        gradient-quantizer noise (``QuantConfig(seed=seed)``, one stream per layer).
    backend : str
        ``numpy``, ``array_api_strict``, ``cupy`` or ``auto`` (CuPy when a GPU works).
    limit : int or None
        Train on the first ``limit`` training examples and test on the first
        ``limit // 2`` test examples (tiny runs for tests); None: all.

    Raises
    ------
    ConfigError
        (a ``ValueError``) naming the field, what it must be and the value.
    """

    model: str = "mlp"
    dataset: str = "digits"
    data_dir: str | None = None
    mode: str = "fqt"
    quantizer: str = "bhq"
    bits: int = 8
    act_bits: int = 8
    weight_bits: int = 8
    epochs: int = 5
    batch_size: int = 32
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "cosine"
    seed: int = 0
    backend: str = "numpy"
    limit: int | None = None
    recipe: str | None = None

    def __post_init__(self) -> None:
        check_pair(self.model, self.dataset)
        self._require("mode", self.mode in MODES, f"one of {MODES}")
        self._require(
            "quantizer", self.quantizer in QUANTIZERS, f"one of {QUANTIZERS} (exact and QAT ignore it)"
        )
        for name in ("bits", "act_bits", "weight_bits"):
            self._require(name, is_int(getattr(self, name), 1, 16), "an integer in 1..16")
        for name in ("epochs", "batch_size"):
            self._require(name, is_int(getattr(self, name), 1), "an integer >= 1")
        self._require("lr", _is_number(self.lr) and self.lr > 0, "> 0")
        self._require("momentum", _is_number(self.momentum) and 0 <= self.momentum < 1, "in [0, 1)")
        self._require("weight_decay", _is_number(self.weight_decay) and self.weight_decay >= 0, ">= 0")
        self._require("schedule", self.schedule in SCHEDULES, f"one of {SCHEDULES}")
        self._require("seed", is_int(self.seed, 0), "an integer >= 0")
        backends = (*BACKEND_NAMES, "auto")
        self._require("backend", self.backend in backends, f"one of {backends}")
        if self.backend == "cupy" and not gpu_available():
            raise ConfigError(
                type(self).__name__, "backend", "one that works here", "cupy (no GPU, or no CuPy)"
            )
        self._require("limit", self.limit is None or is_int(self.limit, 2), "None or an integer >= 2")
        self._require(
            "recipe", self.recipe is None or self.recipe in RECIPES, f"None or one of {tuple(RECIPES)}"
        )
        if self.recipe is not None and self.mode != "fqt":
            raise ConfigError(type(self).__name__, "recipe", "used with mode 'fqt' only", self.recipe)
        self.quant_config()  # and whatever else QuantConfig checks

    def _require(self, field: str, ok: bool, expected: str) -> None:
        if not ok:
            raise ConfigError(type(self).__name__, field, expected, getattr(self, field))

    @property
    def label(self) -> str:
        """``"exact"``, ``"QAT"``, or for FQT ``"PTQ 4"`` (quantizer and bits) or ``"NVFP4 recipe"``."""
        if self.recipe is not None:
            return f"{self.recipe.upper()} recipe"
        if self.mode == "fqt":
            return f"{self.quantizer.upper()} {self.bits}"
        return "QAT" if self.mode == "qat" else "exact"

    def ignored(self) -> tuple[str, ...]:
        """The fields this config does not use: exact and recipes ignore all bits, QAT the gradient's."""
        if self.mode == "exact" or self.recipe is not None:
            return ("quantizer", "bits", "act_bits", "weight_bits")
        return ("quantizer", "bits") if self.mode == "qat" else ()

    def quant_config(self) -> QuantConfig:
        """The :class:`QuantConfig` of this run (gradient noise seeded by ``seed``).

        Exact and QAT runs get QuantConfig's default gradient quantizer, whatever
        ``quantizer`` and ``bits`` say: those modes do not use it. A recipe is
        :func:`refqt.fqt.config.recipe` with this run's seed.
        """
        if self.recipe is not None:
            return recipe(self.recipe, seed=self.seed)
        if self.mode != "fqt":
            return QuantConfig(
                mode=self.mode, act_bits=self.act_bits, weight_bits=self.weight_bits, seed=self.seed
            )
        return QuantConfig(
            mode=self.mode,
            act_bits=self.act_bits,
            weight_bits=self.weight_bits,
            grad_quantizer=self.quantizer,
            grad_bits=self.bits,
            seed=self.seed,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of the fields."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from a dict (e.g. ``config.json``); unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise TypeError(f"{cls.__name__}: unknown fields {unknown}; known are {sorted(known)}")
        return cls(**values)

    def differences(self, other: TrainConfig, ignore: tuple[str, ...] = RESUMABLE_CHANGES) -> list[str]:
        """``["lr: 0.1 here, 0.05 there", ...]`` for the fields (not in ``ignore``) that differ."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [
            f"{name}: {mine[name]!r} here, {theirs[name]!r} there"
            for name in mine
            if name not in ignore and mine[name] != theirs[name]
        ]


class ConfigError(ValueError):
    """A field of a :class:`TrainConfig` with a value it cannot take.

    ``field``, ``expected`` and ``value`` let a command line name its own flag
    (``--bits`` for ``bits``) instead of the field.
    """

    def __init__(self, owner: str, field: str, expected: str, value: Any):
        super().__init__(f"{owner}: {field} must be {expected}, got {value!r}")
        self.field = field
        self.expected = expected
        self.value = value


def is_int(value: Any, low: int, high: int | None = None) -> bool:
    """``value`` is an int (not a bool) in ``low … high`` (no upper end when ``high`` is None)."""
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
    return ok and (high is None or value <= high)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)

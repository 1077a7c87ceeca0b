"""``TrainConfig``: everything that decides a training run, as one checked value.

A run is reproducible from its config alone: the same config gives the same
weights, batch order and gradient noise (on the same backend). It is written
to ``config.json`` in the run's folder, and a resumed run must match it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from refqt.backend import BACKEND_NAMES, gpu_available
from refqt.experiments.registry import check_pair
from refqt.fqt import QuantConfig

SCHEDULES = ("cosine", "constant")
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
    bits : int
        Bits of ``Q_b`` (1..16).
    act_bits, weight_bits : int
        Bits of the forward quantizers of QAT and FQT.
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

    def __post_init__(self) -> None:
        check_pair(self.model, self.dataset)
        self.quant_config()  # checks mode, quantizer and every bit width
        if self.quantizer == "none":
            raise ValueError("TrainConfig: quantizer must be one of ptq, psq, bhq, shift (use mode='qat')")
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"TrainConfig: {name} must be an integer >= 1, got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"TrainConfig: lr must be > 0, got {self.lr!r}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"TrainConfig: momentum must be in [0, 1), got {self.momentum!r}")
        if not self.weight_decay >= 0:
            raise ValueError(f"TrainConfig: weight_decay must be >= 0, got {self.weight_decay!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"TrainConfig: schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.backend not in (*BACKEND_NAMES, "auto"):
            raise ValueError(
                f"TrainConfig: backend must be one of {(*BACKEND_NAMES, 'auto')}, got {self.backend!r}"
            )
        if self.backend == "cupy" and not gpu_available():
            raise ValueError("TrainConfig: backend 'cupy' needs a working GPU and CuPy; none here")

    def quant_config(self) -> QuantConfig:
        """The :class:`QuantConfig` of this run (gradient noise seeded by ``seed``)."""
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
            raise TypeError(f"TrainConfig: unknown fields {unknown}; known are {sorted(known)}")
        return cls(**values)

    def differences(self, other: TrainConfig, ignore: tuple[str, ...] = RESUMABLE_CHANGES) -> list[str]:
        """``["lr: 0.1 here, 0.05 there", ...]`` for the fields (not in ``ignore``) that differ."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [
            f"{name}: {mine[name]!r} here, {theirs[name]!r} there"
            for name in mine
            if name not in ignore and mine[name] != theirs[name]
        ]

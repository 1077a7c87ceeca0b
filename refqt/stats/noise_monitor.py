"""‖G‖ / σ_q per layer during training: how far each gradient stands above its quantization noise.

For a quantized layer's output gradient ``G`` and a gradient quantizer ``Q``
the exact conditional noise is ``σ_q² = E‖Q(G) − G‖²`` (each quantizer's
``conditional_variance``, no sampling), so

    ratio = ‖G‖ / σ_q

is the gradient's signal-to-noise ratio, per path (``Q_b`` for the input
gradient, ``Q_w`` for the weight gradient). A published rule of thumb for
low-precision training says it stops helping once the gradient norm falls
below about √3 times the noise's standard deviation -- ratio < √3 ≈ 1.73
(docs/theory/formats.md). The ratio usually falls as training converges
(‖G‖ shrinks while a block format's relative noise does not).

:class:`NoiseMonitor` measures it every ``every`` steps during
``loss.backward()`` and appends one JSON line per layer to a file, which
``refqt train`` writes next to its metrics (``noise.jsonl``), or keeps the
records in memory (``path=None``; ``refqt reproduce`` plots them).
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from refqt.backend import backend_of
from refqt.fqt.layer import gradient_rows
from refqt.fqt.transform import quantized_layers
from refqt.nn.module import Module
from refqt.stats.capture import capture_gradients

SQRT3 = math.sqrt(3.0)
"""The rule of thumb's threshold on ‖G‖ / σ_q."""


def noise_ratios(model: Module, captured: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One record per layer from :func:`refqt.stats.capture.capture_gradients`'s last backward.

    Each record: ``layer``, ``grad_norm`` ‖G‖, ``sigma_input`` / ``sigma_weight``
    (exact ``√E‖Q(G) − G‖²`` of Q_b / Q_w; None where that path has no
    quantizer) and ``ratio_input`` / ``ratio_weight`` (‖G‖/σ, inf for σ = 0).
    """
    layers = dict(quantized_layers(model))
    rows = []
    for name, records in captured.items():
        if not records:
            continue
        g, kind = records[-1]["grad"], records[-1]["kind"]
        hook = layers[name].fqt
        xp = backend_of(g).xp
        norm = float(xp.sqrt(xp.sum(xp.astype(g, xp.float64) ** 2)))
        row: dict[str, Any] = {"layer": name, "grad_norm": norm}
        columns = xp.reshape(g, (-1, g.shape[-1])) if kind == "linear" else g  # as Q_w sees G
        for path, q, view in (
            ("input", hook.grad_quantizer, gradient_rows(g, kind)),
            ("weight", hook.weight_grad_quantizer, columns),
        ):
            sigma = None if q is None else math.sqrt(max(q.conditional_variance(view), 0.0))
            row[f"sigma_{path}"] = sigma
            row[f"ratio_{path}"] = None if sigma is None else (norm / sigma if sigma > 0 else math.inf)
        rows.append(row)
    return rows


class NoiseMonitor:
    """Every ``every`` steps, log ‖G‖/σ_q of each quantized layer as JSON lines to ``path``.

    Parameters
    ----------
    model : Module
        The model being trained (a model without FQT layers logs nothing).
    path : Path or None
        File the records are appended to, one line per layer and logged step;
        None keeps them in :attr:`records` instead.
    every : int
        Log at steps 0, every, 2·every, ...
    """

    def __init__(self, model: Module, path: Path | None, every: int = 100):
        if every < 1:
            raise ValueError(f"NoiseMonitor: every must be ≥ 1, got {every}")
        self.model = model
        self.path = None if path is None else Path(path)
        self.records: list[dict[str, Any]] = []  # path=None: the records so far, in order
        self.every = every
        self.active = any(
            m.fqt.grad_quantizer is not None or m.fqt.weight_grad_quantizer is not None
            for _, m in quantized_layers(model)
        )

    def keep_before(self, step: int) -> None:
        """Drop records of steps ≥ ``step`` (a resumed run repeats them); a damaged line ends the log."""
        if self.path is None:
            self.records = [r for r in self.records if r["step"] < step]
            return
        try:
            lines = self.path.read_text().splitlines()
        except (FileNotFoundError, UnicodeDecodeError):
            lines = []
        kept = []
        for line in lines:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                break
            logged = record.get("step") if isinstance(record, dict) else None
            if not isinstance(logged, int) or logged >= step:
                break
            kept.append(line + "\n")
        if kept or self.path.exists():
            self.path.write_text("".join(kept))

    @contextlib.contextmanager
    def watch(self, step: int) -> Iterator[None]:
        """Wrap ``loss.backward()`` of training step ``step``; logs afterwards when the step is due."""
        if not self.active or step % self.every:
            yield
            return
        with capture_gradients(self.model) as captured:
            yield
        rows = noise_ratios(self.model, captured)
        if self.path is None:
            self.records += [{"step": step, **row} for row in rows]
            return
        with open(self.path, "a") as f:
            for row in rows:
                f.write(json.dumps({"step": step, **row}, default=_json_number) + "\n")


def _json_number(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"NoiseMonitor: cannot write {type(value).__name__}")


def read_noise_log(path: Path) -> list[dict[str, Any]]:
    """The records a :class:`NoiseMonitor` wrote (``Infinity`` read back as inf)."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]

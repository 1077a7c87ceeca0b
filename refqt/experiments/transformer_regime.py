"""The transformer's gradient regime through training: per-token range spread and q/s.

The rebuttal reports per-token 5-bit PTQ collapsing on IWSLT14 (BLEU 0.02)
while PSQ and BHQ hold. The mechanism the paper gives (docs/theory/variance.md):
PTQ's one step is set by the largest gradient row, so when a few tokens'
output-gradient rows are much wider than the median one, every other row is
rounded on a grid far coarser than its own range and the quantization
variance q grows past the sampling variance s that SGD has anyway.

:func:`regime_probe` measures both sides of that argument on a model as it
trains, per quantized layer:

* ``spread``: max / median over the tokens of one batch of the range
  (max − min) of each token's output-gradient row (rows that are all zero,
  padding, left out);
* ``q/s``: quantization variance (FQT gradient around the QAT gradient, over
  quantizer draws) over sampling variance (QAT gradient over mini-batches),
  per layer and in total, for PTQ / PSQ / BHQ at the given bit widths
  (:mod:`refqt.stats`).

A ratio well below 1 predicts that training is not hurt; near or above 1 that
it is. :func:`regime_run` trains one model and probes it after chosen epochs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from refqt import ops
from refqt.data.translation import PAD, TranslationTask, iterate_translation_batches
from refqt.experiments.translation import build_translation, train_translation
from refqt.fqt import QuantConfig, quantize
from refqt.stats import capture_gradients, quantization_variance, sampling_variance

QUANTIZERS = ("ptq", "psq", "bhq")


def seq2seq_loss(model: Any, batch: tuple[np.ndarray, ...], label_smoothing: float = 0.0) -> Any:
    """Teacher-forced token cross-entropy of ``(src, tgt_in, tgt_out)``, padding ignored."""
    src, tgt_in, tgt_out = batch
    return ops.cross_entropy(model(src, tgt_in), tgt_out, label_smoothing=label_smoothing, ignore_index=PAD)


def range_spread(grad: np.ndarray) -> float:
    """max / median of the per-row ranges of ``grad`` seen as (tokens, features); all-zero rows dropped."""
    rows = np.asarray(grad, dtype=np.float64).reshape(-1, grad.shape[-1])
    ranges = rows.max(axis=1) - rows.min(axis=1)
    ranges = ranges[ranges > 0]
    return float(ranges.max() / np.median(ranges)) if ranges.size else float("nan")


def regime_probe(
    state: dict[str, np.ndarray],
    shape: dict[str, Any],
    task: TranslationTask,
    bits: Sequence[int] = (5, 4),
    quantizers: Sequence[str] = QUANTIZERS,
    batch_size: int = 32,
    sampling_batches: int = 8,
    draws: int = 4,
    seed: int = 0,
    label_smoothing: float = 0.0,
) -> dict[str, Any]:
    """Spread and q/s per layer of the model with weights ``state``.

    ``shape``: the keyword arguments of :func:`build_translation` that built it.
    Sampling variance over ``sampling_batches`` training batches; quantization
    variance over ``draws`` draws on each of the first two.

    Returns
    -------
    dict
        ``layers`` (names), ``spread`` ({layer: float}), ``sampling``
        ({layer: float, "total": float}), ``ratio`` ({"ptq 5": {layer: q/s,
        "total": q/s}, ...}).
    """

    def loss_fn(model: Any, batch: tuple[np.ndarray, ...]) -> Any:
        return seq2seq_loss(model, batch, label_smoothing)

    rng = np.random.default_rng(seed + 7)
    batches = []
    for batch in iterate_translation_batches(task.src_train, task.tgt_train, batch_size, rng):
        batches.append(batch)
        if len(batches) == sampling_batches:
            break

    def loaded(config: QuantConfig) -> Any:
        _, model = build_translation(**shape)
        model.load_state_dict(state)
        return quantize(model, config)

    qat = loaded(QuantConfig(mode="qat", seed=seed))
    samp = sampling_variance(qat, loss_fn, batches)
    probe = loaded(QuantConfig(mode="fqt", grad_quantizer="ptq", grad_bits=8, seed=seed))
    with capture_gradients(probe) as captured:  # the float output gradients G (QAT mode records none)
        loss_fn(probe, batches[0]).backward()
    spread = {name: range_spread(records[0]["grad"]) for name, records in captured.items() if records}
    sampling = {name: v["variance"] for name, v in samp["layers"].items()}
    sampling["total"] = samp["total"]["variance"]
    ratio: dict[str, dict[str, float]] = {}
    for b in bits:
        for q in quantizers:
            model = loaded(QuantConfig(mode="fqt", grad_quantizer=q, grad_bits=b, seed=seed))
            qv = quantization_variance(model, loss_fn, batches[:2], k=draws)
            cells = {name: v["variance"] / sampling[name] for name, v in qv["layers"].items()}
            cells["total"] = qv["total"]["variance"] / sampling["total"]
            ratio[f"{q} {b}"] = cells
    return {"layers": list(spread), "spread": spread, "sampling": sampling, "ratio": ratio}


def regime_run(
    setting: dict[str, Any],
    probe_epochs: Sequence[int],
    seed: int = 0,
    bits: Sequence[int] = (5, 4),
    draws: int = 4,
) -> dict[str, Any]:
    """Train one QAT model with ``setting`` (keywords of :func:`train_translation`), probing it as it trains.

    Returns ``{"probes": [{"epoch", **regime_probe(...)}, ...], "scores": test scores}``.
    """
    shape_keys = (
        "n_train",
        "d_model",
        "dim_feedforward",
        "layers",
        "heads",
        "n_test",
        "norm_first",
        "zipf",
        "nouns",
    )
    shape = {k: setting[k] for k in shape_keys if k in setting}
    shape["seed"] = seed
    probes: list[dict[str, Any]] = []

    def on_epoch(epoch: int, model: Any, task: TranslationTask) -> None:
        if epoch in probe_epochs:
            state = model.state_dict()
            probed = regime_probe(
                state,
                shape,
                task,
                bits=bits,
                batch_size=setting.get("batch_size", 32),
                draws=draws,
                seed=seed,
            )
            probes.append({"epoch": epoch, **probed})

    scores = train_translation(QuantConfig(mode="qat", seed=seed), seed=seed, on_epoch=on_epoch, **setting)
    return {"probes": probes, "scores": scores}


def format_regime(result: dict[str, Any]) -> list[str]:
    """Markdown: q/s in total at each probe epoch, then per layer (spread and q/s) at the last one."""
    probes = result["probes"]
    if not probes:
        return ["*No probe.*"]
    settings = list(probes[0]["ratio"])
    head = " | ".join(f"q/s {s.upper()}" for s in settings)
    lines = [f"| epoch | {head} |", "|---|" + "---|" * len(settings)]
    for p in probes:
        lines.append(
            f"| {p['epoch']} | " + " | ".join(f"{p['ratio'][s]['total']:.2g}" for s in settings) + " |"
        )
    last = probes[-1]
    lines += [
        "",
        f"Per layer after epoch {last['epoch']}:",
        "",
        f"| layer | row-range max/median | {head} |",
        "|---|---|" + "---|" * len(settings),
    ]
    for layer in last["layers"]:
        cells = " | ".join(f"{last['ratio'][s][layer]:.2g}" for s in settings)
        lines.append(f"| {layer} | {last['spread'][layer]:.0f} | {cells} |")
    return lines

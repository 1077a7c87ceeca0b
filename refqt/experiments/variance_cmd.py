"""``refqt variance``: gradient variance vs bits for PTQ / PSQ / BHQ, against QAT's sampling variance.

The paper's variance figure, on one trained model: for each gradient
quantizer and bit width, the variance FQT adds to the gradient (quantization
variance, Eq. 7) next to the noise SGD has anyway (the QAT sampling variance
over mini-batches of the training batch size). A ratio far below 1 means
the quantizer is harmless; near or above 1 it is what makes training fail.

The model is a checkpoint (``--checkpoint run/ckpt.npz --model cnn``) or,
without one, a digits SmallCNN freshly trained with QAT for a few epochs.
Writes ``variance.json`` and ``variance.png`` (log scale) into ``--out``.
``--formats nvfp4,mxfp4`` (default: none) adds block formats (:mod:`refqt.quant.formats`,
stochastic rounding; their bits are fixed) as rows below the table.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from refqt import checkpoint
from refqt.experiments.plots import plot_variance_vs_bits
from refqt.experiments.runspec import MODELS, RunSpec, build_model, digits_split, train
from refqt.experiments.train import check_folder_path
from refqt.experiments.train_cmd import checked, warn
from refqt.experiments.training import classification_loss
from refqt.fqt import QuantConfig, quantize
from refqt.quant.formats import is_format_name
from refqt.stats import quantization_variance, sampling_variance

QUANTIZERS = ("ptq", "psq", "bhq")
FORMATS = ("nvfp4", "nvfp4-rht", "mxfp4", "mxfp8-e4m3")


def variance_vs_bits(
    model_name: str,
    state: dict[str, np.ndarray],
    batches: Sequence[tuple[np.ndarray, np.ndarray]],
    bits: Sequence[int] = (2, 3, 4, 5, 6, 7, 8),
    quantizers: Sequence[str] = QUANTIZERS,
    k: int = 8,
    seed: int = 0,
    formats: Sequence[str] = (),
) -> dict[str, Any]:
    """Quantization variance per quantizer and bit width, and the QAT sampling variance.

    Parameters
    ----------
    model_name : str
        A digits model name (:data:`refqt.experiments.runspec.MODELS`); a
        fresh one is built and loaded with ``state`` for every setting.
    state : dict
        ``model.state_dict()`` of the trained model.
    batches : sequence of (x, y)
        At least two batches: all give the sampling variance, the first two
        the quantization variance (``k`` draws each).
    formats : sequence of str
        Block-format gradient quantizers (e.g. ``"nvfp4"``), one value each.

    Returns
    -------
    dict
        ``bits``, ``quantizers``, ``sampling`` / ``sampling_stderr`` (floats),
        ``quantization`` / ``quantization_stderr`` / ``ratio``
        (``{quantizer: [one value per bit width]}``), and with ``formats``
        ``formats`` (``{name: {"variance", "stderr", "ratio"}}``).
    """
    if len(batches) < 2:
        raise ValueError(f"variance_vs_bits: need at least 2 batches, got {len(batches)}")

    def loaded(config: QuantConfig):
        model = build_model(model_name, seed)
        model.load_state_dict(state)
        return quantize(model, config)

    samp = sampling_variance(loaded(QuantConfig(mode="qat")), classification_loss, batches)["total"]
    out: dict[str, Any] = {
        "bits": list(bits),
        "quantizers": list(quantizers),
        "sampling": samp["variance"],
        "sampling_stderr": samp["stderr"],
        "quantization": {},
        "quantization_stderr": {},
        "ratio": {},
    }
    for q in quantizers:
        values, errors = [], []
        for b in bits:
            config = QuantConfig(mode="fqt", grad_quantizer=q, grad_bits=b, seed=seed)
            total = quantization_variance(loaded(config), classification_loss, batches[:2], k=k)["total"]
            values.append(total["variance"])
            errors.append(total["stderr"])
        out["quantization"][q] = values
        out["quantization_stderr"][q] = errors
        out["ratio"][q] = [v / samp["variance"] for v in values]
    if formats:
        out["formats"] = {}
    for name in formats:
        config = QuantConfig(mode="fqt", grad_quantizer=name, seed=seed)
        total = quantization_variance(loaded(config), classification_loss, batches[:2], k=k)["total"]
        ratio = total["variance"] / samp["variance"]
        out["formats"][name] = {"variance": total["variance"], "stderr": total["stderr"], "ratio": ratio}
    return out


def format_table(result: dict[str, Any]) -> str:
    """Rows = bits; per quantizer the quantization variance and its ratio to the sampling variance."""
    qs = result["quantizers"]
    head = f"{'bits':>4}" + "".join(f"{q.upper() + ' var':>13}{'/ samp':>10}" for q in qs)
    lines = [f"QAT sampling variance {result['sampling']:.3e} (± {result['sampling_stderr']:.1e})", head]
    for i, b in enumerate(result["bits"]):
        cells = "".join(f"{result['quantization'][q][i]:>13.3e}{result['ratio'][q][i]:>10.2e}" for q in qs)
        lines.append(f"{b:>4}{cells}")
    for name, v in result.get("formats", {}).items():
        lines.append(f"{name:>16} var {v['variance']:.3e} (± {v['stderr']:.1e})  / samp {v['ratio']:.2e}")
    return "\n".join(lines)


def parse_bits(text: str) -> list[int]:
    """``"2-8"`` or ``"2,4,8"`` -> a list of bit widths in 1..16."""
    if "-" in text:
        lo, hi = (int(p) for p in text.split("-", 1))
        bits = list(range(lo, hi + 1))
    else:
        bits = [int(p) for p in text.split(",") if p.strip()]
    if not bits or any(not 1 <= b <= 16 for b in bits):
        raise ValueError(f"--bits must name bit widths in 1..16, got {text!r}")
    return bits


def parse_quantizers(text: str) -> list[str]:
    qs = [q.strip().lower() for q in text.split(",") if q.strip()]
    unknown = [q for q in qs if q not in ("ptq", "psq", "bhq", "shift")]
    if not qs or unknown:
        raise ValueError(f"--quantizers must be a comma list of ptq, psq, bhq, shift; got {text!r}")
    return qs


def parse_formats(text: str) -> list[str]:
    """``"nvfp4,mxfp4"`` -> format names (:func:`refqt.quant.formats.is_format_name`); ``""`` -> none."""
    names = [f.strip().lower() for f in text.split(",") if f.strip()]
    unknown = [f for f in names if not is_format_name(f)]
    if unknown:
        raise ValueError(f"--formats: unknown format(s) {unknown}; expected names like {', '.join(FORMATS)}")
    return names


def probe_batches(batch_size: int, n_batches: int, limit: int | None = None, seed: int = 0) -> list:
    """``n_batches`` training batches of ``batch_size`` from a seeded permutation of the digits."""
    x, y, _, _ = digits_split(limit)
    order = np.random.default_rng([seed, 3]).permutation(len(y))
    n_batches = max(2, min(n_batches, len(y) // batch_size))
    return [
        (x[order[i * batch_size : (i + 1) * batch_size]], y[order[i * batch_size : (i + 1) * batch_size]])
        for i in range(n_batches)
    ]


def run(args: argparse.Namespace) -> int:
    bits = parse_bits(args.bits)
    quantizers = parse_quantizers(args.quantizers)
    formats = parse_formats(args.formats)
    if args.model not in MODELS:
        raise ValueError(f"--model {args.model!r} is not a digits model; choose one of {MODELS}")
    for name in ("batches", "draws"):
        if getattr(args, name) < (2 if name == "batches" else 1):
            raise ValueError(
                f"--{name} must be at least {2 if name == 'batches' else 1}, got {getattr(args, name)}"
            )
    check_folder_path(Path(args.out))
    if args.checkpoint is not None:
        if args.epochs != EPOCHS:
            warn(f"--checkpoint ignores --epochs {args.epochs} (it sets the fresh QAT run)")
        model = build_model(args.model, args.seed)
        try:
            checkpoint.load(args.checkpoint, model)
        except checkpoint.CheckpointError as err:
            train_cmd = f"refqt train --dataset digits --model {args.model}"
            raise ValueError(f"--checkpoint {err}; pass a checkpoint.npz of `{train_cmd}`") from None
        source = f"checkpoint {args.checkpoint} ({args.model})"
    else:
        spec = checked(
            RunSpec,
            model=args.model,
            mode="qat",
            seed=args.seed,
            epochs=args.epochs,
            batch_size=args.batch_size,
            measure_variance=False,
            limit=args.limit,
        )
        print(
            f"training a {args.model} with QAT for {args.epochs} epochs (batch {args.batch_size})...",
            flush=True,
        )
        model, trained = train(spec)
        accuracy = 100 * trained["test_accuracy"]
        source = f"fresh QAT {args.model}, {args.epochs} epochs, test accuracy {accuracy:.1f}%"
    batches = probe_batches(args.batch_size, args.batches, args.limit, args.seed)
    result = variance_vs_bits(
        args.model, model.state_dict(), batches, bits, quantizers, args.draws, args.seed, formats
    )
    result.update(source=source, batch_size=args.batch_size, draws=args.draws)
    os.makedirs(args.out, exist_ok=True)
    json_path = os.path.join(args.out, "variance.json")
    with open(json_path, "w") as f:
        json.dump(result, f, indent=1)
    png = plot_variance_vs_bits(
        bits,
        result["quantization"],
        result["sampling"],
        os.path.join(args.out, "variance.png"),
        title=f"{args.model}, batch {args.batch_size}",
    )
    print(source)
    print(format_table(result))
    print(f"wrote {json_path} and {png}")
    return 0


EPOCHS = 3  # of the fresh QAT run


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``refqt variance``."""
    parser = subparsers.add_parser(
        "variance",
        help="gradient variance vs bits for PTQ / PSQ / BHQ vs QAT sampling",
        description=(
            "The paper's variance figure on one trained digits model: for each gradient quantizer "
            "and bit width, the variance FQT adds to the gradient, next to the QAT sampling variance "
            "(the noise SGD has anyway). A ratio far below 1 is harmless; near 1 training fails. "
            "Writes variance.json and variance.png into --out."
        ),
    )
    add = parser.add_argument
    add(
        "--checkpoint", help="a checkpoint.npz of `refqt train` to measure (default: train a fresh QAT model)"
    )
    add(
        "--model",
        default="cnn",
        choices=MODELS,
        help="model of the checkpoint / fresh run (names as in train)",
    )
    add("--epochs", type=int, default=EPOCHS, help="epochs of the fresh QAT run")
    add("--bits", default="2-8", help="bit widths, '2-8' or '2,4,8'")
    add("--quantizers", default="ptq,psq,bhq", help="comma list of ptq, psq, bhq, shift")
    add("--formats", default="", help=f"block formats as extra rows, e.g. {','.join(FORMATS)}")
    add("--batch-size", type=int, default=32, help="batch size of the sampling variance (and the fresh run)")
    add("--batches", type=int, default=8, help="batches for the sampling variance")
    add("--draws", type=int, default=8, help="quantizer draws per batch")
    add("--seed", type=int, default=0, help="seed of the fresh run's weights and of the quantizer noise")
    add("--out", default="variance-out", help="folder for variance.json and variance.png")
    add("--limit", type=int, default=None, help=argparse.SUPPRESS)  # tiny runs for tests
    parser.set_defaults(run=run)

"""``refqt bench``: the speed figures -- conv layer, quantizer overhead, training steps -- in one run.

Three benchmarks from :mod:`refqt.benchmarks`, each at one BLAS thread:

1. the rebuttal's convolution layer (input (128, 64, 56, 56), 64 filters 3×3):
   forward and backward time and peak memory;
2. the quantizers' overhead on that layer's gradient, in the layout of the
   rebuttal's cost paragraph (convolution; range finding PTQ / PSQ / BHQ;
   BHQ transform finding; BHQ transform application), next to the authors'
   figures, then the whole quantize-dequantize (into ``out=``) and this
   machine's floor for it (:mod:`refqt.benchmarks.quant`);
3. the cost of a training step in QAT and FQT against exact training.

``--quick`` uses batch 8 instead of 128 for the layer (and skips the large
layer in the training-step benchmark): a fast look, not the paper's setting.
``--json FILE`` writes every figure.

``--backend cupy`` prints the GPU figures instead (:mod:`refqt.benchmarks.gpu`):
a ResNet-20 training step exact / QAT / FQT, the convolution layer forward and
forward + backward, and the step's peak device memory, each beside PyTorch's
on the same GPU when torch imports. Without a working GPU it stops with one
line saying so. ``--backend numpy --emulate-device`` runs that code path on
NumPy with the GPU algorithms at a small size: a smoke test, not figures.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from refqt.backend import get_backend, gpu_available
from refqt.benchmarks import gpu
from refqt.benchmarks.conv import conv_benchmark
from refqt.benchmarks.conv import format_report as format_conv
from refqt.benchmarks.quant import LAYER, quant_benchmark
from refqt.benchmarks.training import format_report as format_training
from refqt.benchmarks.training import training_benchmark
from refqt.experiments.train import check_folder_path

# The authors' figures (rebuttal, cost paragraph): a 480 ms convolution on this layer.
PAPER_MS = {
    "convolution": 480.0,
    "range finding PTQ": 11.0,
    "range finding PSQ": 24.0,
    "range finding BHQ": 24.0,
    "BHQ transform finding": 0.003,
    "BHQ transform application": 21.0,
}


def overhead_rows(quant: dict[str, Any]) -> list[tuple[str, float, float | None]]:
    """``(operation, refqt ms, paper ms)`` in the rebuttal's order, from :func:`quant_benchmark` figures."""
    ms = {
        "convolution": quant["conv_forward_s"] * 1e3,
        "range finding PTQ": quant["ptq"]["range_s"] * 1e3,
        "range finding PSQ": quant["psq"]["range_s"] * 1e3,
        "range finding BHQ": quant["bhq"]["range_s"] * 1e3,
        "BHQ transform finding": quant["bhq"]["transform_find_s"] * 1e3,
        "BHQ transform application": quant["bhq"]["transform_apply_s"] * 1e3,
        "whole quantize-dequantize PTQ": quant["ptq"]["into_s"] * 1e3,
        "whole quantize-dequantize PSQ": quant["psq"]["into_s"] * 1e3,
        "whole quantize-dequantize BHQ": quant["bhq"]["into_s"] * 1e3,
        "floor: read + write + noise": sum(quant["floor"].values()) * 1e3,
    }
    return [(name, value, PAPER_MS.get(name)) for name, value in ms.items()]


def format_overhead(quant: dict[str, Any], markdown: bool = False) -> str:
    """The overhead table: each operation's time and its fraction of the convolution, refqt and paper."""
    rows = overhead_rows(quant)
    conv_ms, paper_conv = rows[0][1], rows[0][2]
    batch = quant["shape"][0]
    note = "" if batch == LAYER[0] else f" (batch {batch}, not the paper's {LAYER[0]}: a quick look)"
    header = ("operation", "refqt ms", "× conv", "paper ms", "paper × conv")
    cells = [
        (
            n,
            f"{v:.3f}" if v < 1 else f"{v:.1f}",
            f"{v / conv_ms:.3g}",
            "-" if p is None else f"{p:g}",
            "-" if p is None else f"{p / paper_conv:.3g}",
        )
        for n, v, p in rows
    ]
    title = f"gradient {tuple(quant['shape'])} float32, {quant['bits']} bits{note}"
    if markdown:
        lines = [title, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(c) + " |" for c in cells]
        return "\n".join(lines)
    lines = [title, f"{header[0]:<28}" + "".join(f"{h:>14}" for h in header[1:])]
    lines += [f"{c[0]:<28}" + "".join(f"{x:>14}" for x in c[1:]) for c in cells]
    return "\n".join(lines)


def bench(quick: bool = False, repeats: int = 3) -> dict[str, Any]:
    """Run the three benchmarks; ``quick`` uses batch 8 and skips the large training layer."""
    batch = 8 if quick else LAYER[0]
    return {
        "quick": quick,
        "conv": conv_benchmark(batch=batch, repeats=repeats),
        "quant": quant_benchmark((batch, *LAYER[1:]), bits=8, repeats=repeats),
        "training": training_benchmark(repeats=repeats, layer=not quick),
    }


def format_bench(figures: dict[str, Any]) -> str:
    """All three benchmarks as text, in the order they ran."""
    parts = [
        "== convolution layer ==",
        format_conv(figures["conv"]),
        "",
        "== quantizer overhead (rebuttal's cost paragraph) ==",
        format_overhead(figures["quant"]),
        "",
        "== training step ==",
        format_training(figures["training"]),
    ]
    return "\n".join(parts)


def run(args: argparse.Namespace) -> int:
    if args.repeats < 1:
        raise ValueError(f"--repeats must be at least 1, got {args.repeats}")
    if args.json:
        if os.path.isdir(args.json):
            raise ValueError(f"--json {args.json} is a folder; give a file name")
        check_folder_path(Path(args.json), "--json", folder=False)  # before minutes of timing, not after
    if args.emulate_device and args.backend != "numpy":
        raise ValueError("--emulate-device runs the GPU algorithms on NumPy: use it with --backend numpy")
    if args.backend == "cupy" and not gpu_available():
        raise ValueError("--backend cupy: no usable GPU here (CuPy not installed, or no CUDA device works)")
    if args.backend == "cupy" or args.emulate_device:
        backend = get_backend(args.backend)
        figures = gpu.gpu_benchmark(backend, smoke=args.emulate_device, repeats=args.repeats)
        print(gpu.format_report(figures))
    else:
        figures = bench(quick=args.quick, repeats=args.repeats)
        print(format_bench(figures))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=1, default=str)
        print(f"wrote {args.json}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``refqt bench``."""
    parser = subparsers.add_parser(
        "bench",
        help="conv layer, quantizer overhead and training-step timings",
        description=(
            "Speed figures at one BLAS thread: the rebuttal's convolution layer, the quantizers' "
            "overhead on its gradient next to the authors' figures, and the cost of a QAT / FQT "
            "training step against exact training."
        ),
    )
    parser.add_argument("--quick", action="store_true", help="batch 8 instead of 128: a fast look")
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions of each measurement")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument(
        "--backend",
        choices=("numpy", "cupy"),
        default="numpy",
        help="cupy: the GPU figures (ResNet-20 step, conv layer, peak memory) beside PyTorch's",
    )
    parser.add_argument(
        "--emulate-device",
        action="store_true",
        help="with --backend numpy: run the GPU benchmark's code on NumPy at a small size (a smoke test)",
    )
    parser.set_defaults(run=run)

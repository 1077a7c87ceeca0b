"""Time the block-format quantizers against PSQ on the paper's conv gradient, at one thread.

The gradient: (128, 64, 56, 56) float32 (the output gradient of a ResNet
stage-1 convolution). Prints, best of ``--repeats`` calls each, measured
interleaved in one run so that the ratios share the machine's state:

* PSQ (8 bits, per sample) quantize-dequantize, into a preallocated output;
* each format quantizer (default: NVFP4 with and without the 16-point RHT,
  MXFP8 E4M3), the same way, and its ratio to PSQ;
* the exact per-element moments (mean and variance) of each, and their ratio
  to PSQ and to the format's own quantize-dequantize::

    python -m refqt.benchmarks.formats [--repeats 3] [--batch 128] [--formats nvfp4-rht ...]

BLAS (used by the RHT) is limited to one thread with ``threadpoolctl``.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from refqt.benchmarks.timing import best_ms, one_thread
from refqt.quant import PSQ
from refqt.quant.formats import FORMAT_QUANTIZERS, make_format_quantizer

DEFAULT_FORMATS = ("nvfp4-rht", "nvfp4", "mxfp8-e4m3")


def formats_benchmark(
    batch: int = 128, repeats: int = 3, formats: tuple[str, ...] = DEFAULT_FORMATS, seed: int = 0
) -> dict[str, Any]:
    """Milliseconds for PSQ and each format (quantize, moments), best of ``repeats``, one thread."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, 64, 56, 56), dtype=np.float32)
    x *= np.exp(rng.standard_normal((batch, 1, 1, 1))).astype(np.float32)  # per-sample scales
    out = np.empty_like(x)
    limit, note = one_thread()
    figures: dict[str, Any] = {"shape": tuple(x.shape), "threads": note, "formats": {}}
    with limit:
        psq = PSQ(8)
        quantizers = [make_format_quantizer(name) for name in formats]
        best = {"psq": float("inf")}
        for _ in range(repeats):  # interleaved: every quantizer sees the same stretch of machine time
            best["psq"] = min(best["psq"], best_ms(lambda: psq(x, np.random.default_rng(1), out=out), 1))
            for q in quantizers:
                quantize = best_ms(lambda q=q: q(x, np.random.default_rng(1), out=out), 1)
                moments = best_ms(lambda q=q: q.moments(x), 1)
                first = {"quantize_ms": quantize, "moments_ms": moments}
                entry = figures["formats"].setdefault(q.name, first)
                entry["quantize_ms"] = min(entry["quantize_ms"], quantize)
                entry["moments_ms"] = min(entry["moments_ms"], moments)
    figures["psq_ms"] = best["psq"]
    for entry in figures["formats"].values():
        entry["quantize_over_psq"] = entry["quantize_ms"] / best["psq"]
        entry["moments_over_psq"] = entry["moments_ms"] / best["psq"]
        entry["moments_over_quantize"] = entry["moments_ms"] / entry["quantize_ms"]
    return figures


def format_figures(figures: dict[str, Any]) -> str:
    """The figures as a small table."""
    lines = [
        f"gradient {figures['shape']} float32; {figures['threads']}",
        f"PSQ (8 bits) quantize-dequantize: {figures['psq_ms']:.1f} ms",
        f"{'format':14s}{'Q(x) ms':>10s}{'/ PSQ':>8s}{'moments ms':>12s}{'/ PSQ':>8s}{'/ Q(x)':>8s}",
    ]
    for name, e in figures["formats"].items():
        lines.append(
            f"{name:14s}{e['quantize_ms']:10.1f}{e['quantize_over_psq']:8.2f}"
            f"{e['moments_ms']:12.1f}{e['moments_over_psq']:8.2f}{e['moments_over_quantize']:8.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--formats", nargs="+", default=list(DEFAULT_FORMATS), choices=FORMAT_QUANTIZERS)
    args = parser.parse_args(argv)
    print(format_figures(formats_benchmark(args.batch, args.repeats, tuple(args.formats))))


if __name__ == "__main__":
    main()

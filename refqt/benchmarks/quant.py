"""Time the gradient quantizers on the paper's cost-analysis layer, at one thread.

The gradient of the layer in the authors' rebuttal: a (128, 64, 56, 56)
float32 array (conv 3×3, 64 → 64, stride 1, padding 1). For PTQ, PSQ, BHQ and
PerSampleShift, and PSQ per channel (``psq-column``: the weight path's 8-bit
quantizer, its range per channel), it prints, best of a few repeats: range
finding, (BHQ) finding the transform and applying it (``T`` and ``T⁻¹``
together), and the whole quantize-dequantize ``q(x, rng)``, allocating its
output and into a reused ``out=``; each also as a fraction of the layer's conv
forward (:func:`refqt.ops.conv.conv2d_forward`) timed in the same run::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m refqt.benchmarks.quant [--bits 8] [--repeats 3]

(Unset those two variables when benchmarking: they pin OpenBLAS to a core
type / cache size that may not match the machine.) BLAS is limited to one
thread with ``threadpoolctl``. The authors report, against a 480 ms
convolution: range finding 11 ms (PTQ) and 24 ms (PSQ, BHQ), finding the BHQ
transform 3 µs, applying it 21 ms. :func:`quant_benchmark` returns the
figures as a dict.

A last line prints this machine's floor for any quantize-dequantize of the
array: one read (a range needs one), one read and write (the output), and the
16-bit noise of every element -- three costs that no NumPy code can avoid.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import numpy as np

from refqt.benchmarks.timing import best_ms, one_thread
from refqt.ops.conv import conv2d_forward
from refqt.quant import BHQ, PSQ, PTQ, PerSampleShift
from refqt.quant import fast as quant_fast
from refqt.quant.householder import apply_transform_fast, block_householder
from refqt.quant.rounding import NoiseStream

LAYER = (128, 64, 56, 56)


def _best(fn: Callable[[], Any], repeats: int) -> float:
    """Best wall time of ``repeats`` calls, in seconds."""
    return best_ms(fn, repeats) / 1e3


def _conv_timer(x: np.ndarray, rng: np.random.Generator) -> tuple[Callable[[], Any], str]:
    c = x.shape[1]  # the layer maps C channels to C, 3×3, padding 1: its output is the gradient's shape
    w = (rng.standard_normal((c, c, 3, 3)) * 0.05).astype(np.float32)
    return (lambda: conv2d_forward(x, w, 1, 1)), "refqt.ops.conv.conv2d_forward"


def _floor(x: np.ndarray, out: np.ndarray, repeats: int) -> dict[str, float]:
    """What any quantize-dequantize of ``x`` must at least do, timed on this machine (seconds).

    ``read_s``: one pass that reads ``x`` (``np.max``; a range needs it);
    ``copy_s``: read ``x`` and write ``out`` once (``np.copyto``);
    ``noise_s``: draw the 16-bit noise codes of every element, as the
    quantizers do (:class:`~refqt.quant.rounding.NoiseStream`, in blocks).
    Their sum bounds a PTQ / PSQ quantize-dequantize from below.
    """

    def noise() -> None:
        stream = NoiseStream(np.random.default_rng(0))
        for _ in range(0, x.size, quant_fast.CHUNK):
            stream.take(quant_fast.CHUNK)

    return {
        "read_s": _best(lambda: np.max(x), repeats),
        "copy_s": _best(lambda: np.copyto(out, x), repeats),
        "noise_s": _best(noise, repeats),
    }


def quant_benchmark(
    shape: tuple[int, ...] = LAYER, bits: int = 8, repeats: int = 3, seed: int = 0
) -> dict[str, Any]:
    """Figures in seconds (and fractions of the conv forward) for each quantizer.

    Returns
    -------
    dict
        ``conv_forward_s``, ``conv`` (what was timed), ``threads``, and per
        quantizer name a dict with ``range_s``, ``whole_s`` (and for BHQ
        ``transform_find_s``, ``transform_apply_s``), each with a ``*_frac``
        twin relative to the conv.
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape, dtype=np.float32)
    # a gradient-like spread: per-sample scales over two orders of magnitude
    x *= np.exp(rng.standard_normal((shape[0],) + (1,) * (len(shape) - 1)) * 1.0).astype(np.float32)
    x2 = x.reshape(shape[0], -1)
    limit, note = one_thread()
    figures: dict[str, Any] = {"shape": shape, "bits": bits, "threads": note}
    with limit:
        conv, conv_name = _conv_timer(x, rng)
        conv_s = _best(conv, max(1, repeats - 1))
        figures["conv"], figures["conv_forward_s"] = conv_name, conv_s
        range_s = _best(lambda: quant_fast.row_ranges(x2), repeats)
        mins, maxs = quant_fast.row_ranges(x2)
        spans = maxs.astype(np.float64) - mins.astype(np.float64)
        t = block_householder(spans)
        find_s = _best(lambda: block_householder(spans), max(repeats, 20))
        y2 = np.empty_like(x2)

        def apply() -> None:
            apply_transform_fast(t, x2, y2)
            apply_transform_fast(t, y2, y2, inverse=True)

        apply_s = _best(apply, repeats)
        psq_channel = PSQ(bits, axis="channel")
        channel_range_s = _best(lambda: psq_channel._channel_ranges(x2, True, shape), repeats)
        out = np.empty_like(x)
        figures["floor"] = _floor(x, out, repeats)
        for q in (PTQ(bits), PSQ(bits), BHQ(bits), PerSampleShift(bits), PSQ(bits, axis="channel")):
            gen = np.random.default_rng(seed + 1)
            whole_s = _best(lambda q=q, gen=gen: q(x, gen), repeats)
            into_s = _best(lambda q=q, gen=gen: q(x, gen, out=out), repeats)
            entry: dict[str, float] = {
                "range_s": channel_range_s if q.name == "psq-column" else range_s,
                "whole_s": whole_s,
                "into_s": into_s,
            }
            if q.name == "bhq":
                entry.update(transform_find_s=find_s, transform_apply_s=apply_s)
            for key in list(entry):
                entry[key.replace("_s", "_frac")] = entry[key] / conv_s
            figures[q.name] = entry
    return figures


def format_figures(figures: dict[str, Any]) -> str:
    """The figures as a small table."""
    conv_s = figures["conv_forward_s"]
    lines = [
        f"gradient {figures['shape']} float32, {figures['bits']} bits; {figures['threads']}",
        f"conv forward ({figures['conv']}): {conv_s * 1e3:.1f} ms",
        f"{'':11s}{'range':>18s}{'find T':>18s}{'apply T, T^-1':>18s}{'whole Q':>18s}{'Q, out=':>18s}",
    ]

    def cell(entry: dict[str, float], key: str, unit: float = 1e3, fmt: str = "{:.1f} ms") -> str:
        if f"{key}_s" not in entry:
            return f"{'-':>18s}"
        text = fmt.format(entry[f"{key}_s"] * unit) + f" ({entry[f'{key}_frac']:.3f}x)"
        return f"{text:>18s}"

    for name in ("ptq", "psq", "bhq", "shift", "psq-column"):
        e = figures[name]
        lines.append(
            f"{name:11s}{cell(e, 'range')}{cell(e, 'transform_find', 1e6, '{:.0f} us')}"
            f"{cell(e, 'transform_apply')}{cell(e, 'whole')}{cell(e, 'into')}"
        )
    f = figures["floor"]
    total = f["read_s"] + f["copy_s"] + f["noise_s"]

    def part(key: str) -> str:
        return f"{f[key] * 1e3:.1f} ms ({f[key] / conv_s:.3f}x)"

    lines.append(
        f"floor on this machine: one read {part('read_s')}, read + write {part('copy_s')}, "
        f"16-bit noise {part('noise_s')};\n  a PTQ/PSQ quantize-dequantize needs at least all three: "
        f"{total * 1e3:.1f} ms ({total / conv_s:.3f}x)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bits", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=LAYER[0])
    args = parser.parse_args(argv)
    print(format_figures(quant_benchmark((args.batch, *LAYER[1:]), args.bits, args.repeats)))


if __name__ == "__main__":
    main()

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
    python -m refqt.benchmarks.quant --small [--bits 5] [--calls 300]

(Unset those two variables when benchmarking: they pin OpenBLAS to a core
type / cache size that may not match the machine.) BLAS is limited to one
thread with ``threadpoolctl``. The authors report, against a 480 ms
convolution: range finding 11 ms (PTQ) and 24 ms (PSQ, BHQ), finding the BHQ
transform 3 µs, applying it 21 ms. :func:`quant_benchmark` returns the
figures as a dict.

A last line prints this machine's floor for any quantize-dequantize of the
array: one read (a range needs one), one read and write (the output), and the
16-bit noise of every element -- three costs that no NumPy code can avoid.

``--small`` times the teaching models' gradients instead (:func:`small_benchmark`):
a per-token gradient of the quick transformer (640, 32), a wider one (640, 64) and a
digits-CNN conv gradient (32, 16, 8, 8), float32, 5 bits by default, per call in µs
(best of ``--calls``, into a reused ``out=``), beside the matmul each feeds
(``g @ w`` with ``w`` (D, D); none for the conv gradient) and the 16-bit noise
of its elements alone (the defined noise, :class:`~refqt.quant.rounding.NoiseStream`).
A second table times both gradient paths of an FQT layer's backward on the same
gradients, ``Q_b`` at ``--bits`` and the 8-bit ``Q_w`` of its mode (PTQ + PTQ per tensor,
PSQ + PSQ per channel): in one pass (:func:`refqt.quant.pair.quantize_pair`, what
:meth:`~refqt.fqt.LayerQuantizer.bifurcate` runs) and as the two calls it replaces.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import numpy as np

from refqt.benchmarks.timing import best_ms, one_thread
from refqt.ops.conv import conv2d_forward
from refqt.quant import BHQ, PSQ, PTQ, GradientQuantizer, PerSampleShift, make_gradient_quantizer
from refqt.quant import fast as quant_fast
from refqt.quant.grid import zero_aligned_params
from refqt.quant.householder import block_householder
from refqt.quant.householder_fast import apply_transform_fast
from refqt.quant.pair import quantize_pair
from refqt.quant.rounding import NOISE_BITS, NoiseStream

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


SMALL_SHAPES = ((640, 32), (640, 64), (32, 16, 8, 8))
"""Gradients of the teaching models: quick transformer tokens (640, 32) and (640, 64), a digits conv."""

SMALL_QUANTIZERS = ("ptq", "psq", "psq-column", "bhq")


def small_benchmark(
    shapes: tuple[tuple[int, ...], ...] = SMALL_SHAPES, bits: int = 5, calls: int = 300, seed: int = 0
) -> dict[str, Any]:
    """Per-call µs of each quantizer on small gradients, with the matmul each feeds and the noise alone.

    The quantizers are timed in turn, round after round (``calls`` rounds of
    one call each), so a burst of load on a shared machine hits them alike;
    each figure is the best call.

    Returns
    -------
    dict
        ``threads``, ``bits``, ``calls`` and ``rows``: per shape a dict with
        ``shape``, ``matmul_us`` (None for a 4-D gradient), ``noise_us`` and
        one entry per name in ``SMALL_QUANTIZERS``.
    """
    limit, note = one_thread()
    rows = []
    with limit:
        for shape in shapes:
            timers = _small_timers(shape, bits, seed)
            best = dict.fromkeys(timers, float("inf"))
            for fn in timers.values():
                fn()  # warm-up
            for _ in range(calls):
                for name, fn in timers.items():
                    best[name] = min(best[name], best_ms(fn, 1) * 1e3)
            row: dict[str, Any] = {"shape": shape, "matmul_us": best.pop("matmul", None)}
            row["pairs"] = {name: best.pop(name) for name in list(best) if name.startswith("pair ")}
            row["noise_us"] = best.pop("noise")
            row["ptq_calls_us"] = best.pop("ptq calls")
            rows.append({**row, **best})
    return {"threads": note, "bits": bits, "calls": calls, "rows": rows}


def _small_timers(shape: tuple[int, ...], bits: int, seed: int) -> dict[str, Callable[[], Any]]:
    """One call each: every quantizer of ``SMALL_QUANTIZERS`` into ``out=``, the noise, the matmul."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape, dtype=np.float32)
    x *= np.exp(rng.standard_normal((shape[0],) + (1,) * (len(shape) - 1))).astype(np.float32)
    out = np.empty_like(x)
    gen = np.random.default_rng(seed + 1)

    def quantize(q: GradientQuantizer) -> Callable[[], Any]:
        return lambda: q(x, gen, out=out)

    timers = {name: quantize(make_gradient_quantizer(name, bits)) for name in SMALL_QUANTIZERS}
    timers["noise"] = lambda: NoiseStream(gen).take(x.size)
    timers["ptq calls"] = ptq_numpy_calls(x, bits, gen, out)
    timers.update(_pair_timers(x, bits, gen))
    if len(shape) == 2:
        w = rng.standard_normal((shape[1], shape[1]), dtype=np.float32)
        timers["matmul"] = lambda: np.matmul(x, w)
    return timers


def ptq_numpy_calls(x: np.ndarray, bits: int, gen: np.random.Generator, out: np.ndarray) -> Callable[[], Any]:
    """The NumPy calls of a PTQ call on ``x`` alone, in order, without the Python around them.

    Draw the codes, read the range, ``y = x·(1/step)``, ``u = m·2⁻¹⁶ + 2⁻¹⁷``
    (cast, two passes), ``⌊y + u⌋`` (two passes), ``·step`` into ``out`` -- what
    the small-array path does when no clamp can bite (0 inside the range, the
    benchmark's case); the grid's scalar arithmetic is done once, outside.
    ``tests/test_benchmarks.py`` checks these calls give PTQ's numbers.
    """
    x2, out2 = x.reshape(x.shape[0], -1), out.reshape(x.shape[0], -1)
    _, step, _ = zero_aligned_params(float(x.min()), float(x.max()), 2**bits - 1)
    step_w = np.float32(step)
    inv_w = np.float32(1.0) / step_w
    words = -(-x.size // 4)

    def calls() -> np.ndarray:
        codes = gen.bit_generator.random_raw(words).view("<u2")[: x.size].reshape(x2.shape)
        x2.min(), x2.max()
        y = np.multiply(x2, inv_w, out=out2)
        u = codes.astype(np.float32)
        np.multiply(u, np.float32(2.0**-NOISE_BITS), out=u)
        np.add(u, np.float32(2.0 ** -(NOISE_BITS + 1)), out=u)
        np.add(y, u, out=y)
        np.floor(y, out=y)
        return np.multiply(y, step_w, out=out2)

    return calls


PAIRS = (("ptq", "ptq"), ("psq", "psq-column"))
"""``(Q_b, Q_w)`` of the per-tensor and the per-sample FQT modes (``Q_w`` at 8 bits)."""


def _pair_timers(x: np.ndarray, bits: int, gen: np.random.Generator) -> dict[str, Callable[[], Any]]:
    """Both paths of a layer backward on ``x`` (2-D: a linear G, else a conv G): one pass, two calls."""
    rows = (x.shape[0], x.size // x.shape[0])
    out_w = np.empty_like(x)
    timers: dict[str, Callable[[], Any]] = {}
    for b_name, w_name in PAIRS:
        q_b, q_w = make_gradient_quantizer(b_name, bits), make_gradient_quantizer(w_name, 8)

        def one_pass(q_b: GradientQuantizer = q_b, q_w: GradientQuantizer = q_w) -> Any:
            return quantize_pair(q_b, q_w, x, rows, gen, out_w)

        def two_calls(q_b: GradientQuantizer = q_b, q_w: GradientQuantizer = q_w) -> Any:
            return q_b(x.reshape(rows), gen), q_w(x, gen, out=out_w)

        timers[f"pair {b_name} one pass"], timers[f"pair {b_name} two calls"] = one_pass, two_calls
    return timers


def format_small(figures: dict[str, Any]) -> str:
    """The small-array table: µs per call of each quantizer, the matmul the gradient feeds, the noise."""
    names = [n.upper() if n != "psq-column" else "PSQ chan." for n in SMALL_QUANTIZERS]
    head = ["gradient (float32)", *names, "matmul it feeds", "noise alone", "PTQ's NumPy calls alone"]
    lines = [
        f"{figures['bits']} bits, µs per call, best of {figures['calls']}; {figures['threads']}",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for row in figures["rows"]:
        cells = [str(tuple(row["shape"]))]
        cells += [f"{row[n]:.0f}" for n in SMALL_QUANTIZERS]
        cells.append("–" if row["matmul_us"] is None else f"{row['matmul_us']:.0f}")
        cells.append(f"{row['noise_us']:.0f}")
        cells.append(f"{row['ptq_calls_us']:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    head = ["gradient (float32)"]
    for b_name, w_name in PAIRS:
        pair = f"{b_name.upper()} + {w_name.upper().replace('-COLUMN', ' chan.')} 8 bits"
        head += [f"{pair}: one pass", "two calls"]
    lines += ["", "both paths of a layer backward, µs per call:", "| " + " | ".join(head) + " |"]
    lines.append("|" + "---|" * len(head))
    for row in figures["rows"]:
        cells = [str(tuple(row["shape"]))]
        for b_name, _ in PAIRS:
            cells += [f"{row['pairs'][f'pair {b_name} {how}']:.0f}" for how in ("one pass", "two calls")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bits", type=int, default=None, help="default 8 (layer), 5 (--small)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=LAYER[0])
    parser.add_argument("--small", action="store_true", help="the teaching models' small gradients instead")
    parser.add_argument("--calls", type=int, default=300, help="--small: timed calls per quantizer")
    args = parser.parse_args(argv)
    if args.small:
        print(format_small(small_benchmark(bits=args.bits or 5, calls=args.calls)))
        return
    print(format_figures(quant_benchmark((args.batch, *LAYER[1:]), args.bits or 8, args.repeats)))


if __name__ == "__main__":
    main()

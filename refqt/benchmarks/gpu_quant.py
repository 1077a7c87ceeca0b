"""Gradient quantizers on the device path, as multiples of a device copy of the same array (issue 11).

``python -m refqt.benchmarks.gpu_quant`` times, for PTQ, PSQ, PSQ per channel
and BHQ on a (128, 64, 56, 56) float32 gradient at 8 bits, the steps of the
device algorithm (:mod:`refqt.gpu.quantize`): the range reductions (with
BHQ's grouping on the host), BHQ's transform ``T x`` (batched,
:mod:`refqt.gpu.householder`), and the whole quantize-dequantize ``q(x, rng)``
(noise made in the kernel, :mod:`refqt.gpu.noise`), each as milliseconds and
as a multiple of ``copy``: one device-to-device copy of the gradient, the
memory-traffic floor of any elementwise pass.

``--backend cupy`` needs a GPU; ``--backend numpy`` runs the same algorithm on
NumPy under :func:`refqt.backend.emulate_device` (a smoke test of the
benchmark, not a GPU figure: use a small ``--shape``). :func:`quant_rows` is
what ``refqt bench --backend cupy`` calls.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from refqt.backend import emulate_device, get_backend
from refqt.gpu.householder import apply_transform_batched
from refqt.quant import BHQ, PSQ, PTQ
from refqt.quant.checks import as_rows

LAYER = (128, 64, 56, 56)
"""The issue's gradient: ResNet's first-stage activation gradient at batch 128."""

QUANTIZERS = (
    ("PTQ", lambda b: PTQ(b)),
    ("PSQ", lambda b: PSQ(b)),
    ("PSQ per channel", lambda b: PSQ(b, axis="channel")),
    ("BHQ", lambda b: BHQ(b)),
)


def best_ms(fn: Callable[[], Any], native: Any, repeats: int) -> float:
    """Fastest of ``repeats`` calls in ms, after one warm-up (kernel compilation); synchronised on CuPy."""

    def sync() -> None:
        if native.__name__ == "cupy":
            native.cuda.Device().synchronize()

    fn()
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return 1e3 * best


def quant_rows(
    backend: str = "cupy", shape: tuple[int, ...] = LAYER, bits: int = 8, repeats: int = 20, seed: int = 0
) -> list[dict[str, Any]]:
    """One row per quantizer: ``range``, ``transform`` (None but for BHQ), ``quantize`` and ``copy`` in ms.

    ``backend``: ``"cupy"`` (a GPU) or ``"numpy"`` (the device algorithm emulated on NumPy).
    """
    native = get_backend(backend).native
    x = native.asarray(np.random.default_rng(seed).standard_normal(shape, dtype=np.float32))
    buf = native.empty_like(x)
    copy_ms = best_ms(lambda: native.copyto(buf, x), native, repeats)
    rng = np.random.default_rng(seed + 1)
    rows = []
    with emulate_device(backend == "numpy"):
        x2 = as_rows(x)
        for name, make in QUANTIZERS:
            q = make(bits)
            if isinstance(q, BHQ):
                find = lambda q=q: q._find_transform(x2, fast_path=False)  # noqa: E731
                t = find()
                range_ms = best_ms(find, native, repeats)
                transform_ms = best_ms(lambda t=t: apply_transform_batched(t, x2), native, repeats)  # T alone
            else:
                range_ms = best_ms(lambda q=q: q._grid(x2, fast_path=False, shape=shape), native, repeats)
                transform_ms = None
            quantize_ms = best_ms(lambda q=q: q(x, rng, out=buf), native, repeats)
            rows.append(
                {
                    "quantizer": name,
                    "range": range_ms,
                    "transform": transform_ms,
                    "quantize": quantize_ms,
                    "copy": copy_ms,
                }
            )
    return rows


def resnet20_gradients(batch: int = 128, image: int = 32) -> list[tuple[tuple[int, ...], bool]]:
    """Output-gradient shapes of ResNet-20's layers at ``batch`` on ``image``² input, and whether Q_b runs.

    (:class:`refqt.models.resnet.PreActResNet`, depth 20, width 16): the stem and
    six 3×3 convolutions per stage, plus a 1×1 shortcut in stages 2 and 3 --
    seven (N, 16, 32, 32), seven (N, 32, 16, 16), seven (N, 64, 8, 8) -- and
    the (N, 10) classifier. The stem's input needs no gradient, so it has no Q_b.
    """
    s1, s2, s3 = image, -(-image // 2), -(-image // 4)  # each stage halves the side (stride 2, padding 1)
    shapes = [((batch, 16, s1, s1), i > 0) for i in range(7)]
    shapes += [((batch, 32, s2, s2), True)] * 7 + [((batch, 64, s3, s3), True)] * 7
    return [*shapes, ((batch, 10), True)]


def resnet20_quantizer_ms(
    backend: str = "cupy", batch: int = 128, bits: int = 5, repeats: int = 10, seed: int = 0, image: int = 32
) -> dict[str, float]:
    """Milliseconds of one FQT-BHQ step's gradient quantizers on ResNet-20 (no convolutions).

    Every layer's Q_b (BHQ, ``bits``) and Q_w (PSQ per channel, 8 bits, the
    default weight path) on a random gradient of its shape, summed: the
    quantizers' share of the FQT step, to set against the step time of
    ``refqt bench``. Returns ``{"Q_b": ms, "Q_w": ms, "total": ms}``.
    """
    native = get_backend(backend).native
    rng = np.random.default_rng(seed)
    q_b, q_w = BHQ(bits), PSQ(8, axis="channel")
    work = [
        (native.asarray(rng.standard_normal(shape, dtype=np.float32)), need)
        for shape, need in resnet20_gradients(batch, image)
    ]
    noise = np.random.default_rng(seed + 1)

    def quantizers(which: str) -> None:
        for g, need in work:
            if which == "Q_w":
                q_w(g, noise)
            elif need:
                q_b(g, noise)

    with emulate_device(backend == "numpy"):
        figures = {
            which: best_ms(lambda which=which: quantizers(which), native, repeats) for which in ("Q_b", "Q_w")
        }
    figures["total"] = figures["Q_b"] + figures["Q_w"]
    return figures


def format_rows(rows: list[dict[str, Any]], title: str) -> str:
    """The rows as a table: ms and multiples of the copy."""

    def cell(ms: float | None, copy: float) -> str:
        return "-" if ms is None else f"{ms:8.3f} ms ({ms / copy:6.1f}×)"

    lines = [title, f"{'quantizer':16} {'range':>21} {'transform':>21} {'quantize-dequantize':>21}"]
    for r in rows:
        lines.append(
            f"{r['quantizer']:16} {cell(r['range'], r['copy']):>21} {cell(r['transform'], r['copy']):>21} "
            f"{cell(r['quantize'], r['copy']):>21}"
        )
    lines.append(f"copy of the gradient: {rows[0]['copy']:.3f} ms (the 1× of every multiple)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m refqt.benchmarks.gpu_quant", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--backend",
        choices=("cupy", "numpy"),
        default="cupy",
        help="cupy: a GPU; numpy: the device algorithm emulated on NumPy (smoke test)",
    )
    parser.add_argument("--shape", default=",".join(map(str, LAYER)), help="gradient shape, e.g. 16,8,14,14")
    parser.add_argument("--bits", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument(
        "--resnet20-batch",
        type=int,
        default=128,
        help="batch of the ResNet-20 FQT-BHQ 5-bit quantizers' share (0: skip it)",
    )
    args = parser.parse_args(argv)
    shape = tuple(int(s) for s in args.shape.split(","))
    rows = quant_rows(args.backend, shape, args.bits, args.repeats)
    where = "GPU" if args.backend == "cupy" else "NumPy, emulated device path (not a GPU figure)"
    print(
        format_rows(
            rows, f"gradient quantizers, {shape} float32, {args.bits} bits, {where}, best of {args.repeats}"
        )
    )
    if args.resnet20_batch > 0:
        share = resnet20_quantizer_ms(args.backend, args.resnet20_batch, 5, max(1, args.repeats // 2))
        print(
            f"ResNet-20 FQT-BHQ 5-bit step, batch {args.resnet20_batch}, gradient quantizers only: "
            f"Q_b (BHQ) {share['Q_b']:.3f} ms + Q_w (PSQ per channel, 8 bits) {share['Q_w']:.3f} ms "
            f"= {share['total']:.3f} ms (set against the step time of `refqt bench`)"
        )


if __name__ == "__main__":
    main()

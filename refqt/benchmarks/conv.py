"""Time the convolution layer from the paper's cost analysis, at one thread.

The layer: input (128, 64, 56, 56) float32, 64 filters 3×3, stride 1,
padding 1 (a ResNet-18/50 stage-1 convolution). Prints the best of a few
repeats of the forward and of the backward (input gradient + weight
gradient), and the peak extra memory NumPy allocated for each (measured by
``tracemalloc`` in a separate run, the result arrays included). With
``--torch`` it also times PyTorch's CPU convolution in the same run, if torch
imports, and prints the ratios::

    python -m refqt.benchmarks.conv [--torch] [--batch 128] [--repeats 3]

BLAS is limited to one thread with ``threadpoolctl`` when it is installed;
otherwise start Python with ``OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1``.
:func:`conv_benchmark` returns the figures as a dict (used by ``refqt bench``).
"""

from __future__ import annotations

import argparse
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np

from refqt.benchmarks.timing import best_ms, one_thread
from refqt.ops.conv import conv2d_forward, conv2d_grad_input, conv2d_grad_weight

MiB = 1 << 20


def _peak_mib(fn: Callable[[], Any]) -> float:
    """Peak bytes NumPy allocated while ``fn`` ran (its result included), in MiB."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / MiB


def conv_benchmark(
    batch: int = 128,
    channels: int = 64,
    size: int = 56,
    filters: int = 64,
    repeats: int = 3,
    torch: bool = False,
) -> dict[str, Any]:
    """Time forward and backward of a 3×3, stride-1, padding-1 float32 convolution at one thread.

    Returns
    -------
    dict
        ``shape``, ``blas``, ``forward_ms``, ``backward_ms``, ``output_mib``,
        ``forward_peak_mib`` / ``backward_peak_mib`` (peak NumPy allocation,
        results included), and with ``torch=True`` when torch imports also
        ``torch_forward_ms``, ``torch_backward_ms``, ``forward_ratio``,
        ``backward_ratio`` (refqt / torch: below 1 means refqt is faster).
    """
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, channels, size, size), dtype=np.float32)
    w = rng.standard_normal((filters, channels, 3, 3), dtype=np.float32) * np.float32(0.05)
    g = rng.standard_normal((batch, filters, size, size), dtype=np.float32)

    def fwd() -> Any:
        return conv2d_forward(x, w, 1, 1)

    def bwd() -> Any:
        return conv2d_grad_input(g, w, x.shape, 1, 1), conv2d_grad_weight(g, x, w.shape, 1, 1)

    limit, blas = one_thread()
    result: dict[str, Any] = {
        "shape": f"x {x.shape}, w {w.shape}, stride 1, padding 1, float32",
        "blas": blas,
        "output_mib": g.nbytes / MiB,
    }
    with limit:
        torch_fns = _torch_fns(x, w, g) if torch else None
        if torch and torch_fns is None:
            result["torch"] = "not importable"
        fwd(), bwd()  # warm up
        timings = {"forward_ms": [], "backward_ms": [], "torch_forward_ms": [], "torch_backward_ms": []}
        for _ in range(repeats):  # interleaved, so that a busy machine slows both alike
            timings["forward_ms"].append(best_ms(fwd, 1))
            timings["backward_ms"].append(best_ms(bwd, 1))
            if torch_fns is not None:
                timings["torch_forward_ms"].append(best_ms(torch_fns[0], 1))
                timings["torch_backward_ms"].append(best_ms(torch_fns[1], 1))
        result.update({k: min(v) for k, v in timings.items() if v})
        result["forward_peak_mib"] = _peak_mib(fwd)
        result["backward_peak_mib"] = _peak_mib(bwd)
    if torch_fns is not None:
        result["forward_ratio"] = result["forward_ms"] / result["torch_forward_ms"]
        result["backward_ratio"] = result["backward_ms"] / result["torch_backward_ms"]
    return result


def _torch_fns(x: np.ndarray, w: np.ndarray, g: np.ndarray) -> tuple[Callable, Callable] | None:
    """PyTorch's forward and backward (input + weight gradient) of the same layer, or None."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    xt = torch.from_numpy(x).requires_grad_(True)
    wt = torch.from_numpy(w).requires_grad_(True)
    gt = torch.from_numpy(g)
    yt = torch.nn.functional.conv2d(xt, wt, padding=1)

    def fwd() -> Any:
        with torch.no_grad():
            return torch.nn.functional.conv2d(xt, wt, padding=1)

    def bwd() -> Any:
        return torch.autograd.grad(yt, (xt, wt), gt, retain_graph=True)

    fwd(), bwd()
    return fwd, bwd


def format_report(r: dict[str, Any]) -> str:
    """The figures of :func:`conv_benchmark` as lines of text."""
    lines = [f"conv2d {r['shape']}, one thread", r["blas"]]
    extra_f = r["forward_peak_mib"] - r["output_mib"]
    extra_b = r["backward_peak_mib"] - r["output_mib"]  # g_x has the output's size here
    lines.append(
        f"refqt forward  {r['forward_ms']:8.1f} ms   peak {r['forward_peak_mib']:7.1f} MiB "
        f"(output {r['output_mib']:.1f} + {extra_f:.1f} extra)"
    )
    lines.append(
        f"refqt backward {r['backward_ms']:8.1f} ms   peak {r['backward_peak_mib']:7.1f} MiB "
        f"(g_x {r['output_mib']:.1f} + {extra_b:.1f} extra)"
    )
    if "torch_forward_ms" in r:
        lines.append(
            f"torch forward  {r['torch_forward_ms']:8.1f} ms   ratio refqt/torch {r['forward_ratio']:.2f}"
        )
        lines.append(
            f"torch backward {r['torch_backward_ms']:8.1f} ms   ratio refqt/torch {r['backward_ratio']:.2f}"
        )
    elif "torch" in r:
        lines.append(f"torch: {r['torch']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m refqt.benchmarks.conv", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--torch", action="store_true", help="also time PyTorch in the same run")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    print(format_report(conv_benchmark(batch=args.batch, repeats=args.repeats, torch=args.torch)))


if __name__ == "__main__":
    main()

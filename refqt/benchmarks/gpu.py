"""The GPU figures of issue 10: refqt on CuPy against PyTorch on the same GPU, as ratios from one run.

Rows (float32):

* one SGD step (forward, backward, update; momentum 0.9) of
  ``PreActResNet(20, 16, 3, 10)`` on a batch (128, 3, 32, 32): exact, QAT,
  and FQT with 5-bit BHQ gradients (images on the device, labels a host
  array as a data loader gives them; PyTorch gets both on the device);
* the convolution (128, 64, 56, 56) ⊛ (64, 64, 3, 3), padding 1: forward, and
  forward + backward (input and weight gradients);
* peak device memory of the exact step: CuPy's memory-pool high-water mark
  (the pool is emptied of free blocks before the step and only grows during
  it, so its ``total_bytes()`` afterwards is the most it held) against
  ``torch.cuda.max_memory_allocated``.

PyTorch runs the same workloads in the same process when it imports and sees
the GPU: cuDNN, TF32 off for convolutions and matmuls, eager mode, its own
PreActResNet-20 of the same shape (written below). Times are wall clock
between device synchronisations, best of ``repeats``, so launch overhead
counts as it does in training.

Run with ``refqt bench --backend cupy``. ``refqt bench --backend numpy
--emulate-device`` runs the same code path on NumPy with the GPU algorithms
(:func:`refqt.backend.emulate_device`) at a small size -- a smoke test of the
code, not a speed figure.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from refqt import ops
from refqt.backend import Backend, emulate_device
from refqt.fqt import QuantConfig, quantize
from refqt.models import PreActResNet
from refqt.ops.conv import conv2d_forward, conv2d_grad_input, conv2d_grad_weight
from refqt.optim import SGD
from refqt.tensor import Tensor

MODES = {
    "exact": QuantConfig(mode="exact"),
    "qat": QuantConfig(mode="qat"),
    "fqt-bhq5": QuantConfig(mode="fqt", grad_quantizer="bhq", grad_bits=5),
}
FULL = {"batch": 128, "image": 32, "conv": (128, 64, 56, 56)}
SMOKE = {"batch": 4, "image": 8, "conv": (2, 8, 9, 9)}
MiB = 1 << 20


def _sync(backend: Backend) -> Callable[[], None]:
    """Wait for the device (CuPy); nothing to wait for on NumPy."""
    if backend.name == "cupy":
        return backend.native.cuda.get_current_stream().synchronize
    return lambda: None


def best_ms(fn: Callable[[], Any], sync: Callable[[], None], repeats: int) -> float:
    """Fastest of ``repeats`` calls of ``fn``, each timed between device synchronisations, in ms."""
    best = float("inf")
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return 1e3 * best


def _resnet_step(backend: Backend, config: QuantConfig, size: dict[str, Any]) -> Callable[[], None]:
    """One SGD step of a fresh PreActResNet-20 (seed 0) on a fixed random batch, on ``backend``."""
    rng = np.random.default_rng(0)
    model = quantize(PreActResNet(20, 16, 3, 10, rng=rng), config).to(backend)
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
    n, s = size["batch"], size["image"]
    x = backend.asarray(rng.standard_normal((n, 3, s, s), dtype=np.float32))
    y = rng.integers(0, 10, n)  # labels from the host, as from a data loader: checked there, no device sync

    def step() -> None:
        loss = ops.cross_entropy(model(Tensor(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def _peak_mib(backend: Backend, fn: Callable[[], Any]) -> float | None:
    """CuPy's memory-pool high-water mark over one call of ``fn`` (None off CuPy)."""
    if backend.name != "cupy":
        return None
    pool = backend.native.get_default_memory_pool()
    _sync(backend)()
    pool.free_all_blocks()
    fn()
    _sync(backend)()
    return pool.total_bytes() / MiB


def _conv_fns(backend: Backend, shape: tuple[int, ...]) -> tuple[Callable, Callable]:
    rng = np.random.default_rng(0)
    x = backend.asarray(rng.standard_normal(shape, dtype=np.float32))
    w = backend.asarray(rng.standard_normal((shape[1], shape[1], 3, 3), dtype=np.float32) * np.float32(0.05))
    g = backend.asarray(rng.standard_normal(shape, dtype=np.float32))

    def fwd() -> Any:
        return conv2d_forward(x, w, 1, 1)

    def fwd_bwd() -> Any:
        return (
            fwd(),
            conv2d_grad_input(g, w, tuple(x.shape), 1, 1),
            conv2d_grad_weight(g, x, tuple(w.shape), 1, 1),
        )

    return fwd, fwd_bwd


def refqt_figures(backend: Backend, size: dict[str, Any], repeats: int) -> dict[str, Any]:
    """refqt's rows on ``backend`` (ms, and the exact step's peak MiB on CuPy)."""
    sync = _sync(backend)
    figures: dict[str, Any] = {}
    for name, config in MODES.items():
        step = _resnet_step(backend, config, size)
        step()  # warm-up: kernels compiled, memory pool filled, optimizer state made
        figures[f"resnet20_step_{name}_ms"] = best_ms(step, sync, repeats)
        if name == "exact":
            figures["resnet20_step_exact_peak_mib"] = _peak_mib(backend, step)
    fwd, fwd_bwd = _conv_fns(backend, size["conv"])
    fwd_bwd()
    figures["conv_forward_ms"] = best_ms(fwd, sync, repeats)
    figures["conv_forward_backward_ms"] = best_ms(fwd_bwd, sync, repeats)
    return figures


def torch_figures(size: dict[str, Any], repeats: int) -> dict[str, Any] | str:
    """PyTorch's rows on the GPU (cuDNN, TF32 off, eager), or a line saying why there are none."""
    try:
        import torch
    except ImportError:
        return "torch not importable"
    if not torch.cuda.is_available():
        return "torch sees no GPU"
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    dev = torch.device("cuda")
    sync = torch.cuda.synchronize
    gen = torch.Generator().manual_seed(0)
    model = _torch_preact_resnet20(torch).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    n, s = size["batch"], size["image"]
    x = torch.randn((n, 3, s, s), generator=gen).to(dev)
    y = torch.randint(0, 10, (n,), generator=gen).to(dev)

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()
    figures: dict[str, Any] = {"resnet20_step_exact_ms": best_ms(step, sync, repeats)}
    sync()
    torch.cuda.reset_peak_memory_stats()
    step()
    sync()
    figures["resnet20_step_exact_peak_mib"] = torch.cuda.max_memory_allocated() / MiB
    shape = size["conv"]
    xc = torch.randn(shape, generator=gen).to(dev).requires_grad_(True)
    wc = (0.05 * torch.randn((shape[1], shape[1], 3, 3), generator=gen)).to(dev).requires_grad_(True)
    gc = torch.randn(shape, generator=gen).to(dev)

    def fwd() -> Any:
        with torch.no_grad():
            return torch.nn.functional.conv2d(xc, wc, padding=1)

    def fwd_bwd() -> Any:
        out = torch.nn.functional.conv2d(xc, wc, padding=1)
        return torch.autograd.grad(out, (xc, wc), gc)

    fwd_bwd()
    figures["conv_forward_ms"] = best_ms(fwd, sync, repeats)
    figures["conv_forward_backward_ms"] = best_ms(fwd_bwd, sync, repeats)
    figures["device"] = torch.cuda.get_device_name()
    return figures


def _torch_preact_resnet20(torch: Any) -> Any:
    """PyTorch's twin of ``PreActResNet(20, 16, 3, 10)``: same blocks, widths, strides and shortcuts."""
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int):
            super().__init__()
            self.bn1, self.bn2 = nn.BatchNorm2d(cin), nn.BatchNorm2d(cout)
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.shortcut = (
                None if stride == 1 and cin == cout else nn.Conv2d(cin, cout, 1, stride, bias=False)
            )

        def forward(self, x: Any) -> Any:
            h = torch.relu(self.bn1(x))
            skip = x if self.shortcut is None else self.shortcut(h)
            return self.conv2(torch.relu(self.bn2(self.conv1(h)))) + skip

    layers, cin = [nn.Conv2d(3, 16, 3, 1, 1, bias=False)], 16
    for stage, width in enumerate((16, 32, 64)):
        for b in range(3):
            layers.append(Block(cin, width, 2 if stage > 0 and b == 0 else 1))
            cin = width
    layers += [nn.BatchNorm2d(64), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10)]
    return nn.Sequential(*layers)


def quantizer_rows(backend: Backend, size: dict[str, Any], repeats: int) -> dict[str, Any]:
    """The GPU quantizers' figures (:mod:`refqt.benchmarks.gpu_quant`, issue 11).

    ``rows``: range, transform and quantize-dequantize of each quantizer on the
    conv layer's gradient (8 bits), with the device copy of the same array they
    are measured against; ``resnet20``: milliseconds of the gradient quantizers
    of one FQT-BHQ 5-bit ResNet-20 step (Q_b and Q_w on every layer's gradient
    shape), their share of that step.
    """
    from refqt.benchmarks import gpu_quant

    return {
        "rows": gpu_quant.quant_rows(backend.name, shape=size["conv"], repeats=repeats),
        "resnet20": gpu_quant.resnet20_quantizer_ms(
            backend.name, batch=size["batch"], repeats=repeats, image=size["image"]
        ),
    }


def gpu_benchmark(
    backend: Backend, smoke: bool = False, repeats: int = 5, torch: bool = True
) -> dict[str, Any]:
    """Every row on ``backend`` (``emulate_device`` on for NumPy), PyTorch's beside them when it runs.

    ``smoke`` uses :data:`SMOKE` sizes instead of :data:`FULL`: a check that
    the code runs, not a figure.
    """
    size = SMOKE if smoke else FULL
    with emulate_device(backend.name == "numpy"):
        refqt = refqt_figures(backend, size, repeats)
        quant = quantizer_rows(backend, size, repeats)
    result: dict[str, Any] = {
        "backend": backend.name,
        "smoke": smoke,
        "size": size,
        "refqt": refqt,
        "quant": quant,
    }
    result["torch"] = torch_figures(size, repeats) if torch and backend.name == "cupy" else "not run"
    return result


ROWS = (
    ("ResNet-20 step, exact", "resnet20_step_exact_ms"),
    ("ResNet-20 step, QAT", "resnet20_step_qat_ms"),
    ("ResNet-20 step, FQT-BHQ 5 bits", "resnet20_step_fqt-bhq5_ms"),
    ("conv forward", "conv_forward_ms"),
    ("conv forward + backward", "conv_forward_backward_ms"),
)


def format_report(r: dict[str, Any]) -> str:
    """The rows as text: refqt ms, PyTorch ms, ratio; then QAT and FQT against exact, and peak memory."""
    size, ours = r["size"], r["refqt"]
    theirs = r["torch"] if isinstance(r["torch"], dict) else {}
    lines = [
        f"backend {r['backend']}"
        + (" (GPU algorithms emulated on NumPy; smoke sizes, not figures)" if r["smoke"] else ""),
        f"ResNet-20 = PreActResNet(20, 16, 3, 10), batch ({size['batch']}, 3, {size['image']}, "
        f"{size['image']}), SGD momentum 0.9; conv {size['conv']} ⊛ ({size['conv'][1]}, "
        f"{size['conv'][1]}, 3, 3), padding 1; float32",
        f"{'workload':<34}{'refqt ms':>12}{'torch ms':>12}{'refqt/torch':>13}",
    ]
    for label, key in ROWS:
        t = theirs.get(key)
        cells = f"{ours[key]:>12.2f}" + (f"{t:>12.2f}{ours[key] / t:>13.2f}" if t else f"{'-':>12}{'-':>13}")
        lines.append(f"{label:<34}{cells}")
    exact = ours["resnet20_step_exact_ms"]
    lines.append(
        f"QAT / exact {ours['resnet20_step_qat_ms'] / exact:.2f}, "
        f"FQT-BHQ5 / exact {ours['resnet20_step_fqt-bhq5_ms'] / exact:.2f}"
    )
    peak, tpeak = ours.get("resnet20_step_exact_peak_mib"), theirs.get("resnet20_step_exact_peak_mib")
    if peak is not None:
        ratio = f", refqt/torch {peak / tpeak:.2f}" if tpeak else ""
        torch_part = f", torch max_memory_allocated {tpeak:.1f} MiB" if tpeak else ""
        lines.append(f"peak device memory of the exact step: refqt pool {peak:.1f} MiB{torch_part}{ratio}")
    if not theirs:
        lines.append(f"torch: {r['torch']}")
    else:
        lines.append(f"torch on {theirs['device']}")
    from refqt.benchmarks.gpu_quant import format_rows

    quant = r["quant"]
    title = f"gradient quantizers, 8 bits, on the conv layer's {size['conv']}:"
    lines.append(format_rows(quant["rows"], title))
    share, fqt = quant["resnet20"], ours["resnet20_step_fqt-bhq5_ms"]
    lines.append(
        f"gradient quantizers of the FQT-BHQ5 ResNet-20 step: Q_b {share['Q_b']:.2f} ms + Q_w "
        f"{share['Q_w']:.2f} ms = {share['total']:.2f} ms, {100 * share['total'] / fqt:.0f}% of the step"
    )
    return "\n".join(lines)

"""Training-step cost of QAT and FQT against exact training, at one thread.

Three workloads:

* the digits SmallCNN (batch 128), a whole SGD step (forward, backward, update);
* the quick transformer of tutorial 10 (:func:`refqt.experiments.translation`'s
  synthetic task, d_model 32, one layer, batch 32): 2 epochs of 2,000 pairs with
  Adam, in QAT and in FQT with 5-bit PTQ and 5-bit BHQ, as ratios to QAT (the
  modes take turns, repeat after repeat, and each keeps its best run), the
  exact run beside them for scale;
* the rebuttal's conv layer: input (128, 64, 56, 56) float32, 64 filters 3×3,
  stride 1, padding 1, as one layer "step" (forward + backward with a fixed
  random cotangent).

For each: the exact step, QAT, and FQT with BHQ at 5 bits (8-bit per-channel
weight path), as ratios to exact. Each mode is timed on its own, best of N,
as a training run uses one mode: timing the three modes in turn made FQT's
conv layer look far slower (1.73-1.79x exact against 1.41-1.49x on its own,
on a shared 2-core machine; most likely memory reuse between the modes'
large arrays, not pinned down). Then the statistics' reuse of the forward
pass: K = 32 gradient draws for one batch (one forward, K backward passes)
against K full steps, in FQT and, for scale, in QAT (no gradient quantizer)::

    python -m refqt.benchmarks.training [--repeats 3] [--skip-layer] [--skip-transformer]

:func:`training_benchmark` returns the figures as a dict.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from refqt import Tensor
from refqt.benchmarks.timing import best_ms, one_thread
from refqt.data import load_digits
from refqt.data.translation import make_translation_task
from refqt.experiments.training import classification_loss
from refqt.experiments.translation import train_epoch_seq2seq
from refqt.fqt import QuantConfig, quantize
from refqt.models import SmallCNN
from refqt.models.transformer import Seq2SeqTransformer
from refqt.nn import Conv2d
from refqt.optim import SGD, Adam
from refqt.stats import draw_layer_gradients

MODES = {
    "exact": QuantConfig(mode="exact"),
    "qat": QuantConfig(mode="qat"),
    "fqt-bhq5": QuantConfig(mode="fqt", grad_quantizer="bhq", grad_bits=5),
}


def _cnn_step_ms(config: QuantConfig, batch: tuple[np.ndarray, np.ndarray], repeats: int) -> float:
    model = quantize(SmallCNN(rng=np.random.default_rng(0)), config)
    opt = SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step() -> None:
        loss = classification_loss(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()  # warm-up
    return best_ms(step, repeats)


TRANSFORMER_MODES = {
    "exact": QuantConfig(mode="exact"),
    "qat": QuantConfig(mode="qat"),
    "fqt-ptq5": QuantConfig(mode="fqt", grad_quantizer="ptq", grad_bits=5),
    "fqt-bhq5": QuantConfig(mode="fqt", grad_quantizer="bhq", grad_bits=5),
}
QUICK_TRANSFORMER = {"n_train": 2000, "epochs": 2, "d_model": 32, "dim_feedforward": 64, "layers": 1}


def transformer_seconds(repeats: int, setting: dict[str, int] = QUICK_TRANSFORMER) -> dict[str, float]:
    """Best wall time (s) of ``setting["epochs"]`` epochs of the quick transformer, per mode.

    Each run builds the model afresh from seed 0 and trains it with Adam
    (lr 2e-3, batch 32) on the same batches; only the epochs are timed.
    Modes take turns within each repeat, so load on a shared machine falls on all.
    """
    task = make_translation_task(n_train=setting["n_train"], n_test=10, seed=0)
    best = dict.fromkeys(TRANSFORMER_MODES, float("inf"))
    for _ in range(repeats):
        for name, config in TRANSFORMER_MODES.items():
            model = Seq2SeqTransformer(
                task.src_vocab,
                task.tgt_vocab,
                d_model=setting["d_model"],
                heads=4,
                layers=setting["layers"],
                dim_feedforward=setting["dim_feedforward"],
                max_len=max(task.max_src_len, task.max_tgt_len),
                rng=np.random.default_rng(0),
            )
            model = quantize(model, config)
            optimizer = Adam(model.parameters(), lr=2e-3)
            shuffle = np.random.default_rng(1)

            def epochs(model=model, optimizer=optimizer, shuffle=shuffle) -> None:
                for _ in range(setting["epochs"]):
                    train_epoch_seq2seq(model, optimizer, task, 32, shuffle)

            best[name] = min(best[name], best_ms(epochs, 1) / 1e3)
    return best


def _layer_step_ms(config: QuantConfig, x: np.ndarray, g: np.ndarray, repeats: int) -> float:
    layer = quantize(Conv2d(64, 64, 3, padding=1, rng=np.random.default_rng(0)), config)
    xt = Tensor(x, requires_grad=True)

    def step() -> None:
        layer.zero_grad()
        xt.grad = None
        layer(xt).backward(g)

    return best_ms(step, repeats)


def _draws_vs_steps_ms(
    batch: tuple[np.ndarray, np.ndarray], k: int, repeats: int, mode: str = "fqt-bhq5"
) -> tuple[float, float]:
    model = quantize(SmallCNN(rng=np.random.default_rng(0)), MODES[mode])
    opt = SGD(model.parameters(), lr=0.0, momentum=0.0)

    def draws() -> None:
        draw_layer_gradients(model, classification_loss(model, batch), k, free_graph=True)

    def steps() -> None:
        for _ in range(k):
            loss = classification_loss(model, batch)
            opt.zero_grad()
            loss.backward()
            opt.step()

    return best_ms(draws, repeats), best_ms(steps, repeats)


def training_benchmark(
    repeats: int = 3, layer: bool = True, k: int = 32, transformer: bool = True
) -> dict[str, Any]:
    """Step times (ms) per workload and mode, ratios to exact, the transformer runs, the draws figure."""
    limit, blas = one_thread()
    x, y = load_digits()
    batch = (x[:128], y[:128])
    figures: dict[str, Any] = {"blas": blas, "k": k}
    with limit:
        cnn = {name: _cnn_step_ms(cfg, batch, 5 * repeats) for name, cfg in MODES.items()}
        figures["digits_cnn_ms"] = cnn
        if transformer:
            figures["transformer_s"] = transformer_seconds(repeats)
        if layer:
            rng = np.random.default_rng(0)
            xl = rng.standard_normal((128, 64, 56, 56), dtype=np.float32)
            gl = rng.standard_normal((128, 64, 56, 56), dtype=np.float32)
            figures["conv_layer_ms"] = {
                name: _layer_step_ms(cfg, xl, gl, repeats) for name, cfg in MODES.items()
            }
        d, s = _draws_vs_steps_ms(batch, k, repeats)
        figures["draws_ms"], figures["steps_ms"] = d, s
        # the same with no gradient quantizer: how much of a step the backward is by itself
        figures["qat_draws_ms"], figures["qat_steps_ms"] = _draws_vs_steps_ms(batch, k, repeats, "qat")
    return figures


def format_report(f: dict[str, Any]) -> str:
    lines = [f["blas"], f"{'workload':<22}{'mode':<10}{'ms':>10}{'× exact':>10}"]
    for key, label in (("digits_cnn_ms", "digits CNN step"), ("conv_layer_ms", "conv layer fwd+bwd")):
        if key not in f:
            continue
        for mode, ms in f[key].items():
            lines.append(f"{label:<22}{mode:<10}{ms:>10.1f}{ms / f[key]['exact']:>10.2f}")
    if "transformer_s" in f:
        t = f["transformer_s"]
        setting = ", ".join(f"{key} {value}" for key, value in QUICK_TRANSFORMER.items())
        lines.append(f"quick transformer ({setting}), seconds, best run; × QAT:")
        for mode, seconds in t.items():
            lines.append(f"{'  transformer':<22}{mode:<10}{seconds:>10.2f}{seconds / t['qat']:>10.2f}")
    k = f["k"]
    lines.append(
        f"K = {k} gradient draws, one forward: {f['draws_ms']:.1f} ms vs {k} full steps "
        f"{f['steps_ms']:.1f} ms = {f['draws_ms'] / f['steps_ms']:.2f}×"
    )
    if "qat_draws_ms" in f:
        lines.append(
            f"  the same in QAT (no gradient quantizer): {f['qat_draws_ms']:.1f} ms vs "
            f"{f['qat_steps_ms']:.1f} ms = {f['qat_draws_ms'] / f['qat_steps_ms']:.2f}×"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-layer", action="store_true", help="skip the large conv layer")
    parser.add_argument("--skip-transformer", action="store_true", help="skip the quick transformer runs")
    args = parser.parse_args(argv)
    report = training_benchmark(
        args.repeats, layer=not args.skip_layer, transformer=not args.skip_transformer
    )
    print(format_report(report))


if __name__ == "__main__":
    main()

"""Training and scoring a :class:`~refqt.models.Seq2SeqTransformer` on a translation task.

The loop is the classification loop's twin: teacher-forced cross-entropy on
``(src, tgt_in, tgt_out)`` batches, padding ignored. The quantization mode
lives in the model (:func:`refqt.fqt.quantize`), so the same loop trains exact,
QAT and FQT transformers; dense layers see (N, L, d) inputs and FQT quantizes
their gradients one token per row.

Run ``python -m refqt.experiments.translation --quick`` for a short
exact / QAT / FQT comparison on the synthetic task.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from refqt import ops
from refqt.autodiff import no_grad
from refqt.backend import Backend, get_backend
from refqt.data.translation import (
    BOS,
    EOS,
    PAD,
    TranslationTask,
    iterate_translation_batches,
    make_translation_task,
)
from refqt.fqt import QuantConfig, quantize
from refqt.metrics import corpus_bleu, exact_match
from refqt.models.transformer import Seq2SeqTransformer
from refqt.optim import Adam, ConstantSchedule, CosineSchedule, WarmupSchedule
from refqt.optim.optimizer import Optimizer
from refqt.optim.schedules import Schedule


def _to(backend: Backend | None, a: np.ndarray) -> Any:
    return a if backend is None else backend.asarray(a)


def train_epoch_seq2seq(
    model: Seq2SeqTransformer,
    optimizer: Optimizer,
    task: TranslationTask,
    batch_size: int,
    rng: np.random.Generator,
    schedule: Schedule | None = None,
    step: int = 0,
    label_smoothing: float = 0.0,
    backend: Backend | None = None,
) -> dict[str, Any]:
    """One shuffled pass over ``task``'s training pairs; returns mean token loss and the step count.

    ``rng`` only orders the batches, so runs in different modes see the same
    batches. ``step`` counts optimizer steps across epochs for ``schedule``.
    """
    model.train()
    total_loss = 0.0
    tokens = 0
    for src, tgt_in, tgt_out in iterate_translation_batches(task.src_train, task.tgt_train, batch_size, rng):
        if schedule is not None:
            optimizer.lr = schedule.lr_at(step)
        logits = model(_to(backend, src), _to(backend, tgt_in))
        loss = ops.cross_entropy(
            logits, _to(backend, tgt_out), label_smoothing=label_smoothing, ignore_index=PAD
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
        n = int(np.sum(tgt_out != PAD))
        total_loss += loss.item() * n
        tokens += n
    return {"loss": total_loss / tokens, "step": step}


def evaluate_translation(
    model: Seq2SeqTransformer,
    task: TranslationTask,
    batch_size: int = 250,
    split: str = "test",
    decode: bool = True,
    backend: Backend | None = None,
) -> dict[str, float]:
    """Scores of ``model`` on ``task``'s ``split`` ("test" or "train").

    Returns
    -------
    dict
        ``loss``: teacher-forced cross-entropy per target token (EOS included);
        ``token_accuracy``: teacher-forced next-token accuracy over the same
        positions, in [0, 1]; ``exact_match`` (fraction of sentences, [0, 1])
        and ``bleu`` (corpus BLEU-4, [0, 100]) of greedy decodes. The last two
        are NaN when ``decode`` is False.
    """
    if split not in ("test", "train"):
        raise ValueError(f"evaluate_translation: split must be 'test' or 'train', got {split!r}")
    src_all = task.src_test if split == "test" else task.src_train
    tgt_all = task.tgt_test if split == "test" else task.tgt_train
    was_training = model.training
    model.eval()
    total_loss, correct, tokens = 0.0, 0, 0
    hypotheses = []
    with no_grad():
        for src, tgt_in, tgt_out in iterate_translation_batches(src_all, tgt_all, batch_size, shuffle=False):
            logits = model(_to(backend, src), _to(backend, tgt_in))
            keep = tgt_out != PAD
            n = int(np.sum(keep))
            total_loss += ops.cross_entropy(logits, _to(backend, tgt_out), ignore_index=PAD).item() * n
            correct += int(np.sum((np.argmax(logits.numpy(), axis=-1) == tgt_out) & keep))
            tokens += n
            if decode:
                hyp = model.greedy_decode(_to(backend, src), tgt_all.shape[1], bos=BOS, eos=EOS)
                hypotheses.extend(hyp.tolist())
    model.train(was_training)
    result = {"loss": total_loss / tokens, "token_accuracy": correct / tokens}
    if decode:
        hyp_array = np.zeros((len(hypotheses), tgt_all.shape[1]), dtype=np.int64)
        for i, h in enumerate(hypotheses):
            hyp_array[i, : len(h)] = h
        result["exact_match"] = exact_match(hyp_array, tgt_all)
        result["bleu"] = corpus_bleu(hyp_array, tgt_all)
    else:
        result["exact_match"] = result["bleu"] = float("nan")
    return result


# -- the experiment: one model per mode on the synthetic task ----------------------------------
QUICK = {"n_train": 4000, "epochs": 6, "d_model": 32, "dim_feedforward": 64, "layers": 1, "lr": 3e-3}
DEFAULT = {"n_train": 4000, "epochs": 10, "d_model": 32, "dim_feedforward": 64, "layers": 1, "lr": 3e-3}


def build_translation(
    n_train: int,
    d_model: int,
    dim_feedforward: int,
    layers: int,
    heads: int = 4,
    n_test: int = 500,
    seed: int = 0,
    norm_first: bool = True,
    zipf: float = 0.0,
    nouns: int = 16,
) -> tuple[TranslationTask, Seq2SeqTransformer]:
    """The task (generated from ``seed``) and a fresh model for it (weights from ``seed``)."""
    task = make_translation_task(
        n_train=n_train, n_test=n_test, seed=seed, zipf=zipf, class_sizes=(nouns, 10, 10, 2)
    )
    model = Seq2SeqTransformer(
        task.src_vocab,
        task.tgt_vocab,
        d_model=d_model,
        heads=heads,
        layers=layers,
        dim_feedforward=dim_feedforward,
        max_len=max(task.max_src_len, task.max_tgt_len),
        norm_first=norm_first,
        rng=np.random.default_rng(seed),
    )
    return task, model


def train_translation(
    config: QuantConfig,
    n_train: int,
    epochs: int,
    d_model: int,
    dim_feedforward: int,
    layers: int,
    heads: int = 4,
    batch_size: int = 32,
    lr: float = 2e-3,
    n_test: int = 500,
    seed: int = 0,
    verbose: bool = False,
    backend: Backend | None = None,
    norm_first: bool = True,
    label_smoothing: float = 0.0,
    warmup: int | None = None,
    zipf: float = 0.0,
    nouns: int = 16,
    on_epoch: Callable[[int, Seq2SeqTransformer, TranslationTask], None] | None = None,
) -> dict[str, Any]:
    """Generate the task, train one transformer under ``config``, return test scores and seconds.

    Adam with ``lr``, linear warm-up over ``warmup`` steps (default
    ``min(100, steps/10)``; 0: none), then cosine decay to 0. ``norm_first``,
    ``zipf`` and ``nouns`` shape the model and the task (see
    :func:`build_translation`); ``label_smoothing`` the loss.
    ``on_epoch(epoch, model, task)`` is called after each epoch (1-based),
    e.g. to measure gradient statistics through training.
    """
    task, model = build_translation(
        n_train, d_model, dim_feedforward, layers, heads, n_test, seed, norm_first, zipf, nouns
    )
    if backend is not None:
        model.to(backend)
    model = quantize(model, config)
    optimizer = Adam(model.parameters(), lr=lr)
    steps = epochs * -(-n_train // batch_size)
    warmup = min(100, steps // 10) if warmup is None else warmup
    schedule = WarmupSchedule(warmup, CosineSchedule(lr, steps)) if steps > 1 else ConstantSchedule(lr)
    shuffle = np.random.default_rng(seed + 1)
    start = time.perf_counter()
    step = 0
    for epoch in range(epochs):
        stats = train_epoch_seq2seq(
            model,
            optimizer,
            task,
            batch_size,
            shuffle,
            schedule,
            step,
            label_smoothing=label_smoothing,
            backend=backend,
        )
        step = stats["step"]
        if verbose:
            print(
                f"  epoch {epoch + 1}: train loss {stats['loss']:.3f}  ({time.perf_counter() - start:.0f} s)"
            )
        if on_epoch is not None:
            on_epoch(epoch + 1, model, task)
    train_seconds = time.perf_counter() - start
    scores = evaluate_translation(model, task, backend=backend)
    return {**scores, "train_loss": stats["loss"], "train_seconds": train_seconds}


def _modes(bits: int) -> list[tuple[str, QuantConfig]]:
    modes = [("exact", QuantConfig(mode="exact")), ("QAT", QuantConfig(mode="qat"))]
    for q in ("ptq", "psq", "bhq"):
        modes.append(
            (f"FQT {q.upper()} {bits}-bit", QuantConfig(mode="fqt", grad_quantizer=q, grad_bits=bits))
        )
    return modes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Exact / QAT / FQT transformers on the synthetic translation task"
    )
    parser.add_argument("--quick", action="store_true", help="small model and data (about a minute per mode)")
    parser.add_argument("--bits", type=int, default=5, help="gradient bits of the FQT runs")
    parser.add_argument("--modes", default="exact,qat,ptq,psq,bhq", help="comma-separated subset")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--backend", default="numpy", help="numpy, array_api_strict or cupy")
    args = parser.parse_args(argv)
    setting = dict(QUICK if args.quick else DEFAULT)
    if args.epochs is not None:
        setting["epochs"] = args.epochs
    wanted = set(args.modes.split(","))
    print(f"synthetic translation, {setting}, seed {args.seed}")
    print(f"{'mode':<16} {'test loss':>9} {'tok acc':>8} {'exact':>7} {'BLEU':>6} {'train s':>8}")
    for label, config in _modes(args.bits):
        key = label.split()[1].lower() if label.startswith("FQT") else label.lower()
        if key not in wanted:
            continue
        r = train_translation(
            config, seed=args.seed, verbose=args.verbose, backend=get_backend(args.backend), **setting
        )
        print(
            f"{label:<16} {r['loss']:9.3f} {100 * r['token_accuracy']:7.1f}% {100 * r['exact_match']:6.1f}% "
            f"{r['bleu']:6.1f} {r['train_seconds']:8.1f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

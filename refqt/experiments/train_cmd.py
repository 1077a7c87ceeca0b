"""``refqt train``: one exact / QAT / FQT training run from the command line.

::

    refqt train --model cnn --dataset digits --mode fqt --quantizer bhq --bits 5 --epochs 10
    refqt train --model mlp --dataset mnist --data-dir ~/data/mnist --out runs/mnist-mlp
    refqt train --out runs/mnist-mlp ... --resume      # continue an interrupted run

Each finished epoch prints one line, appends to ``OUT/metrics.jsonl`` and
rewrites ``OUT/checkpoint.npz`` (see :mod:`refqt.experiments.train`). Exit
status: 0 done, 1 the loss diverged, 2 a usage error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys

from refqt.backend import BACKEND_NAMES
from refqt.experiments.registry import DATASETS, MODELS
from refqt.experiments.train import TrainingDiverged, train_run
from refqt.experiments.train_config import SCHEDULES, TrainConfig
from refqt.fqt.config import MODES

QUANTIZERS = ("ptq", "psq", "bhq", "shift")


def default_out(config: TrainConfig) -> str:
    """``runs/<model>-<dataset>-<mode>[-<quantizer><bits>]-seed<seed>``."""
    mode = f"fqt-{config.quantizer}{config.bits}" if config.mode == "fqt" else config.mode
    return f"runs/{config.model}-{config.dataset}-{mode}-seed{config.seed}"


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The :class:`TrainConfig` the options describe (checked)."""
    return TrainConfig(
        model=args.model,
        dataset=args.dataset,
        data_dir=args.data_dir,
        mode=args.mode,
        quantizer=args.quantizer,
        bits=args.bits,
        act_bits=args.act_bits,
        weight_bits=args.weight_bits,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        schedule=args.schedule,
        seed=args.seed,
        backend=args.backend,
    )


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    out = args.out if args.out is not None else default_out(config)
    if not args.quiet:
        mode = config.mode
        if config.mode == "fqt":
            mode += f" ({config.quantizer.upper()} {config.bits}-bit gradients)"
        print(
            f"{config.model} on {config.dataset}, {mode}, {config.epochs} epochs, "
            f"batch {config.batch_size}, lr {config.lr}, seed {config.seed} -> {out}"
        )
    try:
        train_run(config, out, resume=args.resume, log=None if args.quiet else print, progress=not args.quiet)
    except TrainingDiverged as err:
        print(f"refqt: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            f"\nrefqt: interrupted; finished epochs are kept in {out}; continue with --resume",
            file=sys.stderr,
        )
        return 130
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``refqt train``."""
    d = TrainConfig()
    parser = subparsers.add_parser(
        "train",
        help="train one model (exact, QAT or FQT), with metrics and checkpoints per epoch",
        description="Train one model in exact, QAT or FQT mode; metrics and a checkpoint after every epoch.",
    )
    parser.add_argument("--model", choices=sorted(MODELS), default=d.model)
    parser.add_argument("--dataset", choices=sorted(DATASETS), default=d.dataset)
    parser.add_argument("--data-dir", default=None, help="folder of the MNIST / CIFAR-10 files")
    parser.add_argument("--mode", choices=MODES, default=d.mode)
    parser.add_argument("--quantizer", choices=QUANTIZERS, default=d.quantizer, help="FQT gradient quantizer")
    parser.add_argument("--bits", type=int, default=d.bits, help="FQT gradient bits (1-16)")
    parser.add_argument("--act-bits", type=int, default=d.act_bits, help="forward activation bits (QAT, FQT)")
    parser.add_argument(
        "--weight-bits", type=int, default=d.weight_bits, help="forward weight bits (QAT, FQT)"
    )
    parser.add_argument("--epochs", type=int, default=d.epochs)
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
    parser.add_argument("--lr", type=float, default=d.lr)
    parser.add_argument("--momentum", type=float, default=d.momentum)
    parser.add_argument("--weight-decay", type=float, default=d.weight_decay)
    parser.add_argument("--schedule", choices=SCHEDULES, default=d.schedule)
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--backend", choices=(*BACKEND_NAMES, "auto"), default=d.backend)
    parser.add_argument(
        "--out", default=None, help="run folder (default runs/<model>-<dataset>-<mode>-seed<seed>)"
    )
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no per-epoch lines")
    parser.set_defaults(run=run)

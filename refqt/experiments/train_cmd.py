"""``refqt train``: one exact / QAT / FQT training run from the command line.

::

    refqt train --model cnn --dataset digits --mode fqt --quantizer bhq --bits 5 --epochs 10
    refqt train --model cnn --mode fqt --recipe nvfp4     # NVIDIA's NVFP4 recipe (docs/theory/formats.md)
    refqt train --model mlp --dataset mnist --data-dir ~/data/mnist --out runs/mnist-mlp
    refqt train --out runs/mnist-mlp ... --resume      # continue an interrupted run

Each finished epoch prints one line, appends to ``OUT/metrics.jsonl`` and
rewrites ``OUT/checkpoint.npz``, keeping the one before as
``checkpoint.prev.npz`` (see :mod:`refqt.experiments.train`). ``--resume``
on a folder that holds no run is an error (``--resume-if-possible`` starts
it instead). Options the mode does not use (``--bits`` with ``--mode qat``)
get a warning. Exit status: 0 done, 1 the loss diverged, 2 a usage error,
130 interrupted.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from refqt.backend import BACKEND_NAMES
from refqt.experiments.registry import DATASETS, MODELS
from refqt.experiments.train import TrainingDiverged, check_folder_path, train_run
from refqt.experiments.train_config import QUANTIZERS, SCHEDULES, ConfigError, TrainConfig
from refqt.fqt.config import MODES, RECIPES


def default_out(config: TrainConfig) -> str:
    """``runs/<model>-<dataset>-<mode>[-<quantizer><bits> | -<recipe>]-seed<seed>``."""
    mode = f"fqt-{config.quantizer}{config.bits}" if config.mode == "fqt" else config.mode
    if config.recipe is not None:
        mode = f"fqt-{config.recipe}"
    return f"runs/{config.model}-{config.dataset}-{mode}-seed{config.seed}"


def flag(field: str) -> str:
    """The option of a :class:`TrainConfig` field: ``act_bits`` -> ``--act-bits``."""
    return "--" + field.replace("_", "-")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The :class:`TrainConfig` the options describe (checked; an error names the option)."""
    fields = [f.name for f in dataclasses.fields(TrainConfig)]
    return checked(TrainConfig, **{name: getattr(args, name) for name in fields if hasattr(args, name)})


def checked(cls: type[TrainConfig], **values: Any) -> TrainConfig:
    """``cls(**values)``, with a bad value reported by its option: ``--bits must be ..., got 0``."""
    try:
        return cls(**values)
    except ConfigError as err:
        raise ValueError(f"{flag(err.field)} must be {err.expected}, got {err.value}") from None


def ignored_options(config: TrainConfig) -> list[str]:
    """``["--bits 2", ...]``: options set away from their default that ``config.mode`` does not use."""
    default = TrainConfig()
    return [
        f"{flag(f)} {getattr(config, f)}"
        for f in config.ignored()
        if getattr(config, f) != getattr(default, f)
    ]


def warn(message: str) -> None:
    """One ``refqt: warning: ...`` line on stderr (shown with ``--quiet`` too)."""
    print(f"refqt: warning: {message}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    out = args.out if args.out is not None else default_out(config)
    check_folder_path(Path(out))
    ignored = ignored_options(config)
    if ignored:
        why = f"--recipe {config.recipe}" if config.recipe is not None else f"--mode {config.mode}"
        warn(f"{why} ignores {', '.join(ignored)}")
    resume = "if-possible" if args.resume_if_possible else args.resume
    if not args.quiet:
        mode = config.mode
        if config.recipe is not None:
            mode += f" ({config.recipe.upper()} recipe)"
        elif config.mode == "fqt":
            mode += f" ({config.quantizer.upper()} {config.bits}-bit gradients)"
        print(
            f"{config.model} on {config.dataset}, {mode}, {config.epochs} epochs, "
            f"batch {config.batch_size}, lr {config.lr}, seed {config.seed} -> {out}"
        )
    try:
        train_run(
            config, out, resume=resume, log=None if args.quiet else print, warn=warn, progress=not args.quiet
        )
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
    add = parser.add_argument
    add(
        "--model", choices=sorted(MODELS), default=d.model, help="model (mlp6: 6 layers of 256, as reproduce)"
    )
    add("--dataset", choices=sorted(DATASETS), default=d.dataset, help="data set (digits is bundled)")
    add("--data-dir", default=None, help="folder of the MNIST / CIFAR-10 files")
    add("--mode", choices=MODES, default=d.mode, help="exact, QAT (forward quantized) or FQT (and gradients)")
    add("--quantizer", choices=QUANTIZERS, default=d.quantizer, help="FQT gradient quantizer")
    add("--bits", type=int, default=d.bits, help="FQT gradient bits (1-16)")
    add(
        "--recipe",
        choices=tuple(RECIPES),
        default=d.recipe,
        help="FQT with a low-precision recipe (sets every quantizer; --quantizer and the bits are ignored)",
    )
    add("--act-bits", type=int, default=d.act_bits, help="forward activation bits (QAT, FQT)")
    add("--weight-bits", type=int, default=d.weight_bits, help="forward weight bits (QAT, FQT)")
    add("--epochs", type=int, default=d.epochs, help="epochs in all (raise it with --resume to go on)")
    add("--batch-size", type=int, default=d.batch_size, help="examples per SGD step")
    add("--lr", type=float, default=d.lr, help="SGD learning rate (the schedule's start)")
    add("--momentum", type=float, default=d.momentum, help="SGD momentum")
    add("--weight-decay", type=float, default=d.weight_decay, help="SGD weight decay")
    add(
        "--schedule",
        choices=SCHEDULES,
        default=d.schedule,
        help="learning rate: cosine decay to 0, or constant",
    )
    add("--seed", type=int, default=d.seed, help="initial weights, batch order and gradient noise")
    add(
        "--backend",
        choices=(*BACKEND_NAMES, "auto"),
        default=d.backend,
        help="array library (auto: CuPy on a GPU)",
    )
    add("--out", default=None, help="run folder (default runs/<model>-<dataset>-<mode>-seed<seed>)")
    resume = parser.add_mutually_exclusive_group()
    resume.add_argument(
        "--resume", action="store_true", help="continue the run in --out (an error if it holds none)"
    )
    resume.add_argument(
        "--resume-if-possible",
        action="store_true",
        help="continue the run in --out, or start it if there is none",
    )
    add("--quiet", action="store_true", help="no progress bar and no per-epoch lines")
    parser.set_defaults(run=run)

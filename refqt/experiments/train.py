"""``train_run(config, out_dir)``: one training run that keeps its results on disk and resumes bit for bit.

What a run folder holds::

    config.json        the TrainConfig, written before the first step
    metrics.jsonl      one JSON line per finished epoch (see EPOCH_FIELDS)
    checkpoint.npz     model, optimizer, and in ``extra`` the epoch, the step,
                       every generator state and the metrics so far; rewritten
                       (atomically) as soon as each epoch ends
    checkpoint.prev.npz  the checkpoint of the epoch before, kept in case the
                       latest is damaged (a full disk, a copy cut short)
    diverged.json      only when the loss became NaN / Inf: where and why

Every file is checked when a run resumes: a damaged or foreign file gets one
line naming it, what is wrong and what to do. A damaged ``checkpoint.npz``
is set aside as ``checkpoint.damaged.npz`` and the run resumes from
``checkpoint.prev.npz`` (saying so), the metrics log cut back to match; a run
that cannot resume changes no file.

Randomness comes from three independent streams of one seed: the initial
weights, the batch order, and the gradient-quantizer noise (one stream per
layer from ``QuantConfig(seed=seed)``, see :func:`refqt.fqt.quantize`). A
resumed run restores the optimizer, the batch-order generator, the quantizer
generators (and any dropout generators), so it continues exactly as if it had
never stopped.

The command line (``refqt train``) is a thin layer over :func:`train_run`;
``refqt reproduce`` calls it directly, one run per process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from refqt import checkpoint, ops
from refqt.autodiff import no_grad
from refqt.backend import Backend, get_backend, namespace
from refqt.data import iterate_batches, iterate_translation_batches
from refqt.data.translation import PAD
from refqt.experiments.progress import ProgressBar
from refqt.experiments.registry import Dataset, build_model, load_dataset
from refqt.experiments.train_config import TrainConfig
from refqt.fqt import load_quantizer_state, quantize, quantizer_state
from refqt.nn import Dropout, Module
from refqt.optim import SGD, ConstantSchedule, CosineSchedule, Schedule
from refqt.optim.optimizer import Optimizer
from refqt.quant import NonFiniteInputError
from refqt.stats.noise_monitor import NoiseMonitor
from refqt.tensor import Tensor

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_FILE = "checkpoint.npz"
PREV_CHECKPOINT_FILE = "checkpoint.prev.npz"
DAMAGED_CHECKPOINT_FILE = "checkpoint.damaged.npz"
NEW_CHECKPOINT_FILE = ".checkpoint.new.npz"  # complete, not yet renamed into place
DIVERGED_FILE = "diverged.json"
NOISE_FILE = "noise.jsonl"  # ‖G‖/σ_q per layer every 100 steps (refqt.stats.noise_monitor), FQT runs
RUN_FILES = (CONFIG_FILE, CHECKPOINT_FILE, PREV_CHECKPOINT_FILE, METRICS_FILE)

# Second entropy word of the run's own streams. SeedSequence([seed, k]) with
# k > 0 never equals the per-layer quantizer streams SeedSequence(seed, spawn_key=(i,)).
INIT_STREAM = 1
SHUFFLE_STREAM = 2

EPOCH_FIELDS = (
    "epoch",  # 1-based
    "step",  # optimizer steps so far
    "train_loss",  # mean over the epoch's examples (tokens for translation), as trained
    "train_accuracy",  # of the class (translation: of the next token, teacher-forced)
    "test_loss",
    "test_accuracy",
    "lr",  # learning rate of the epoch's last step
    "seconds",  # wall time of the epoch, evaluation included
    "mode",
    "quantizer",  # the FQT gradient quantizer, or the recipe's name (``--recipe``)
    "bits",  # its bits (None under a recipe, which sets its own formats)
    "model",
    "dataset",
    "seed",
)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or Inf; the run stopped.

    Attributes
    ----------
    epoch, batch, step : int
        Where it happened (epoch and batch 1-based; step = optimizer steps before it).
    history : list of dict
        Metrics of the epochs finished before (also in ``metrics.jsonl``).
    """

    def __init__(self, message: str, epoch: int, batch: int, step: int, history: list[dict[str, Any]]):
        super().__init__(message)
        self.epoch = epoch
        self.batch = batch
        self.step = step
        self.history = history


def train_run(
    config: TrainConfig | dict[str, Any],
    out_dir: str | os.PathLike,
    *,
    resume: bool | str = False,
    stop_after: int | None = None,
    log: Callable[[str], None] | None = None,
    warn: Callable[[str], None] | None = None,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Train as ``config`` says, writing everything to ``out_dir``; return the metrics of every epoch.

    Parameters
    ----------
    config : TrainConfig or dict
        A dict is read with :meth:`TrainConfig.from_dict`.
    out_dir : path
        The run's folder (created). It must not hold a run already, unless ``resume``.
    resume : bool or "if-possible"
        Continue the run in ``out_dir`` from its checkpoint (from epoch 1 if
        it was started but finished no epoch). The config must match
        ``config.json`` except for ``epochs``, ``data_dir`` and ``backend``.
        ``True`` refuses a folder that holds no run (a mistyped folder is an
        error, not a silent fresh start); ``"if-possible"`` starts a fresh
        run there instead.
    stop_after : int, optional
        Stop after this epoch as if interrupted (the schedule still spans
        ``config.epochs``); for tests and for splitting a run into pieces.
    log : callable, optional
        Receives one line per epoch (e.g. ``print``); silent by default.
    warn : callable, optional
        Receives what resuming had to repair (a damaged checkpoint set
        aside, the metrics log cut back); ``log`` by default.
    progress : bool
        Draw a progress bar with the running loss and accuracy on stderr
        (only when stderr is a terminal).

    Returns
    -------
    list of dict
        One dict per finished epoch, keys :data:`EPOCH_FIELDS`; the epochs of
        earlier pieces of a resumed run included.

    Raises
    ------
    ValueError, TypeError, FileNotFoundError, KeyError
        Bad config, missing data, a folder that holds another run, nothing
        to resume, or no usable checkpoint (one line, naming the file).
    TrainingDiverged
        The loss became NaN or Inf. The last good checkpoint and the metrics
        so far stay in ``out_dir``, with ``diverged.json`` saying where.
    """
    if isinstance(config, dict):
        config = TrainConfig.from_dict(config)
    if not isinstance(config, TrainConfig):
        raise TypeError(f"train_run: config must be a TrainConfig or a dict, got {type(config).__name__}")
    if resume not in (False, True, "if-possible"):
        raise ValueError(f"train_run: resume must be False, True or 'if-possible', got {resume!r}")
    say = log if log is not None else _silent
    note = warn if warn is not None else say
    out = Path(out_dir)
    check_folder_path(out)
    resume = _check_folder(out, config, resume)

    backend = get_backend(config.backend)
    dataset = _limited(load_dataset(config.dataset, config.data_dir), config.limit)
    init_rng = np.random.default_rng(np.random.SeedSequence([config.seed, INIT_STREAM]))
    model = quantize(build_model(config.model, dataset, init_rng), config.quant_config()).to(backend)
    optimizer = SGD(model.parameters(), config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    steps_per_epoch = -(-len(dataset.y_train) // config.batch_size)
    schedule: Schedule = (
        CosineSchedule(config.lr, config.epochs * steps_per_epoch)
        if config.schedule == "cosine"
        else ConstantSchedule(config.lr)
    )
    shuffle = np.random.default_rng(np.random.SeedSequence([config.seed, SHUFFLE_STREAM]))

    history: list[dict[str, Any]] = []
    step = 0
    if resume:
        history, step = _restore(out, config, model, optimizer, shuffle, note)
        if history:
            say(f"resuming {out} after epoch {len(history)} (step {step})")
        else:
            say(f"resuming {out}: no epoch had finished; starting at epoch 1")
    out.mkdir(parents=True, exist_ok=True)
    (out / DIVERGED_FILE).unlink(missing_ok=True)
    write_atomic(out / CONFIG_FILE, json.dumps(config.to_dict(), indent=2) + "\n")
    write_atomic(out / METRICS_FILE, "".join(json.dumps(row) + "\n" for row in history))

    noise = NoiseMonitor(model, out / NOISE_FILE)
    noise.keep_before(step)  # a resumed run logs its repeated steps again
    last = config.epochs if stop_after is None else min(stop_after, config.epochs)
    for epoch in range(len(history) + 1, last + 1):
        start = time.perf_counter()
        label = f"epoch {epoch}/{config.epochs}"
        # Overflow on the way to a NaN loss is expected; the loss check below reports it.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            try:
                train = _train_epoch(
                    model, optimizer, dataset, config, shuffle, schedule, step, backend, label, progress,
                    noise,
                )
            except _Diverged as err:
                _stop(out, history, epoch, err.batch, err.step, err.what)
            try:
                test = _evaluate(model, dataset, backend)
            except NonFiniteInputError:  # a forward quantizer met an Inf activation: the weights blew up
                test = {"loss": math.nan, "accuracy": math.nan}
        step = train["step"]
        if not math.isfinite(test["loss"]):
            _stop(out, history, epoch, steps_per_epoch, step, f"test loss is {test['loss']}")
        row = {
            "epoch": epoch,
            "step": step,
            "train_loss": train["loss"],
            "train_accuracy": train["accuracy"],
            "test_loss": test["loss"],
            "test_accuracy": test["accuracy"],
            "lr": train["lr"],
            "seconds": time.perf_counter() - start,
            "mode": config.mode,
            "quantizer": config.quantizer if config.recipe is None else config.recipe,
            "bits": config.bits if config.recipe is None else None,
            "model": config.model,
            "dataset": config.dataset,
            "seed": config.seed,
        }
        history.append(row)
        extra = {
            "epoch": epoch,
            "step": step,
            "config": config.to_dict(),
            "shuffle_rng": shuffle.bit_generator.state,
            "quantizer_state": quantizer_state(model),
            "dropout_rngs": _dropout_rng_states(model),
            "history": history,
        }
        _save_checkpoint(out, model, optimizer, extra)
        with open(out / METRICS_FILE, "a") as f:
            f.write(json.dumps(row) + "\n")
        say(
            f"{label}  train loss {row['train_loss']:.4f} acc {100 * row['train_accuracy']:5.1f}%  "
            f"test loss {row['test_loss']:.4f} acc {100 * row['test_accuracy']:5.1f}%  "
            f"lr {row['lr']:.3g}  {row['seconds']:.1f} s"
        )
    return history


class _Diverged(Exception):
    def __init__(self, what: str, batch: int, step: int):
        self.what, self.batch, self.step = what, batch, step


def _limited(dataset: Dataset, limit: int | None) -> Dataset:
    """The first ``limit`` training and ``limit // 2`` test examples (as :class:`RunSpec` runs take them)."""
    if limit is None:
        return dataset
    test = max(limit // 2, 1)
    return dataclasses.replace(
        dataset,
        x_train=dataset.x_train[:limit],
        y_train=dataset.y_train[:limit],
        x_test=dataset.x_test[:test],
        y_test=dataset.y_test[:test],
    )


def _train_epoch(
    model: Module,
    optimizer: Optimizer,
    dataset: Dataset,
    config: TrainConfig,
    shuffle: np.random.Generator,
    schedule: Schedule,
    step: int,
    backend: Backend,
    label: str,
    progress: bool,
    noise: NoiseMonitor | None = None,
) -> dict[str, Any]:
    """One shuffled pass with SGD; stops at the first non-finite loss or gradient (raises ``_Diverged``)."""
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    batches = -(-len(dataset.y_train) // config.batch_size)
    with ProgressBar(batches, label, enabled=None if progress else False) as bar:
        for batch, (inputs, target) in enumerate(
            _batches(dataset, "train", config.batch_size, shuffle, backend), 1
        ):
            optimizer.lr = schedule.lr_at(step)
            try:
                logits = model(*inputs)
            except NonFiniteInputError:  # QAT / FQT: a forward quantizer met an Inf activation or weight
                raise _Diverged("a layer's input or weight is NaN or Inf", batch, step) from None
            loss = _loss(logits, target, dataset)
            value = loss.item()
            if not math.isfinite(value):
                raise _Diverged(f"training loss is {value}", batch, step)
            optimizer.zero_grad()
            try:
                with noise.watch(step) if noise is not None else contextlib.nullcontext():
                    loss.backward()
            except NonFiniteInputError:  # a gradient overflowed before the loss did
                raise _Diverged("a layer's output gradient is NaN or Inf", batch, step) from None
            optimizer.step()
            step += 1
            hits, n = _hits(logits, target, dataset)
            total_loss += value * n
            correct += hits
            seen += n
            bar.update(1, f"loss {total_loss / seen:.4f}  acc {100 * correct / seen:5.1f}%")
    return {"loss": total_loss / seen, "accuracy": correct / seen, "step": step, "lr": optimizer.lr}


def _evaluate(model: Module, dataset: Dataset, backend: Backend, batch_size: int = 500) -> dict[str, float]:
    """Mean loss and accuracy on the test split, in eval mode, without gradients."""
    model.eval()
    total_loss, correct, seen = 0.0, 0, 0
    with no_grad():
        for inputs, target in _batches(dataset, "test", batch_size, None, backend):
            logits = model(*inputs)
            hits, n = _hits(logits, target, dataset)
            total_loss += _loss(logits, target, dataset).item() * n
            correct += hits
            seen += n
    model.train()
    return {"loss": total_loss / seen, "accuracy": correct / seen}


def _batches(
    dataset: Dataset, split: str, batch_size: int, rng: np.random.Generator | None, backend: Backend
) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """``(model inputs, target)`` on ``backend``; shuffled by ``rng``, in order when it is None.

    Classification: ``((Tensor x,), labels)``. Translation: ``((src, tgt_in), tgt_out)``,
    teacher forcing (the decoder reads the target shifted right by one).
    """
    x, y = (dataset.x_train, dataset.y_train) if split == "train" else (dataset.x_test, dataset.y_test)
    if dataset.task == "translation":
        for src, tgt_in, tgt_out in iterate_translation_batches(
            x, y, batch_size, rng, shuffle=rng is not None
        ):
            yield (backend.asarray(src), backend.asarray(tgt_in)), backend.asarray(tgt_out)
    else:
        for xb, yb in iterate_batches(x, y, batch_size, rng, shuffle=rng is not None, backend=backend):
            yield (Tensor(xb),), yb


def _loss(logits: Tensor, target: Any, dataset: Dataset) -> Tensor:
    """Mean cross-entropy; over the non-padding tokens for translation."""
    if dataset.task == "translation":
        return ops.cross_entropy(logits, target, ignore_index=PAD)
    return ops.cross_entropy(logits, target)


def _hits(logits: Tensor, target: Any, dataset: Dataset) -> tuple[int, int]:
    """(correct predictions, predictions counted): rows, or non-padding tokens; on the device."""
    xp = namespace(logits.data)
    hits = xp.argmax(logits.data, axis=-1) == target
    if dataset.task == "translation":
        keep = target != PAD
        return int(xp.sum(xp.astype(hits & keep, xp.int64))), int(xp.sum(xp.astype(keep, xp.int64)))
    return int(xp.sum(xp.astype(hits, xp.int64))), int(target.shape[0])


def check_folder_path(out: Path, flag: str = "--out", folder: bool = True) -> None:
    """Raise ``ValueError`` when ``out`` (a folder; with ``folder=False`` a file) cannot be made there.

    Catches a file where a folder must be (``--out README.md/results``) before
    any work, with one line naming the option.
    """
    for above in (out, *out.parents) if folder else out.parents:
        if above.exists():
            if not above.is_dir():
                what = "is a file" if above == out else f"is inside {above}, which is a file"
                raise ValueError(f"{flag} {out} {what}, not a folder; choose another {flag}")
            return


def _check_folder(out: Path, config: TrainConfig, resume: bool | str) -> bool:
    """Refuse to overwrite a run, to resume nothing, or to resume one made with another config.

    Returns whether to resume (``"if-possible"`` becomes False on an empty folder).
    """
    held = [name for name in RUN_FILES if (out / name).exists()]
    if not resume:
        if held:
            raise ValueError(
                f"{out} already holds a run ({', '.join(held)}); resume it (--resume) or choose another --out"
            )
        return False
    if not held:
        if resume == "if-possible":
            return False
        where = "does not exist" if not out.exists() else "holds no run (no config.json, no checkpoint)"
        raise ValueError(
            f"cannot resume: {out} {where}; check --out, or drop --resume to start a new run there "
            "(--resume-if-possible resumes or starts)"
        )
    config_path = out / CONFIG_FILE
    if not config_path.exists():
        return True  # the checkpoint holds the config too; _restore compares it
    try:
        values = json.loads(config_path.read_text())
        if not isinstance(values, dict):
            raise ValueError(f"it holds a JSON {type(values).__name__}, not an object")
        saved = TrainConfig.from_dict(values)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError, ValueError) as err:
        problem = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(
            f"cannot resume: {config_path} is damaged or not a run config ({problem}); "
            "restore it, or delete it and resume again (the checkpoint holds the config too)"
        ) from None
    differences = config.differences(saved)
    if differences:
        raise ValueError(
            f"cannot resume {out}: it was started with another config "
            f"({'; '.join(differences)}); pass the same options or choose another --out"
        )
    return True


EXTRA_KEYS = ("epoch", "step", "config", "shuffle_rng", "quantizer_state", "dropout_rngs", "history")


def _restore(
    out: Path,
    config: TrainConfig,
    model: Module,
    optimizer: Optimizer,
    shuffle: np.random.Generator,
    note: Callable[[str], None],
) -> tuple[list[dict[str, Any]], int]:
    """Load the newest usable checkpoint into ``model``, ``optimizer`` and the generators.

    Tries ``checkpoint.npz``, then ``checkpoint.prev.npz``. Returns (history,
    step); ``([], 0)`` when the run finished no epoch yet. Changes no file
    unless a checkpoint was usable: then a damaged latest one is renamed
    ``checkpoint.damaged.npz`` (so the next save does not rotate it into
    ``checkpoint.prev.npz``) and stale temporary files are removed.
    """
    problems: list[str] = []
    damaged = False
    for name in (CHECKPOINT_FILE, PREV_CHECKPOINT_FILE):
        path = out / name
        if not path.exists():
            if name == CHECKPOINT_FILE and (out / PREV_CHECKPOINT_FILE).exists():
                problems.append(f"{path} is missing (the run stopped while replacing it)")
            continue
        try:
            history, step = _load_checkpoint(path, config, model, optimizer, shuffle)
        except checkpoint.CheckpointError as err:
            problems.append(str(err))
            damaged = damaged or err.damaged
            continue
        if name != CHECKPOINT_FILE:
            if (out / CHECKPOINT_FILE).exists():
                os.replace(out / CHECKPOINT_FILE, out / DAMAGED_CHECKPOINT_FILE)
                problems[-1] += f"; set aside as {DAMAGED_CHECKPOINT_FILE}"
            note(f"{problems[-1]}; resuming from {path} (epoch {len(history)}) instead")
        _check_metrics(out, history, note)
        for stale in out.glob(".tmp-*"):
            stale.unlink()
        (out / NEW_CHECKPOINT_FILE).unlink(missing_ok=True)
        return history, step
    finished = _count_metrics_lines(out / METRICS_FILE)
    if not problems and not finished:
        return [], 0  # started, no epoch finished: begin at epoch 1
    if not problems:
        problems.append(f"{out / METRICS_FILE} lists {finished} finished epoch(s) but there is no checkpoint")
        damaged = True
    todo = (
        f"restore a checkpoint into {out}, or start again with another --out"
        if damaged
        else "pass the options the run was started with, or choose another --out"
    )
    raise ValueError(f"cannot resume: {'; '.join(problems)}; no file was changed; {todo}")


def _load_checkpoint(
    path: Path, config: TrainConfig, model: Module, optimizer: Optimizer, shuffle: np.random.Generator
) -> tuple[list[dict[str, Any]], int]:
    """One checkpoint into the model, optimizer and generators; ``CheckpointError`` when it does not fit."""
    arrays, meta = checkpoint.read(path)
    extra = meta["extra"]
    missing = [k for k in EXTRA_KEYS if not isinstance(extra, dict) or k not in extra]
    if missing:
        raise checkpoint.CheckpointError(path, f"is not a checkpoint of refqt train (no {missing[0]!r})")
    try:
        saved = TrainConfig.from_dict(extra["config"])
    except (TypeError, ValueError) as err:
        raise checkpoint.CheckpointError(path, f"holds an invalid config ({err})") from None
    differences = config.differences(saved)
    if differences:
        raise checkpoint.CheckpointError(
            path, f"was written by another config ({'; '.join(differences)})", damaged=False
        )
    checkpoint.load_contents(path, arrays, meta, model, optimizer)
    history = extra["history"]
    if not isinstance(history, list) or len(history) != extra["epoch"]:
        raise checkpoint.CheckpointError(path, "is damaged: its metrics do not match its epoch")
    try:
        shuffle.bit_generator.state = extra["shuffle_rng"]
        load_quantizer_state(model, extra["quantizer_state"])
        for name, m in model.named_modules():
            if isinstance(m, Dropout) and m.rng is not None:
                m.rng.bit_generator.state = extra["dropout_rngs"][name]
    except (KeyError, ValueError, TypeError) as err:
        problem = err.args[0] if isinstance(err, KeyError) and err.args else err
        raise checkpoint.CheckpointError(
            path, f"does not fit model {config.model!r} on {config.dataset!r}: {problem}", damaged=False
        ) from None
    return list(history), int(extra["step"])


def _count_metrics_lines(path: Path) -> int:
    try:
        return sum(1 for line in path.read_text(errors="replace").splitlines() if line.strip())
    except OSError:
        return 0


def _check_metrics(out: Path, history: list[dict[str, Any]], note: Callable[[str], None]) -> None:
    """Say what rewriting ``metrics.jsonl`` from the checkpoint's ``history`` will change."""
    path = out / METRICS_FILE
    try:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        rows = [json.loads(line) for line in lines]
    except FileNotFoundError:
        return
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        note(f"{path} is damaged ({err}); rewritten from the checkpoint ({len(history)} epochs)")
        return
    if len(rows) > len(history):
        note(f"{path} cut back from {len(rows)} to {len(history)} epochs to match the checkpoint")
    elif [_without_seconds(r) for r in rows] != [_without_seconds(r) for r in history[: len(rows)]]:
        note(f"{path} did not match the checkpoint; rewritten from it ({len(history)} epochs)")


def _without_seconds(row: Any) -> Any:
    return {k: v for k, v in row.items() if k != "seconds"} if isinstance(row, dict) else row


def _save_checkpoint(out: Path, model: Module, optimizer: Optimizer, extra: dict[str, Any]) -> None:
    """Write this epoch's ``checkpoint.npz``; the one it replaces becomes ``checkpoint.prev.npz``.

    The new file is complete on disk (temporary file, then rename) before the
    old one moves, so a crash at any moment leaves at least one whole checkpoint.
    """
    checkpoint.save(out / NEW_CHECKPOINT_FILE, model, optimizer, extra=extra)
    if (out / CHECKPOINT_FILE).exists():
        os.replace(out / CHECKPOINT_FILE, out / PREV_CHECKPOINT_FILE)
    os.replace(out / NEW_CHECKPOINT_FILE, out / CHECKPOINT_FILE)


def _dropout_rng_states(model: Module) -> dict[str, Any]:
    return {
        name: m.rng.bit_generator.state
        for name, m in model.named_modules()
        if isinstance(m, Dropout) and m.rng is not None
    }


def _stop(out: Path, history: list[dict[str, Any]], epoch: int, batch: int, step: int, what: str) -> NoReturn:
    """Record the divergence next to the kept results and raise :class:`TrainingDiverged`."""
    kept = f"the checkpoint of epoch {len(history)}" if history else "no checkpoint (no epoch finished)"
    message = (
        f"training diverged: {what} at epoch {epoch}, batch {batch} (after {step} steps); "
        f"kept {kept} and {len(history)} metrics line(s) in {out}; try a smaller --lr or more --bits"
    )
    record = {"epoch": epoch, "batch": batch, "step": step, "reason": what, "message": message}
    write_atomic(out / DIVERGED_FILE, json.dumps(record, indent=2) + "\n")
    raise TrainingDiverged(message, epoch, batch, step, list(history))


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` and rename it over ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; these are plain result files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _silent(line: str) -> None:
    pass

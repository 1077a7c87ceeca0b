"""Checkpoints: a model, its optimizer and your own metadata in one ``.npz`` file.

::

    checkpoint.save("run/ckpt.npz", model, opt, extra={"epoch": 3, "rng": rng.bit_generator.state})
    ...
    extra = checkpoint.load("run/ckpt.npz", model, opt)
    rng.bit_generator.state = extra["rng"]

Resuming from a checkpoint continues bit for bit like the uninterrupted run
(on the same backend) provided every source of randomness is restored too:
save the ``bit_generator.state`` of each ``numpy.random.Generator`` in
``extra``.

Layout of the file (plain arrays, loadable without pickle)::

    model/<dotted name>          each entry of model.state_dict()
    optimizer/<i>/<slot>         optimizer state of parameter i (e.g. "m", "v")
    meta                         a JSON string: format version, optimizer
                                 hyperparameters and step count, ``extra``

The file is written to a temporary file in the same directory and renamed
over ``path``, so a crash mid-write never leaves a half-written checkpoint.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import numpy as np

from refqt.nn.module import Module
from refqt.optim.optimizer import Optimizer

FORMAT_VERSION = 1


def save(
    path: str | os.PathLike, model: Module, optimizer: Optimizer | None = None, extra: Any = None
) -> None:
    """Write ``model`` (parameters and buffers), ``optimizer`` state and ``extra`` to ``path``.

    Parameters
    ----------
    path : str or PathLike
        Destination, conventionally ending in ``.npz`` (used as given).
    model : Module
    optimizer : Optimizer, optional
    extra : JSON-serialisable, optional
        Anything else to keep: epoch, step, generator states, config.

    Raises
    ------
    TypeError
        If ``extra`` cannot be written as JSON (checked before writing).
    """
    arrays: dict[str, np.ndarray] = {f"model/{k}": v for k, v in model.state_dict().items()}
    meta: dict[str, Any] = {"format": FORMAT_VERSION, "optimizer": None, "extra": extra}
    if optimizer is not None:
        opt_state = optimizer.state_dict()
        meta["optimizer"] = {
            "type": type(optimizer).__name__,
            "hyperparameters": opt_state["hyperparameters"],
        }
        for i, slots in enumerate(opt_state["state"]):
            for slot, a in slots.items():
                arrays[f"optimizer/{i}/{slot}"] = a
    try:
        arrays["meta"] = np.array(json.dumps(meta))
    except TypeError as err:
        raise TypeError(f"checkpoint.save: extra is not JSON-serialisable: {err}") from err

    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it 0600; give it a normal file's mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def load(path: str | os.PathLike, model: Module, optimizer: Optimizer | None = None) -> Any:
    """Restore ``model`` (and ``optimizer``) from ``path``; return the saved ``extra``.

    Raises
    ------
    KeyError, ValueError
        When the model's names or shapes do not match (from
        :meth:`Module.load_state_dict`), or an optimizer is asked for but the
        file has none / one of another type.
    """
    with np.load(path, allow_pickle=False) as f:
        meta = json.loads(str(f["meta"]))
        model_state = {k.removeprefix("model/"): f[k] for k in f.files if k.startswith("model/")}
        opt_arrays = {k.removeprefix("optimizer/"): f[k] for k in f.files if k.startswith("optimizer/")}
    if meta.get("format") != FORMAT_VERSION:
        raise ValueError(
            f"checkpoint.load: {path} has format {meta.get('format')}, expected {FORMAT_VERSION}"
        )
    model.load_state_dict(model_state)
    if optimizer is not None:
        saved = meta["optimizer"]
        if saved is None:
            raise KeyError(f"checkpoint.load: {path} holds no optimizer state")
        if saved["type"] != type(optimizer).__name__:
            raise ValueError(
                f"checkpoint.load: {path} holds {saved['type']} state, cannot load it into "
                f"{type(optimizer).__name__}"
            )
        slots: list[dict[str, np.ndarray]] = [{} for _ in optimizer.params]
        for key, a in opt_arrays.items():
            index, slot = key.split("/", 1)
            if int(index) >= len(slots):
                raise ValueError(
                    f"checkpoint.load: {path} has optimizer state for parameter {index}, "
                    f"but the optimizer has {len(slots)} parameters"
                )
            slots[int(index)][slot] = a
        optimizer.load_state_dict({"hyperparameters": saved["hyperparameters"], "state": slots})
    return meta["extra"]

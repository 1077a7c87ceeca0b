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
Loading never unpickles, and a file that is truncated, foreign or written for
another model is a :class:`CheckpointError` whose message is one line naming
the file and what is wrong with it.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
import zlib
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


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: unreadable, not a refqt checkpoint, or one for another model.

    ``str(err)`` is one line: the file and what is wrong with it. ``damaged`` is
    True when the file itself is broken or foreign (truncated, not an ``.npz``,
    pickled data, no ``meta``), False when it is a good checkpoint that does
    not fit the model or optimizer it is loaded into.
    """

    def __init__(self, path: str | os.PathLike, problem: str, damaged: bool = True):
        super().__init__(f"{os.fspath(path)} {problem}")
        self.path = os.fspath(path)
        self.problem = problem
        self.damaged = damaged


def read(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays and the ``meta`` dict of a checkpoint file, every entry checked; loads no model.

    Never unpickles: the file is opened with ``allow_pickle=False`` and an
    entry holding Python objects makes it a foreign file.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    CheckpointError
        Truncated, not an ``.npz`` archive, an entry that cannot be read,
        pickled content, or no valid ``meta`` entry.
    """
    try:
        handle = open(path, "rb")  # noqa: SIM115 -- closed by the with below
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint {os.fspath(path)} does not exist") from None
    except OSError as err:
        raise CheckpointError(path, f"cannot be read ({err.strerror or err})") from None
    with handle:
        arrays = _read_entries(path, handle)
    meta_array = arrays.pop("meta")
    try:
        meta = json.loads(str(meta_array)) if meta_array.dtype.kind == "U" else None
    except json.JSONDecodeError:
        meta = None
    if not isinstance(meta, dict) or "extra" not in meta:
        raise CheckpointError(path, "is not a refqt checkpoint (its 'meta' entry is not the expected JSON)")
    if meta.get("format") != FORMAT_VERSION:
        raise CheckpointError(
            path, f"has format {meta.get('format')!r}; this refqt reads format {FORMAT_VERSION}"
        )
    unknown = sorted(k for k in arrays if not k.startswith(("model/", "optimizer/")))
    if unknown:
        raise CheckpointError(path, f"is not a refqt checkpoint (unexpected entries {unknown[:3]})")
    return arrays, meta


def _read_entries(path: str | os.PathLike, handle: Any) -> dict[str, np.ndarray]:
    """Every entry of the open ``.npz`` file ``handle``, read with ``allow_pickle=False``."""
    try:
        data = np.load(handle, allow_pickle=False)
    except ValueError:  # NumPy found a pickle stream: never ours
        raise CheckpointError(
            path, "is not a checkpoint: it holds pickled Python objects, not an .npz archive"
        ) from None
    except (zipfile.BadZipFile, EOFError) as err:
        raise CheckpointError(path, f"is truncated or not an .npz archive ({err})") from None
    except OSError as err:
        raise CheckpointError(path, f"cannot be read ({err.strerror or err})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise CheckpointError(path, "is a single .npy array, not a checkpoint archive")
    arrays: dict[str, np.ndarray] = {}
    with data as f:
        if "meta" not in f.files:
            raise CheckpointError(
                path, "is an .npz archive but not a refqt checkpoint (it has no 'meta' entry)"
            )
        for key in f.files:
            try:
                arrays[key] = f[key]
            except ValueError as err:
                if "allow_pickle" in str(err):
                    raise CheckpointError(
                        path, f"is not a refqt checkpoint: entry {key!r} holds pickled Python objects"
                    ) from None
                raise CheckpointError(path, f"is damaged: entry {key!r} cannot be read ({err})") from None
            except (zipfile.BadZipFile, EOFError, OSError, zlib.error) as err:
                raise CheckpointError(path, f"is damaged: entry {key!r} cannot be read ({err})") from None
    return arrays


def load(path: str | os.PathLike, model: Module, optimizer: Optimizer | None = None) -> Any:
    """Restore ``model`` (and ``optimizer``) from ``path``; return the saved ``extra``.

    The whole file is read and checked (:func:`read`) before anything is
    copied into ``model``: a damaged file leaves the model as it was.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    CheckpointError
        A damaged or foreign file (``damaged`` True), or a good checkpoint of
        another model / optimizer (``damaged`` False): the model's names or
        shapes differ, or an optimizer is asked for but the file has none /
        one of another type. One line, naming the file.
    """
    arrays, meta = read(path)
    return load_contents(path, arrays, meta, model, optimizer)


def load_contents(
    path: str | os.PathLike,
    arrays: dict[str, np.ndarray],
    meta: dict[str, Any],
    model: Module,
    optimizer: Optimizer | None = None,
) -> Any:
    """:func:`load` for contents already :func:`read` (``path`` only names the file in errors)."""
    model_state = {k.removeprefix("model/"): a for k, a in arrays.items() if k.startswith("model/")}
    opt_arrays = {k.removeprefix("optimizer/"): a for k, a in arrays.items() if k.startswith("optimizer/")}
    slots: list[dict[str, np.ndarray]] = []
    if optimizer is not None:
        saved = meta.get("optimizer")
        if saved is None:
            raise CheckpointError(path, "holds no optimizer state", damaged=False)
        if saved.get("type") != type(optimizer).__name__:
            raise CheckpointError(
                path,
                f"holds {saved.get('type')} state, cannot load it into {type(optimizer).__name__}",
                damaged=False,
            )
        slots = [{} for _ in optimizer.params]
        for key, a in opt_arrays.items():
            index, _, slot = key.partition("/")
            if not index.isdigit() or not slot or int(index) >= len(slots):
                raise CheckpointError(
                    path,
                    f"has optimizer state {key!r}, but the optimizer has {len(slots)} parameters",
                    damaged=False,
                )
            slots[int(index)][slot] = a
    try:
        model.load_state_dict(model_state)
        if optimizer is not None:
            optimizer.load_state_dict({"hyperparameters": saved["hyperparameters"], "state": slots})
    except (KeyError, ValueError, TypeError) as err:
        problem = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        raise CheckpointError(path, f"does not fit the model: {problem}", damaged=False) from None
    return meta["extra"]

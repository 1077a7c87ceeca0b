"""Array backends: the only module that knows NumPy from CuPy.

Everything else in refqt works on arrays through the array API standard
(``array_api_compat``): ``xp = backend_of(x).xp``. What the standard lacks --
random numbers, scatter-add, host transfers, and the NumPy-style ``out=`` fast
paths -- is offered here as small methods of :class:`Backend`, each with a
NumPy and a CuPy path.

Three backends exist:

* ``"numpy"``  -- the default, always available.
* ``"cupy"``   -- chosen only when CuPy imports *and* a GPU works.
* ``"array_api_strict"`` -- a CPU backend that rejects anything outside the
  standard. The test suite runs on it so that code which would break on CuPy
  (NumPy-only functions, implicit host conversions, in-place tricks) fails on
  a machine without a GPU.

Nothing here reads environment variables; a backend is picked explicitly by
name (``get_backend("cupy")``) or found from an array (``backend_of(x)``).

Which *algorithm* an op runs is decided here too, by :func:`device_path`:
the GPU algorithms (:mod:`refqt.gpu`: a few large kernels per op, noise
drawn on the device) run on CuPy arrays, and on NumPy arrays only inside
:func:`emulate_device` -- the switch that lets a machine without a GPU test
their maths. Everywhere else NumPy takes the readable reference / CPU paths.

Randomness is explicit: callers pass a ``numpy.random.Generator`` (or a
``cupy.random.Generator`` on the GPU); nothing draws from global state. With a
NumPy generator every backend gets bit-identical random numbers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import array_api_compat
import numpy as np

BACKEND_NAMES = ("numpy", "cupy", "array_api_strict")


class Backend:
    """One array library, seen through the array API.

    Attributes
    ----------
    name : str
        ``"numpy"``, ``"cupy"`` or ``"array_api_strict"``.
    xp : module
        The array-API namespace (``array_api_compat.numpy`` and so on).
    native : module or None
        A NumPy-compatible namespace (``numpy`` or ``cupy``) for fast paths
        that use ``out=`` and ufuncs, or ``None`` on ``array_api_strict``.
        Code that uses it must also have a plain array-API path and a test
        that the two agree.
    """

    def __init__(self, name: str, xp: ModuleType, native: ModuleType | None):
        self.name = name
        self.xp = xp
        self.native = native

    def __repr__(self) -> str:
        return f"Backend({self.name!r})"

    # -- moving data ---------------------------------------------------------
    def asarray(self, obj: Any, dtype: Any = None) -> Any:
        """Array of this backend from a nested list, scalar or host array."""
        if self.name == "cupy":
            return self.native.asarray(obj, dtype=dtype)
        if self.name == "array_api_strict" and isinstance(obj, np.ndarray):
            if dtype is None:
                dtype = getattr(self.xp, obj.dtype.name)
            obj = obj.tolist() if obj.ndim == 0 else obj
        return self.xp.asarray(obj, dtype=dtype)

    def to_numpy(self, a: Any) -> np.ndarray:
        """Copy of ``a`` as a host NumPy array."""
        if self.name == "numpy":
            return np.asarray(a)
        if self.name == "cupy":
            return a.get()
        return np.from_dlpack(a).copy()

    def dtype(self, name: str) -> Any:
        """The dtype object called ``name`` (``"float32"``, ``"int64"``...)."""
        return getattr(self.xp, name)

    # -- randomness ----------------------------------------------------------
    def uniform(self, rng: Any, shape: tuple[int, ...], dtype: Any) -> Any:
        """Uniform ``[0, 1)`` numbers of ``shape`` drawn from ``rng``.

        A ``numpy.random.Generator`` draws on the host (so every backend sees
        the same numbers); a ``cupy.random.Generator`` draws on the device.
        """
        if isinstance(rng, np.random.Generator):
            host = rng.random(shape, dtype=np.float64 if _is64(dtype) else np.float32)
            return self.asarray(host)
        return rng.random(shape, dtype=dtype)

    def normal(self, rng: Any, shape: tuple[int, ...], dtype: Any) -> Any:
        """Standard normal numbers of ``shape`` drawn from ``rng``."""
        if isinstance(rng, np.random.Generator):
            host = rng.standard_normal(shape, dtype=np.float64 if _is64(dtype) else np.float32)
            return self.asarray(host)
        return rng.standard_normal(shape, dtype=dtype)

    # -- what the standard lacks ---------------------------------------------
    def scatter_add(self, target: Any, index: Any, values: Any) -> Any:
        """``target[index[i]] += values[i]`` with repeats summed, along axis 0.

        Shapes: target (V, ...), index (M,) integer, values (M, ...).
        Returns the updated target (updated in place on NumPy / CuPy).
        """
        if self.name == "numpy":
            np.add.at(target, index, values)
            return target
        if self.name == "cupy":
            import cupyx

            cupyx.scatter_add(target, index, values)
            return target
        host = self.to_numpy(target).copy()
        np.add.at(host, self.to_numpy(index), self.to_numpy(values))
        return self.asarray(host)


def _is64(dtype: Any) -> bool:
    return "64" in str(dtype)


_CACHE: dict[str, Backend] = {}


def gpu_available() -> bool:
    """True when CuPy imports and a CUDA device can actually allocate."""
    try:
        import cupy
    except Exception:
        return False
    try:
        if not cupy.cuda.is_available():
            return False
        cupy.zeros(1).sum().item()
    except Exception:
        return False
    return True


def get_backend(name: str = "numpy") -> Backend:
    """The backend called ``name``; ``"auto"`` means CuPy when a GPU works.

    Raises
    ------
    ValueError
        For an unknown name.
    RuntimeError
        For ``"cupy"`` when no GPU is usable.
    """
    if name == "auto":
        name = "cupy" if gpu_available() else "numpy"
    if name not in BACKEND_NAMES:
        raise ValueError(f"unknown backend {name!r}; expected one of {(*BACKEND_NAMES, 'auto')}")
    if name in _CACHE:
        return _CACHE[name]
    if name == "numpy":
        backend = Backend("numpy", array_api_compat.array_namespace(np.empty(0)), np)
    elif name == "cupy":
        if not gpu_available():
            raise RuntimeError("backend 'cupy' requested but CuPy cannot use a GPU here")
        import cupy

        backend = Backend("cupy", array_api_compat.array_namespace(cupy.empty(0)), cupy)
    else:
        import array_api_strict

        backend = Backend("array_api_strict", array_api_strict, None)
    _CACHE[name] = backend
    return backend


def available_backends() -> list[str]:
    """Names of the backends usable on this machine."""
    names = ["numpy"]
    if gpu_available():
        names.append("cupy")
    try:
        import array_api_strict  # noqa: F401
    except ImportError:
        return names
    names.append("array_api_strict")
    return names


def backend_of(a: Any) -> Backend:
    """The backend that owns array ``a``."""
    if isinstance(a, np.ndarray | np.generic):
        cached = _CACHE.get("numpy")  # called for every op: skip get_backend's checks
        return cached if cached is not None else get_backend("numpy")
    if array_api_compat.is_cupy_array(a):
        return get_backend("cupy")
    if type(a).__module__.startswith("array_api_strict"):
        return get_backend("array_api_strict")
    raise TypeError(f"expected a NumPy, CuPy or array_api_strict array, got {type(a).__name__}")


def check_generator(owner: str, rng: Any) -> np.random.Generator:
    """``rng`` if it is a ``numpy.random.Generator``, else TypeError naming ``owner``.

    refqt takes its randomness explicitly; layers, quantizers and noise streams
    all check their generator here.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"{owner}: rng must be a numpy.random.Generator (np.random.default_rng(seed)), "
            f"got {type(rng).__name__}"
        )
    return rng


def is_array(obj: Any) -> bool:
    """Whether ``obj`` is an array of a known backend."""
    try:
        backend_of(obj)
    except TypeError:
        return False
    return True


def namespace(a: Any) -> ModuleType:
    """Shorthand for ``backend_of(a).xp``."""
    return backend_of(a).xp


_EMULATE = [False]


def device_path(a: Any) -> bool:
    """Whether ops on array ``a`` take the GPU algorithms of :mod:`refqt.gpu`.

    True for CuPy arrays; for NumPy arrays only inside :func:`emulate_device`;
    never for ``array_api_strict`` (it has no ``native`` module to run them on).
    This is the one place that chooses between the CPU and the GPU paths.
    """
    if isinstance(a, np.ndarray | np.generic):
        return _EMULATE[0]
    return array_api_compat.is_cupy_array(a)


@contextmanager
def emulate_device(on: bool = True) -> Iterator[None]:
    """Run the GPU algorithms on NumPy arrays inside a ``with`` block.

    The GPU paths are written with the ``native`` module (``numpy`` or ``cupy``)
    and, where CuPy fuses an elementwise chain into one kernel, a NumPy mirror
    of the same formula; inside this block NumPy arrays take them, so CI tests
    their maths without a GPU::

        with emulate_device():
            y = conv2d(x, w)      # the GPU algorithm, computed by NumPy

    Not thread-safe: it flips a module-level switch and restores it on exit.
    """
    before = _EMULATE[0]
    _EMULATE[0] = bool(on)
    try:
        yield
    finally:
        _EMULATE[0] = before

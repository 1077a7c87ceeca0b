"""``Tensor``: an array plus what reverse-mode autodiff needs.

A Tensor wraps one array of any backend (NumPy, CuPy, array_api_strict) and
remembers the :class:`~refqt.autodiff.Node` that produced it. Arithmetic
operators and the common methods call the primitive ops in :mod:`refqt.ops`,
so ``(x @ w + b).relu().sum()`` is recorded on the tape and
``loss.backward()`` fills ``w.grad`` and ``b.grad``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from refqt import autodiff
from refqt.backend import Backend, backend_of, is_array


class Tensor:
    """An array with an optional gradient.

    Parameters
    ----------
    data : array, Tensor, scalar or nested list
        Arrays are kept as they are (no copy, same backend and dtype); Python
        data becomes a NumPy array.
    requires_grad : bool
        Whether ``backward`` should compute ``.grad`` for this tensor.
    name : str, optional
        A label shown by ``repr`` and :func:`refqt.autodiff.format_tape`.
    """

    __array_priority__ = 100  # NumPy defers `ndarray <op> Tensor` to us

    def __init__(self, data: Any, requires_grad: bool = False, name: str | None = None):
        if isinstance(data, Tensor):
            data = data.data
        elif not is_array(data):
            data = np.asarray(data)
        self.data = data
        self.requires_grad = bool(requires_grad)
        self.grad: Any = None
        self.node: autodiff.Node | None = None
        self.name = name

    # -- facts ---------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def dtype(self) -> Any:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return len(self.data.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def backend(self) -> Backend:
        return backend_of(self.data)

    @property
    def op(self) -> str | None:
        """Name of the op that produced this tensor (None for a leaf)."""
        return None if self.node is None else self.node.fn.__name__

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        body = np.array2string(self.numpy(), precision=4, threshold=20, separator=", ", prefix="Tensor(")
        parts = [body, f"dtype={self.dtype}"]
        if self.backend.name != "numpy":
            parts.append(f"backend={self.backend.name}")
        if self.name:
            parts.append(f"name={self.name!r}")
        if self.node is not None:
            parts.append(f"op={self.op}")
        elif self.requires_grad:
            parts.append("requires_grad=True")
        return f"Tensor({', '.join(parts)})"

    # -- conversion ----------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """A host NumPy copy of the data (a view on the NumPy backend)."""
        return self.backend.to_numpy(self.data)

    def item(self) -> float:
        if self.size != 1:
            raise ValueError(f"item() needs a one-element tensor, got shape {self.shape}")
        return float(self.numpy().reshape(-1)[0])

    def detach(self) -> Tensor:
        """The same data, cut from the tape, not requiring grad."""
        return Tensor(self.data)

    def astype(self, dtype: Any) -> Tensor:
        """A copy of another dtype, outside the tape."""
        return Tensor(self.backend.xp.astype(self.data, dtype))

    def backward(self, g: Any = None, retain_graph: bool = False) -> None:
        """Fill ``.grad`` of the leaves this tensor depends on (see autodiff.backward)."""
        autodiff.backward(self, g, retain_graph=retain_graph)

    def zero_grad(self) -> None:
        self.grad = None

    # -- operators -----------------------------------------------------------
    def __add__(self, other: Any) -> Tensor:
        return ops.add(self, other)

    def __radd__(self, other: Any) -> Tensor:
        return ops.add(other, self)

    def __sub__(self, other: Any) -> Tensor:
        return ops.sub(self, other)

    def __rsub__(self, other: Any) -> Tensor:
        return ops.sub(other, self)

    def __mul__(self, other: Any) -> Tensor:
        return ops.mul(self, other)

    def __rmul__(self, other: Any) -> Tensor:
        return ops.mul(other, self)

    def __truediv__(self, other: Any) -> Tensor:
        return ops.div(self, other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return ops.div(other, self)

    def __neg__(self) -> Tensor:
        return ops.neg(self)

    def __pow__(self, exponent: float) -> Tensor:
        return ops.pow(self, exponent)

    def __matmul__(self, other: Any) -> Tensor:
        return ops.matmul(self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return ops.matmul(other, self)

    def __getitem__(self, index: Any) -> Tensor:
        return ops.getitem(self, index)

    # Comparisons give boolean tensors outside the tape (no __eq__: tensors
    # stay hashable and comparable by identity).
    def __lt__(self, other: Any) -> Tensor:
        return Tensor(self.data < _raw(other))

    def __le__(self, other: Any) -> Tensor:
        return Tensor(self.data <= _raw(other))

    def __gt__(self, other: Any) -> Tensor:
        return Tensor(self.data > _raw(other))

    def __ge__(self, other: Any) -> Tensor:
        return Tensor(self.data >= _raw(other))

    # -- methods -------------------------------------------------------------
    def sum(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        return ops.sum(self, axis=axis, keepdims=keepdims)

    def mean(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        return ops.mean(self, axis=axis, keepdims=keepdims)

    def max(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        return ops.max(self, axis=axis, keepdims=keepdims)

    def var(
        self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False, *, correction: float = 1
    ) -> Tensor:
        """Variance over ``axis`` dividing by ``n − correction``; **sample variance (1) by default**,
        as in PyTorch. See :func:`refqt.ops.var`."""
        return ops.var(self, axis=axis, keepdims=keepdims, correction=correction)

    def reshape(self, *shape: Any) -> Tensor:
        if len(shape) == 1 and isinstance(shape[0], tuple | list):
            shape = tuple(shape[0])
        return ops.reshape(self, shape)

    def transpose(self, dim0: int, dim1: int) -> Tensor:
        """The tensor with axes ``dim0`` and ``dim1`` swapped, **as in PyTorch** (``x.transpose(0, 1)``).

        This is not NumPy's ``transpose(*axes)``: for a full permutation use
        :meth:`permute`; to reverse all axes use :attr:`T`. See
        :func:`refqt.ops.swapaxes`.
        """
        return ops.swapaxes(self, dim0, dim1)

    def permute(self, *axes: int) -> Tensor:
        """The tensor with its axes reordered, ``out.shape[i] = self.shape[axes[i]]`` (NumPy, PyTorch)."""
        if len(axes) == 1 and isinstance(axes[0], tuple | list):
            axes = tuple(axes[0])
        return ops.permute(self, axes)

    @property
    def T(self) -> Tensor:
        """All axes reversed (a matrix's transpose), as NumPy's ``.T``."""
        return ops.permute(self, tuple(reversed(range(self.ndim))))

    def exp(self) -> Tensor:
        return ops.exp(self)

    def log(self) -> Tensor:
        return ops.log(self)

    def sqrt(self) -> Tensor:
        return ops.sqrt(self)

    def tanh(self) -> Tensor:
        return ops.tanh(self)

    def sigmoid(self) -> Tensor:
        return ops.sigmoid(self)

    def relu(self) -> Tensor:
        return ops.relu(self)

    def gelu(self, approximate: str = "none") -> Tensor:
        """GELU, exact (``"none"``, PyTorch's default) or ``"tanh"``; see :func:`refqt.ops.gelu`."""
        return ops.gelu(self, approximate=approximate)

    def softmax(self, axis: int = -1) -> Tensor:
        return ops.softmax(self, axis=axis)

    def log_softmax(self, axis: int = -1) -> Tensor:
        return ops.log_softmax(self, axis=axis)


def _raw(obj: Any) -> Any:
    return obj.data if isinstance(obj, Tensor) else obj


def as_tensor(obj: Any, like: Tensor | None = None) -> Tensor:
    """``obj`` as a Tensor; scalars and host data take ``like``'s backend and dtype."""
    if isinstance(obj, Tensor):
        return obj
    if like is not None and not is_array(obj):
        return Tensor(like.backend.xp.asarray(obj, dtype=like.dtype))
    return Tensor(obj)


from refqt import ops  # noqa: E402  (ops import Tensor; methods use ops at call time)

"""Shape ops: reshape, permute, swapaxes, indexing, concat, stack, broadcast_to.

None of these change values, only where they sit, so every VJP moves ``g``
back to where its input elements came from: reshape back, permute by the
inverse permutation, scatter an indexed slice into zeros, split a
concatenation, sum a broadcast.

**Host synchronisation** (on a GPU): :func:`getitem` with an index *array*
checks its range on the host (one sync per call), so that a bad index is a
clear ``IndexError``; slices and integers need none.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from refqt.autodiff import Context, Function
from refqt.backend import Backend, backend_of, namespace
from refqt.ops.arith import unbroadcast
from refqt.tensor import Tensor, as_tensor


def host_or_backend_array(op: str, obj: Any, backend: Backend) -> Any:
    """``obj`` (an array of ``backend``, a NumPy array, a list or a Tensor) as an array of ``backend``.

    Used for the non-differentiable array arguments of ops (indices, class
    targets, masks): NumPy data is copied onto ``backend``; an array of a
    different device backend is an error naming ``op``.
    """
    if isinstance(obj, Tensor):
        obj = obj.data
    try:
        owner = backend_of(obj)
    except TypeError:
        obj, owner = np.asarray(obj), backend_of(np.asarray(0))
    if owner is backend:
        return obj
    if owner.name == "numpy":
        return backend.asarray(obj)
    raise TypeError(f"{op}: an array of backend {owner.name!r} cannot index a tensor of {backend.name!r}")


# -- reshape, permute, swapaxes ---------------------------------------------------
class Reshape(Function):
    """out = x viewed with a new shape (same elements in C order);  g_x = g reshaped back."""

    @staticmethod
    def forward(ctx: Context, x: Any, shape: tuple[int, ...]) -> Any:
        ctx.save_for_backward(tuple(x.shape))
        return namespace(x).reshape(x, shape)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        (shape,) = ctx.saved
        return (namespace(g).reshape(g, shape),)


def _resolve_shape(x_shape: tuple[int, ...], shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(int(n) for n in shape)
    size = math.prod(x_shape)
    unknown = [i for i, n in enumerate(shape) if n == -1]
    known = math.prod(n for n in shape if n != -1)
    bad = len(unknown) > 1 or any(n < -1 for n in shape)
    if not bad and unknown:
        bad = known == 0 or size % known != 0
        if not bad:
            shape = tuple(size // known if n == -1 else n for n in shape)
    elif not bad:
        bad = known != size
    if bad:
        raise ValueError(f"reshape: cannot reshape an array of shape {x_shape} (size {size}) into {shape}")
    return shape


def reshape(x: Tensor, shape: Sequence[int]) -> Tensor:
    """``x`` with shape ``shape`` (one entry may be -1: inferred from the size)."""
    x = as_tensor(x)
    return Reshape.apply(x, shape=_resolve_shape(x.shape, shape))


class Permute(Function):
    """out = x with axes reordered, out.shape[i] = x.shape[axes[i]];  g_x = g permuted by axes⁻¹."""

    @staticmethod
    def forward(ctx: Context, x: Any, axes: tuple[int, ...]) -> Any:
        ctx.save_for_backward(axes)
        return namespace(x).permute_dims(x, axes)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        (axes,) = ctx.saved
        inverse = tuple(int(i) for i in np.argsort(axes))
        return (namespace(g).permute_dims(g, inverse),)


def permute(x: Tensor, axes: Sequence[int]) -> Tensor:
    """Reorder the axes of ``x``: a permutation of ``range(x.ndim)`` (negative axes allowed)."""
    x = as_tensor(x)
    norm = tuple(int(a) % x.ndim if -x.ndim <= a < x.ndim else -1 for a in axes) if x.ndim else ()
    if sorted(norm) != list(range(x.ndim)) or len(axes) != x.ndim:
        raise ValueError(
            f"permute: {tuple(axes)} is not a permutation of the {x.ndim} axes of shape {x.shape}"
        )
    return Permute.apply(x, axes=norm)


def swapaxes(x: Tensor, a: int, b: int) -> Tensor:
    """``x`` with axes ``a`` and ``b`` exchanged (a :class:`Permute`)."""
    x = as_tensor(x)
    for axis in (a, b):
        if not -x.ndim <= axis < x.ndim:
            raise ValueError(f"swapaxes: axis {axis} is out of range for shape {x.shape}")
    axes = list(range(x.ndim))
    axes[a], axes[b] = axes[b], axes[a]
    return Permute.apply(x, axes=tuple(axes))


# -- indexing ------------------------------------------------------------------------
class GetItem(Function):
    """out = x[index] for a basic index (ints, slices, None, Ellipsis).

    g_x = zeros like x with ``g_x[index] = g`` (a basic index never selects an
    element twice, so setting equals adding).
    """

    @staticmethod
    def forward(ctx: Context, x: Any, index: tuple[Any, ...]) -> Any:
        ctx.save_for_backward(tuple(x.shape), index)
        return x[index]

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        shape, index = ctx.saved
        xp = namespace(g)
        gx = xp.zeros(shape, dtype=g.dtype)
        # The standard allows no None when assigning: drop the new (size-1) axes from g instead.
        key = tuple(e for e in index if e is not None)
        gx[key] = xp.reshape(g, tuple(gx[key].shape))
        return (gx,)


class Take(Function):
    """out = x[..., ids, ...]: the entries ``ids`` (any shape) along ``axis``.

    out.shape = x.shape[:axis] + ids.shape + x.shape[axis+1:].
    g_x = zeros like x, with ``g_x[..., ids[j], ...] += g[..., j, ...]`` for
    every j (``Backend.scatter_add``: repeated ids add up).
    """

    @staticmethod
    def forward(ctx: Context, x: Any, ids: Any, axis: int) -> Any:
        xp = namespace(x)
        ctx.save_for_backward(tuple(x.shape), ids, axis)
        flat = xp.take(x, xp.reshape(ids, (-1,)), axis=axis)
        return xp.reshape(flat, tuple(x.shape[:axis]) + tuple(ids.shape) + tuple(x.shape[axis + 1 :]))

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        shape, ids, axis = ctx.saved
        xp = namespace(g)
        rest = shape[:axis] + shape[axis + 1 :]
        # Bring the indexed axis to the front, scatter along it, move it back.
        g = xp.reshape(g, (*shape[:axis], math.prod(ids.shape), *shape[axis + 1 :]))
        g = xp.moveaxis(g, axis, 0)
        target = xp.zeros((shape[axis], *rest), dtype=g.dtype)
        target = backend_of(g).scatter_add(target, xp.reshape(ids, (-1,)), g)
        return (xp.moveaxis(target, 0, axis),)


def _portable_slice(s: slice, n: int) -> slice:
    """``s`` on an axis of length ``n``, rewritten with in-bounds start and stop.

    NumPy clips out-of-bounds slice ends; the array API leaves them
    unspecified, so we clip here, the same way, before indexing.
    """
    if n == 0:
        return slice(None)
    start, stop, step = s.indices(n)
    count = len(range(start, stop, step))
    if count == 0:
        return slice(0, 0, 1)
    end = start + count * step
    return slice(start, end if 0 <= end < n else None, step)


def _is_bool(entry: Any) -> bool:
    return isinstance(entry, bool) or (hasattr(entry, "dtype") and "bool" in str(entry.dtype))


def _split_index(x: Tensor, index: Any) -> tuple[tuple[Any, ...], Any, int]:
    """Split ``index`` into a portable basic index and at most one integer array.

    Returns ``(basic, ids, axis)`` with ``x[index] == take(x[basic], ids, axis)``;
    ``ids`` is None when the index is basic. ``basic`` has in-bounds slices and
    always an Ellipsis (the array API wants every axis accounted for).
    """
    entries = index if isinstance(index, tuple) else (index,)
    consumed = sum(1 for e in entries if e is not None and e is not Ellipsis)
    if consumed > x.ndim or sum(1 for e in entries if e is Ellipsis) > 1:
        raise IndexError(f"getitem: index {index!r} does not fit shape {x.shape}")
    basic: list[Any] = []
    ids, array_pos, axis = None, -1, 0  # axis: the axis of x the next entry refers to
    for entry in entries:
        if entry is None:
            basic.append(None)
        elif entry is Ellipsis:
            basic.append(Ellipsis)
            axis += x.ndim - consumed
        elif _is_bool(entry):
            raise TypeError(f"getitem: boolean indices are not supported (index {index!r}, shape {x.shape})")
        elif isinstance(entry, slice):
            basic.append(_portable_slice(entry, x.shape[axis]))
            axis += 1
        elif isinstance(entry, int | np.integer):
            if not -x.shape[axis] <= entry < x.shape[axis]:
                raise IndexError(f"getitem: index {entry} is out of range for axis {axis} of shape {x.shape}")
            basic.append(int(entry))
            axis += 1
        else:
            if ids is not None:
                raise TypeError(f"getitem: at most one integer index array is supported, got {index!r}")
            ids = host_or_backend_array("getitem", entry, x.backend)
            if not namespace(ids).isdtype(ids.dtype, "integral"):
                raise TypeError(f"getitem: index arrays must be integer, got dtype {ids.dtype}")
            array_pos = len(basic)
            basic.append(slice(None))
            axis += 1
    if Ellipsis not in basic:
        basic.append(Ellipsis)
    if ids is None:
        return tuple(basic), None, 0
    # NumPy moves the array's axes to the front when an integer index sits on the
    # other side of a slice, None or ... from it; refuse that rather than surprise.
    for i, entry in enumerate(basic):
        lo, hi = sorted((i, array_pos))
        if isinstance(entry, int) and any(not isinstance(e, int) for e in basic[lo + 1 : hi]):
            raise IndexError(
                f"getitem: an integer index is separated from the index array by a slice, None or ... "
                f"in {index!r}; index in two steps"
            )
    # The array's axis in x[basic]: one for every earlier slice or None, and
    # for an Ellipsis the axes it stands for.
    take_axis = 0
    for e in basic[:array_pos]:
        if e is Ellipsis:
            take_axis += x.ndim - consumed
        elif not isinstance(e, int):
            take_axis += 1
    return tuple(basic), ids, take_axis


def getitem(x: Tensor, index: Any) -> Tensor:
    """``x[index]`` for ints, slices, None, Ellipsis and at most one integer index array.

    An index array (NumPy, backend array, list or Tensor of ints, any shape,
    negative entries count from the end) replaces its axis by its own shape,
    as in NumPy. Integer indices must not be separated from it by a slice.
    Out-of-bounds slice ends are clipped, as in NumPy.
    """
    x = as_tensor(x)
    basic, ids, axis = _split_index(x, index)
    is_identity = all(e is Ellipsis or e == slice(None) for e in basic)
    out = x if ids is not None and is_identity else GetItem.apply(x, index=basic)
    if ids is None:
        return out
    xp = namespace(ids)
    n = out.shape[axis]
    if ids.size and bool(xp.any((ids < -n) | (ids >= n))):
        raise IndexError(f"getitem: index array out of range for an axis of length {n} (shape {x.shape})")
    ids = xp.where(ids < 0, ids + n, ids)
    return Take.apply(out, ids=ids, axis=axis)


# -- concat, stack, broadcast_to ---------------------------------------------------------
class Concat(Function):
    """out = [x₀ | x₁ | …] along ``axis``;  g_xᵢ = the slice of g that xᵢ filled."""

    @staticmethod
    def forward(ctx: Context, *xs: Any, axis: int) -> Any:
        ctx.save_for_backward(tuple(int(x.shape[axis]) for x in xs), axis)
        return namespace(xs[0]).concat(list(xs), axis=axis)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        sizes, axis = ctx.saved
        grads, start = [], 0
        for i, n in enumerate(sizes):
            if ctx.needs_input_grad[i]:
                grads.append(g[(slice(None),) * axis + (slice(start, start + n), Ellipsis)])
            else:
                grads.append(None)
            start += n
        return tuple(grads)


def _check_same_backend(op: str, ts: Sequence[Tensor]) -> None:
    names = {t.backend.name for t in ts}
    if len(names) > 1:
        raise TypeError(f"{op}: tensors on different backends {sorted(names)}")


def concat(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join tensors along an existing ``axis``; all other axes must match."""
    ts = [as_tensor(t) for t in tensors]
    if not ts:
        raise ValueError("concat: needs at least one tensor")
    _check_same_backend("concat", ts)
    ndim = ts[0].ndim
    shapes = [t.shape for t in ts]
    if ndim == 0 or not -ndim <= axis < ndim:
        raise ValueError(f"concat: axis {axis} is out of range for shapes {shapes}")
    axis %= ndim
    others = [s[:axis] + s[axis + 1 :] for s in shapes]
    if any(len(s) != ndim for s in shapes) or any(o != others[0] for o in others):
        raise ValueError(f"concat: shapes {shapes} must match in every axis except axis {axis}")
    return Concat.apply(*ts, axis=axis)


class Stack(Function):
    """out = x₀, x₁, … stacked along a new ``axis``;  g_xᵢ = g taken at position i of that axis."""

    @staticmethod
    def forward(ctx: Context, *xs: Any, axis: int) -> Any:
        ctx.save_for_backward(axis)
        return namespace(xs[0]).stack(list(xs), axis=axis)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        (axis,) = ctx.saved
        return tuple(
            g[(*(slice(None),) * axis, i, Ellipsis)] if need else None
            for i, need in enumerate(ctx.needs_input_grad)
        )


def stack(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Stack same-shape tensors along a new ``axis`` (``-1`` appends it last)."""
    ts = [as_tensor(t) for t in tensors]
    if not ts:
        raise ValueError("stack: needs at least one tensor")
    _check_same_backend("stack", ts)
    shapes = [t.shape for t in ts]
    if any(s != shapes[0] for s in shapes):
        raise ValueError(f"stack: all shapes must be equal, got {shapes}")
    ndim = ts[0].ndim + 1
    if not -ndim <= axis < ndim:
        raise ValueError(f"stack: axis {axis} is out of range for a result with {ndim} dimensions")
    return Stack.apply(*ts, axis=axis % ndim)


class BroadcastTo(Function):
    """out = x broadcast to ``shape`` (NumPy rules);  g_x = g summed over the broadcast axes."""

    @staticmethod
    def forward(ctx: Context, x: Any, shape: tuple[int, ...]) -> Any:
        xp = namespace(x)
        ctx.save_for_backward(tuple(x.shape))
        return xp.asarray(xp.broadcast_to(x, shape), copy=True)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        (shape,) = ctx.saved
        return (unbroadcast(g, shape),)


def broadcast_to(x: Tensor, shape: Sequence[int]) -> Tensor:
    """``x`` repeated along size-1 and new leading axes to reach ``shape``."""
    x = as_tensor(x)
    shape = tuple(int(n) for n in shape)
    fits = len(shape) >= x.ndim and all(
        n == m or n == 1 for n, m in zip(reversed(x.shape), reversed(shape), strict=False)
    )
    if not fits:
        raise ValueError(f"broadcast_to: shape {x.shape} cannot be broadcast to {shape}")
    return BroadcastTo.apply(x, shape=shape)

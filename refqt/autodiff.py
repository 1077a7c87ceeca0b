"""Reverse-mode autodiff: the Function contract, the tape and ``backward``.

Every primitive op is a :class:`Function` subclass with two static methods on
raw arrays::

    forward(ctx, *arrays, **params) -> array
    backward(ctx, g) -> tuple of arrays (one per input; None where not needed)

``g`` is the cotangent of the output, ∂ℓ/∂out. ``backward`` returns the
vector-Jacobian products ``g · ∂out/∂input`` and may skip inputs for which
``ctx.needs_input_grad[i]`` is False.

``Function.apply`` runs the forward and, when gradients are enabled and some
input requires one, appends a :class:`Node` to the tape: the op, its context and
its input tensors, numbered in the order they ran. :func:`backward` walks the
nodes reachable from the loss (iteratively, no recursion), replays them in
reverse tape order, sums the cotangents of tensors used twice, checks every
rule's gradient shape, writes ``.grad`` only on leaves that require it and then
frees the tape (unless ``retain_graph=True``).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from refqt.tensor import Tensor

_GRAD_ENABLED: ContextVar[bool] = ContextVar("refqt_grad_enabled", default=True)
_SEQ = itertools.count()


def is_grad_enabled() -> bool:
    """Whether ops run now are recorded on the tape."""
    return _GRAD_ENABLED.get()


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """Context in which no op is recorded (evaluation, optimizer steps)."""
    token = _GRAD_ENABLED.set(False)
    try:
        yield
    finally:
        _GRAD_ENABLED.reset(token)


class Context:
    """What a forward leaves for its backward.

    Attributes
    ----------
    needs_input_grad : tuple of bool
        One flag per tensor input: whether its gradient is wanted.
    saved : tuple
        Arrays stored by :meth:`save_for_backward`.
    """

    def __init__(self, needs_input_grad: tuple[bool, ...]):
        self.needs_input_grad = needs_input_grad
        self.saved: tuple[Any, ...] = ()

    def save_for_backward(self, *arrays: Any) -> None:
        self.saved = arrays


class Node:
    """One recorded op: ``output = fn(*inputs)``, number ``seq`` on the tape."""

    __slots__ = ("ctx", "fn", "freed", "inputs", "seq")

    def __init__(self, fn: type[Function], ctx: Context, inputs: tuple[Tensor, ...]):
        self.seq = next(_SEQ)
        self.fn = fn
        self.ctx = ctx
        self.inputs = inputs
        self.freed = False


class Function:
    """Base class of every primitive op (see the module docstring)."""

    @staticmethod
    def forward(ctx: Context, *arrays: Any, **params: Any) -> Any:
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs: Tensor, **params: Any) -> Tensor:
        """Run the op on tensors and record it on the tape if needed."""
        from refqt.tensor import Tensor

        record = is_grad_enabled() and any(t.requires_grad for t in inputs)
        ctx = Context(tuple(record and t.requires_grad for t in inputs))
        out = Tensor(cls.forward(ctx, *(t.data for t in inputs), **params))
        if record:
            out.requires_grad = True
            out.node = Node(cls, ctx, inputs)
        return out


def _reachable(root: Tensor) -> list[Tensor]:
    """Non-leaf tensors reachable from ``root``, in reverse tape order."""
    seen = {id(root)}
    stack, found = [root], []
    while stack:
        t = stack.pop()
        if t.node is None:
            continue
        if t.node.freed:
            raise RuntimeError(
                f"backward through {t.node.fn.__name__} a second time: the tape was freed "
                "by an earlier backward(); pass retain_graph=True to keep it"
            )
        found.append(t)
        for x in t.node.inputs:
            if id(x) not in seen and x.requires_grad:
                seen.add(id(x))
                stack.append(x)
    found.sort(key=lambda t: t.node.seq, reverse=True)
    return found


def backward(root: Tensor, g: Any = None, retain_graph: bool = False) -> None:
    """Accumulate ∂root/∂leaf into ``leaf.grad`` for every leaf that requires it.

    Parameters
    ----------
    root : Tensor
        The output to differentiate (usually a scalar loss).
    g : array, optional
        Cotangent of ``root``; defaults to 1 for a one-element root.
    retain_graph : bool
        Keep the tape so ``backward`` can run again on the same graph (e.g. to
        draw several quantized gradients from one forward pass).
    """
    if not root.requires_grad:
        raise RuntimeError("backward() on a tensor that does not require grad")
    xp = root.backend.xp
    if g is None:
        if root.size != 1:
            raise RuntimeError(f"backward() needs an explicit cotangent for an output of shape {root.shape}")
        g = xp.ones(root.shape, dtype=root.dtype)
    elif tuple(g.shape) != root.shape:
        raise ValueError(f"backward(): cotangent shape {tuple(g.shape)} != output shape {root.shape}")
    grads: dict[int, Any] = {id(root): g}
    leaves: dict[int, Tensor] = {}
    if root.node is None:
        leaves[id(root)] = root
    for t in _reachable(root):
        node = t.node
        g_out = grads.pop(id(t), None)
        if g_out is None:
            continue
        in_grads = node.fn.backward(node.ctx, g_out)
        if len(in_grads) != len(node.inputs):
            raise RuntimeError(
                f"{node.fn.__name__}.backward returned {len(in_grads)} gradients for "
                f"{len(node.inputs)} inputs"
            )
        for x, gx, need in zip(node.inputs, in_grads, node.ctx.needs_input_grad, strict=True):
            if not need or gx is None:
                continue
            if tuple(gx.shape) != x.shape:
                raise RuntimeError(
                    f"{node.fn.__name__}.backward gave a gradient of shape {tuple(gx.shape)} "
                    f"for an input of shape {x.shape}"
                )
            key = id(x)
            grads[key] = gx if key not in grads else grads[key] + gx
            if x.node is None:
                leaves[key] = x
        if not retain_graph:
            node.ctx = None
            node.inputs = ()
            node.freed = True
    for key, leaf in leaves.items():
        gx = grads.get(key)
        if gx is None:
            continue
        leaf.grad = gx if leaf.grad is None else leaf.grad + gx


def format_tape(root: Tensor) -> str:
    """The program recorded for ``root``, one op per line, in the order it ran.

    Example output::

        %0 = input (32, 64) float32
        %1 = param (64, 10) float32 requires_grad
        %2 = MatMul(%0, %1) (32, 10) float32
    """
    order = list(reversed(_reachable(root)))
    names: dict[int, str] = {}
    lines = []

    def name_of(t: Tensor) -> str:
        if id(t) not in names:
            names[id(t)] = f"%{len(names)}"
            kind = "param" if t.requires_grad else "input"
            extra = " requires_grad" if t.requires_grad else ""
            label = f" {t.name}" if t.name else ""
            lines.append(f"{names[id(t)]} = {kind}{label} {t.shape} {t.dtype}{extra}")
        return names[id(t)]

    for t in order:
        args = ", ".join(name_of(x) for x in t.node.inputs)
        names[id(t)] = f"%{len(names)}"
        lines.append(f"{names[id(t)]} = {t.node.fn.__name__}({args}) {t.shape} {t.dtype}")
    if not order:
        name_of(root)
    return "\n".join(lines)

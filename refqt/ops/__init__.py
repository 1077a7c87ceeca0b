"""Primitive ops with their VJPs, grouped by kind.

Each module holds ``Function`` subclasses (forward + backward on raw arrays)
and the plain functions users call on Tensors.
"""

from refqt.ops.arith import (
    add,
    div,
    exp,
    gelu,
    log,
    mul,
    neg,
    pow,
    relu,
    sigmoid,
    sqrt,
    sub,
    tanh,
    where,
)

__all__ = [
    "add",
    "div",
    "exp",
    "gelu",
    "log",
    "mul",
    "neg",
    "pow",
    "relu",
    "sigmoid",
    "sqrt",
    "sub",
    "tanh",
    "where",
]

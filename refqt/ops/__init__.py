"""Primitive ops with their VJPs, grouped by kind.

Each module holds ``Function`` subclasses (forward + backward on raw arrays)
and the plain functions users call on Tensors.
"""

from refqt.ops.arith import (
    add,
    div,
    exp,
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
from refqt.ops.attention import scaled_dot_product_attention
from refqt.ops.conv import conv2d, conv2d_forward, conv2d_grad_input, conv2d_grad_weight
from refqt.ops.dropout import dropout
from refqt.ops.embedding import embedding
from refqt.ops.gelu import gelu
from refqt.ops.linalg import linear, matmul
from refqt.ops.loss import cross_entropy
from refqt.ops.norm import batch_norm, layer_norm
from refqt.ops.pool import avg_pool2d, global_avg_pool2d, max_pool2d
from refqt.ops.reduce import max, mean, sum, var
from refqt.ops.shape import broadcast_to, concat, getitem, permute, reshape, stack, swapaxes
from refqt.ops.softmax import log_softmax, softmax

__all__ = [
    "add",
    "avg_pool2d",
    "batch_norm",
    "broadcast_to",
    "concat",
    "conv2d",
    "conv2d_forward",
    "conv2d_grad_input",
    "conv2d_grad_weight",
    "cross_entropy",
    "div",
    "dropout",
    "embedding",
    "exp",
    "gelu",
    "getitem",
    "global_avg_pool2d",
    "layer_norm",
    "linear",
    "log",
    "log_softmax",
    "matmul",
    "max",
    "max_pool2d",
    "mean",
    "mul",
    "neg",
    "permute",
    "pow",
    "relu",
    "reshape",
    "scaled_dot_product_attention",
    "sigmoid",
    "softmax",
    "sqrt",
    "stack",
    "sub",
    "sum",
    "swapaxes",
    "tanh",
    "var",
    "where",
]

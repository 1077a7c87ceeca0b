"""Layers and models: ``Module``, ``Parameter`` and the standard layers.

Build a model by assigning layers to attributes of a :class:`Module` (or
chaining them in :class:`Sequential`); every layer takes its initial weights
from an explicit ``rng`` (a ``numpy.random.Generator``). Weight
initialisations live in :mod:`refqt.nn.init`.
"""

from refqt.nn import init
from refqt.nn.activation import GELU, Flatten, ReLU, Tanh
from refqt.nn.attention import MultiHeadAttention
from refqt.nn.container import ModuleList, Sequential
from refqt.nn.conv import Conv2d
from refqt.nn.dropout import Dropout
from refqt.nn.embedding import Embedding
from refqt.nn.linear import Linear
from refqt.nn.module import Module, Parameter
from refqt.nn.norm import BatchNorm1d, BatchNorm2d, LayerNorm
from refqt.nn.pooling import AvgPool2d, GlobalAvgPool2d, MaxPool2d
from refqt.nn.transformer import FeedForward, TransformerDecoderLayer, TransformerEncoderLayer

__all__ = [
    "GELU",
    "AvgPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv2d",
    "Dropout",
    "Embedding",
    "FeedForward",
    "Flatten",
    "GlobalAvgPool2d",
    "LayerNorm",
    "Linear",
    "MaxPool2d",
    "Module",
    "ModuleList",
    "MultiHeadAttention",
    "Parameter",
    "ReLU",
    "Sequential",
    "Tanh",
    "TransformerDecoderLayer",
    "TransformerEncoderLayer",
    "init",
]

"""Ready models for the paper's experiments."""

from refqt.models.cnn import SmallCNN
from refqt.models.mlp import MLP
from refqt.models.resnet import PreActResNet
from refqt.models.transformer import Seq2SeqTransformer

__all__ = ["MLP", "PreActResNet", "Seq2SeqTransformer", "SmallCNN"]

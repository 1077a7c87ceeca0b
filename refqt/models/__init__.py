"""Ready models for the paper's experiments."""

from refqt.models.cnn import SmallCNN
from refqt.models.mlp import MLP

__all__ = ["MLP", "SmallCNN"]

"""refqt: fully quantized training, in plain NumPy, as a statistical framework."""

from refqt.autodiff import no_grad
from refqt.tensor import Tensor, as_tensor

__version__ = "0.1.0"

__all__ = ["Tensor", "__version__", "as_tensor", "no_grad"]

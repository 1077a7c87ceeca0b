"""The statistics that make the paper a statistical framework, as tools.

* :func:`unbiasedness_test` -- Theorem 1: E[FQT gradient | batch] = QAT gradient.
* :func:`sampling_variance`, :func:`quantization_variance` -- the two parts of
  FQT's gradient variance, measured as the authors do.
* :func:`variance_terms` -- Eq. 7's L×L matrix of per-quantizer terms.
* :func:`design_quantities` -- Eq. 8: each quantizer's exact conditional
  variance and bound on the gradient it receives.
* :func:`capture_gradients`, :func:`bin_usage` -- the raw gradients and codes.

All take ``(model, loss_fn, batch or batches)`` with
``loss_fn(model, batch) -> scalar Tensor`` and return plain dicts and arrays.
"""

from refqt.stats.bounds import design_quantities
from refqt.stats.capture import bin_usage, capture_gradients
from refqt.stats.decomposition import diagonal_share, variance_terms
from refqt.stats.draws import draw_layer_gradients, qat_and_fqt_draws
from refqt.stats.student import t_quantile_upper, t_tail
from refqt.stats.unbiased import projected_t_statistics, unbiasedness_test
from refqt.stats.variance import quantization_variance, sampling_variance

__all__ = [
    "bin_usage",
    "capture_gradients",
    "design_quantities",
    "diagonal_share",
    "draw_layer_gradients",
    "projected_t_statistics",
    "qat_and_fqt_draws",
    "quantization_variance",
    "sampling_variance",
    "t_quantile_upper",
    "t_tail",
    "unbiasedness_test",
    "variance_terms",
]

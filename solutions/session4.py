"""Solutions, session 4 (variance): exercise 8 of docs/teachers.md.

Run ``python solutions/session4.py`` to print the answer (about a minute on one core).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from refqt.data import load_digits
from refqt.experiments.training import classification_loss
from refqt.fqt import QuantConfig, quantize
from refqt.models import MLP
from refqt.stats.decomposition import variance_terms


def exercise_8(
    depths: tuple[int, ...] = (2, 4, 8), hidden: int = 64, batch: int = 32, k: int = 4, bits: int = 4
) -> dict[int, dict[str, Any]]:
    """Eq. 7's L×L matrix of an FQT MLP (PSQ, ``bits`` bits) at each depth, summarised.

    ``terms[l, k]`` (row = quantizer of layer l, column = receiving layer k,
    from :func:`refqt.stats.decomposition.variance_terms`) is the variance
    layer l's quantizers alone add to layer k's weight gradient. It is 0
    above the diagonal (gradients flow downwards) and tiny *on* it: layer l's
    own weight gradient only sees its 8-bit weight-gradient quantizer, while
    the ``bits``-bit quantizer on the gradient into layer l's input reaches
    the layers below. So the decay is measured from distance 1:

    * ``by_distance[d]`` = median over l of terms[l, l − d] / terms[l, l − 1];
    * ``received`` = column sums (what each layer's weight gradient gets);
    * ``diagonal_share`` = trace / total.

    Measured in one run (hidden 64, 2 batches of 32, k = 4, 4-bit PSQ; the
    printout gives the numbers): yes, the terms decay with l − k, roughly
    geometrically, and faster in the deeper net: at depth 8 the median
    ratios are about 0.2, 0.04, 0.006 for d = 2, 3, 4; at depth 4 about 0.3,
    0.2, 0.07; at depth 2 there is too little depth to tell (0.9). The
    diagonal holds well under 1 % of the total. In the 8-layer net the
    hidden layers nearest the output receive the most: each collects the
    noise of the quantizers just above it, before the back-propagation
    map has attenuated it; the output layer itself receives almost nothing
    (only its 8-bit weight-gradient quantizer).
    """
    x, y = load_digits()
    batches = [(x[i * batch : (i + 1) * batch], y[i * batch : (i + 1) * batch]) for i in range(2)]
    out = {}
    for depth in depths:
        model = quantize(
            MLP(in_features=64, hidden=hidden, depth=depth, rng=np.random.default_rng(0)),
            QuantConfig(mode="fqt", grad_quantizer="psq", grad_bits=bits, seed=0),
        )
        r = variance_terms(model, classification_loss, batches, k=k)
        terms = r["terms"]
        n = terms.shape[0]
        by_distance = {}
        for d in range(1, n):
            ratios = [terms[l_, l_ - d] / terms[l_, l_ - 1] for l_ in range(d, n) if terms[l_, l_ - 1] > 0]
            by_distance[d] = float(np.median(ratios)) if ratios else float("nan")
        out[depth] = {
            "layers": r["layers"],
            "terms": terms,
            "by_distance": by_distance,
            "received": terms.sum(axis=0),
            "diagonal_share": float(np.trace(terms) / terms.sum()),
        }
    return out


if __name__ == "__main__":
    for depth, r in exercise_8().items():
        dist = ", ".join(f"{d}: {v:.2g}" for d, v in r["by_distance"].items())
        received = ", ".join(f"{v:.3g}" for v in r["received"])
        print(f"exercise 8, depth {depth}: diagonal share {r['diagonal_share']:.2f}; "
              f"term(l, l-d) / term(l, l-1) by d {{{dist}}}; received per layer [{received}]")

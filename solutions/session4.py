"""Solutions, session 4 (variance): exercises 8 and 9 of docs/teachers.md.

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


# -- exercise 9: Eq. 8 for one layer, with ‖γ‖₂ from power iteration ---------------------------
def exercise_9(hidden: int = 8, batch: int = 8, bits: int = 2, draws: int = 2000, seed: int = 0) -> dict:
    """Eq. 8's bound for the last layer's gradient quantizer of a 3-layer ReLU MLP.

    Forward (float64, digits): h₁ = relu(x W₁ᵀ + b₁), h₂ = relu(h₁ W₂ᵀ + b₂),
    z = h₂ W₃ᵀ + b₃, cross-entropy. Layer 3's input-path quantizer rounds
    G = ∂ℓ/∂z (batch × 10); the back-propagation map γ takes it to the
    parameter gradients of layers 1 and 2: γ(G) = ∇_{W₁,b₁,W₂,b₂} of
    ⟨G W₃, h₂⟩ with the ReLU masks of this forward pass fixed, a linear map.

    ‖γ‖₂ comes from power iteration on γᵀγ, where γ(V) is one ``backward``
    and γᵀ is applied through the dense matrix of γ (one backward per
    entry of G; small here) — checked against ``np.linalg.norm(M, 2)``.
    Then, with e = Q(G) − G (independent elementwise errors):

        term  = E‖γ(e)‖² = Σⱼ Var(eⱼ) ‖M[:, j]‖²      (exact, and by Monte Carlo)
        bound = ‖γ‖₂² · E‖e‖² = ‖γ‖₂² · Σⱼ Var(eⱼ)    (Eq. 8)

    The bound holds, but loosely: it charges every error with the largest
    singular direction of γ, while the errors spread over all directions
    (``ratio`` = term / bound, well below 1).
    """
    from refqt import Tensor, ops
    from refqt.quant import PSQ

    x_all, y_all = load_digits()
    x, y = x_all[:batch].reshape(batch, -1).astype(np.float64), y_all[:batch]
    rng = np.random.default_rng(seed)
    w1, b1 = rng.standard_normal((hidden, 64)) * 0.1, rng.standard_normal(hidden) * 0.1
    w2, b2 = rng.standard_normal((hidden, hidden)) * 0.3, rng.standard_normal(hidden) * 0.1
    w3, b3 = rng.standard_normal((10, hidden)) * 0.3, np.zeros(10)

    def backprop(v: np.ndarray) -> np.ndarray:
        """γ(v): layer 1-2 parameter gradients, flattened, for output cotangent v (batch, 10)."""
        params = [Tensor(a, requires_grad=True) for a in (w1, b1, w2, b2)]
        h1 = ops.relu(ops.linear(Tensor(x), params[0], params[1]))
        h2 = ops.relu(ops.linear(h1, params[2], params[3]))
        h2.backward(v @ w3)  # layer 3's input-path gradient: G W₃
        return np.concatenate([p.grad.ravel() for p in params])

    h2 = np.maximum(np.maximum(x @ w1.T + b1, 0) @ w2.T + b2, 0)
    z = h2 @ w3.T + b3
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    g = (p - np.eye(10)[y]) / batch  # ∂(mean cross-entropy)/∂z

    m = np.stack([backprop(e.reshape(g.shape)) for e in np.eye(g.size)], axis=1)  # dense γ
    v = rng.standard_normal(g.size)
    for _ in range(200):  # power iteration on γᵀγ
        v = m.T @ (m @ v)
        v /= np.linalg.norm(v)
    norm_gamma = float(np.linalg.norm(m @ v))
    var = np.asarray(PSQ(bits).elementwise_variance(g)).ravel()
    term_exact = float(np.sum(var * np.sum(m * m, axis=0)))
    u = rng.random((draws, *g.shape))
    errors = (PSQ(bits).quantize(g, u) - g).reshape(draws, -1)
    per_draw = np.sum((errors @ m.T) ** 2, axis=1)
    bound = norm_gamma**2 * float(var.sum())
    return {
        "norm_gamma_power_iteration": norm_gamma,
        "norm_gamma_svd": float(np.linalg.norm(m, 2)),
        "term_exact": term_exact,
        "term_monte_carlo": float(per_draw.mean()),
        "term_monte_carlo_se": float(per_draw.std(ddof=1) / np.sqrt(draws)),
        "bound": bound,
        "ratio": term_exact / bound,
    }


if __name__ == "__main__":
    r9 = exercise_9()
    print(f"exercise 9: ||gamma||_2 = {r9['norm_gamma_power_iteration']:.5g} by power iteration "
          f"({r9['norm_gamma_svd']:.5g} by SVD); term = {r9['term_exact']:.4g} exact, "
          f"{r9['term_monte_carlo']:.4g} ± {r9['term_monte_carlo_se']:.2g} Monte Carlo; "
          f"Eq. 8 bound {r9['bound']:.4g} (term / bound = {r9['ratio']:.3f})")
    for depth, r in exercise_8().items():
        dist = ", ".join(f"{d}: {v:.2g}" for d, v in r["by_distance"].items())
        received = ", ".join(f"{v:.3g}" for v in r["received"])
        print(f"exercise 8, depth {depth}: diagonal share {r['diagonal_share']:.2f}; "
              f"term(l, l-d) / term(l, l-1) by d {{{dist}}}; received per layer [{received}]")

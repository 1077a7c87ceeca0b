# %% [markdown]
# # QAT vs FQT, and Theorem 1 measured
#
# | mode | forward | backward |
# |---|---|---|
# | exact | float | float |
# | QAT | conv/linear inputs and weights quantized (8 bits, nearest) | float, straight through |
# | FQT | as QAT | also every conv/linear **output gradient**, stochastically |
#
# **Theorem 1.** If every gradient quantizer is unbiased, $\mathbb E[Q(G)\mid G] = G$,
# then FQT's gradient is an unbiased estimate of QAT's, for every layer:
# $\mathbb E[\hat\nabla_\Theta \mid \text{batch}] = \nabla_\Theta^{\text{QAT}}$
# (backprop is linear in the incoming gradient, and FQT shares QAT's forward pass).
#
# One line switches a model between modes: `quantize(model, QuantConfig(...))`.

# %%
import numpy as np

from refqt.data import load_digits
from refqt.experiments.training import classification_loss
from refqt.fqt import QuantConfig, quantize, quantized_layers
from refqt.models import MLP
from refqt.quant import PSQ
from refqt.stats import qat_and_fqt_draws, unbiasedness_test

x, y = load_digits()
batch = (x[:32].astype(np.float64), y[:32])


def make(config: QuantConfig) -> MLP:
    return quantize(MLP(hidden=32, rng=np.random.default_rng(0), dtype=np.float64), config)


def gradients(model: MLP) -> np.ndarray:
    model.zero_grad()
    classification_loss(model, batch).backward()
    return np.concatenate([p.grad.ravel() for p in model.parameters()])


g_exact = gradients(make(QuantConfig(mode="exact")))
g_qat = gradients(make(QuantConfig(mode="qat")))
fqt = make(QuantConfig(mode="fqt", grad_quantizer="psq", grad_bits=4, seed=1))
print(fqt)
print("quantized layers:", [name for name, _ in quantized_layers(fqt)])

# %% [markdown]
# QAT's gradient differs from the exact one (the forward pass is quantized), and
# each FQT gradient differs from QAT's (the backward pass is quantized, 4 bits).
# But the *average* of many FQT draws for the same batch converges to QAT's gradient,
# not to the exact one.

# %%
K = 200
qat, draws = qat_and_fqt_draws(fqt, classification_loss, batch, K)
name = "net.3"  # the middle Linear layer
g, d = qat[name], draws[name]  # (P,) and (K, P)


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


print(f"|QAT − exact| / |exact|          = {rel(g_qat, g_exact):.4f}")
print(f"|one FQT draw − QAT| / |QAT|     = {rel(d[0], g):.4f}")
print(f"|mean of {K} draws − QAT| / |QAT| = {rel(d.mean(axis=0), g):.4f}")
# error of the mean shrinks like 1/√K
assert rel(d.mean(axis=0), g) < rel(d[0], g) / 5, (
    f"mean error {rel(d.mean(axis=0), g):.3g}, one draw {rel(d[0], g):.3g}"
)

# %% [markdown]
# The error of the mean falls like $1/\sqrt K$, exactly as for an unbiased estimator:

# %%
one_draw = np.sqrt(np.mean([rel(di, g) ** 2 for di in d]))  # rms error of a single draw
for k in (8, 32, 128):
    err = rel(d[:k].mean(axis=0), g)
    print(f"K = {k:3d}: |mean − QAT| / |QAT| = {err:.4f}   one draw / √K = {one_draw / np.sqrt(k):.4f}")

# %% [markdown]
# ## A real test, with a stated false-alarm rate
#
# `refqt.stats.unbiasedness_test` projects the error on random directions, computes
# Student-t statistics and applies a Bonferroni threshold over all layers and
# directions: it rejects a correct FQT model with probability at most `alpha`.

# %%
result = unbiasedness_test(fqt, classification_loss, batch, np.random.default_rng(5), k=64, alpha=1e-6)
print(f"threshold |t| > {result['threshold']:.2f}; largest |t| per layer:")
for layer, r in result["layers"].items():
    print(f"  {layer}: {r['max_abs_t']:.2f}")
assert not result["rejected"], f"Theorem 1 rejected for FQT: {result}"

# %% [markdown]
# ## Power: the same test catches a biased quantizer
#
# Round to nearest on gradients breaks Theorem 1. We swap every layer's input-path
# quantizer for a PSQ that always uses $u = \tfrac12$, i.e. $\lfloor y + \tfrac12 \rfloor$.


# %%
class RoundToNearestPSQ(PSQ):
    def __call__(self, x, rng):
        return self.quantize(x, np.full(x.shape, 0.5))


biased = make(QuantConfig(mode="fqt", grad_quantizer="psq", grad_bits=4, seed=1))
for _, layer in quantized_layers(biased):
    layer.fqt.grad_quantizer = RoundToNearestPSQ(4)
result = unbiasedness_test(biased, classification_loss, batch, np.random.default_rng(5), k=64, alpha=1e-6)
print({layer: r["rejected"] for layer, r in result["layers"].items()})
assert result["rejected"], f"the biased quantizer was not caught: {result}"

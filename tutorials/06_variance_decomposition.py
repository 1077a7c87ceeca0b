# %% [markdown]
# # The variance decomposition and the L×L heatmap
#
# By the law of total variance (Theorem 2, Eq. 7), FQT's gradient variance is QAT's
# sampling variance plus one term per gradient quantizer:
#
# $$ \mathrm{Var}[\hat\nabla_\Theta] = \mathrm{Var}[\nabla_\Theta^{\text{QAT}}]
#  + \sum_{l} \mathbb E\Big[\mathrm{Var}\big[\gamma^{(l)}(Q(\hat\nabla_{H^{(l)}}))
#  \,\big|\, \hat\nabla_{H^{(l)}}\big]\Big] $$
#
# where $\gamma^{(l)}$ back-propagates a gradient injected at layer $l$ to the
# parameters of layers $k \le l$. Splitting each term over the receiving layers $k$
# gives an $L\times L$ matrix: `terms[l, k]` is the variance that layer $l$'s quantizer
# adds to layer $k$'s gradient. Eq. 8 bounds each term by
# $\lVert\gamma^{(l)}\rVert_2^2\,\mathrm{Var}[Q \mid \nabla_{H^{(l)}}]$: make each
# quantizer's own variance small.

# %%
import matplotlib.pyplot as plt
import numpy as np

from refqt.data import load_digits, train_test_split
from refqt.experiments.training import classification_loss, train_epoch
from refqt.fqt import QuantConfig, quantize
from refqt.models import MLP
from refqt.optim import SGD
from refqt.stats import (
    design_quantities,
    diagonal_share,
    quantization_variance,
    sampling_variance,
    variance_terms,
)

x, y = load_digits()
x_train, y_train, _, _ = train_test_split(x, y, seed=0)
model = quantize(
    MLP(hidden=32, depth=4, rng=np.random.default_rng(0)),
    QuantConfig(mode="fqt", grad_quantizer="psq", grad_bits=4, seed=0),
)
opt = SGD(model.parameters(), lr=0.05, momentum=0.9)
for _ in range(2):  # train a little, so the gradients look like training's
    train_epoch(model, opt, x_train, y_train, 32, np.random.default_rng(1))
batches = [(x_train[i * 64 : (i + 1) * 64], y_train[i * 64 : (i + 1) * 64]) for i in range(6)]

# %% [markdown]
# ## Sampling vs quantization variance
#
# Measured the authors' way: sampling variance is the spread of QAT gradients over
# batches; quantization variance the spread of FQT gradients around the QAT gradient
# of a fixed batch, over quantizer draws. Their ratio predicts whether low-bit training
# works: well below 1, quantization noise drowns in SGD's own noise.

# %%
samp = sampling_variance(model, classification_loss, batches)["total"]["variance"]
quant = quantization_variance(model, classification_loss, batches[:2], k=16)["total"]["variance"]
print(f"sampling variance {samp:.4g}, quantization variance {quant:.4g}, ratio {quant / samp:.3f}")
assert quant < samp, f"quantization variance {quant:.4g} >= sampling variance {samp:.4g}"

# %% [markdown]
# ## The L×L matrix of Eq. 7
#
# `variance_terms` switches one layer's quantizers on at a time and measures every
# layer's quantization variance. Back-propagation only flows down, so the matrix is
# zero above the diagonal (`terms[l, k] = 0` for $k > l$), and the column sums must
# equal the all-on variance within Monte-Carlo error: that *is* Eq. 7.

# %%
result = variance_terms(model, classification_loss, batches[:3], k=24)
terms, names = result["terms"], result["layers"]
np.set_printoptions(precision=3, suppress=False)
print("layers:", names)
print("terms (row = quantizer l, column = receiving layer k):\n", terms)
print("sum over l:", result["sum_of_terms"])
print("all on:    ", result["total"])
print(f"diagonal share: {diagonal_share(result):.4f}")

L = len(names)
# nothing flows upwards
assert np.all(np.triu(terms, k=1) == 0), f"terms above the diagonal: {np.triu(terms, k=1)}"
err = np.abs(result["sum_of_terms"] - result["total"])
se = np.sqrt(np.sum(result["terms_stderr"] ** 2, axis=0) + result["total_stderr"] ** 2)
print("|sum − total| / standard error:", np.round(err / se, 2))
assert np.all(err <= 5 * se), (err, se)

# %%
fig, ax = plt.subplots(figsize=(4.5, 4))
shown = np.where(terms > 0, terms, np.nan)
im = ax.imshow(np.log10(shown), cmap="viridis")
ax.set(xticks=range(L), yticks=range(L), xticklabels=names, yticklabels=names)
ax.set(xlabel="receiving layer k", ylabel="quantizer of layer l", title="log10 Eq. 7 terms")
fig.colorbar(im)
fig.tight_layout()
fig.savefig("variance_terms.png", dpi=80)

# %% [markdown]
# ![The L×L matrix of variance terms](variance_terms.png)
#
# Read it with the bifurcated backward in mind. A layer's own weight gradient only sees
# its 8-bit weight-path quantizer $Q_w$, so the diagonal is small; its 4-bit $Q_b$ feeds
# the input gradient, hence every layer *below*. In this small MLP the last layer's
# quantizer (on the gradient of the logits) dominates, and the first layer, with the most
# parameters and the raw pixels as input, receives the most. (The rebuttal reports, for
# deep convolutional networks, that terms decay quickly with $l - k$; try a deeper model
# and see what you find.)
#
# ## Eq. 8: what a quantizer design controls
#
# `design_quantities` reports, per layer, the quantizer's exact conditional variance on
# the gradient it actually receives, and the quantizer's bound.

# %%
for layer, d in design_quantities(model, classification_loss, batches[0]).items():
    print(f"{layer}: Var[Q | G] = {d['conditional_variance']:.3g} <= bound {d['variance_bound']:.3g}")
    assert d["conditional_variance"] <= d["variance_bound"], f"{d}"

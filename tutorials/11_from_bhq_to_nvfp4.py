# %% [markdown]
# # From BHQ to NVFP4: block formats through the paper's lens
#
# Today's 4- and 8-bit training recipes are built from the paper's two ideas:
# **unbiased stochastic rounding** of gradients, and a **transform** that spreads a
# large value over small ones before rounding (BHQ's Householder reflection). This
# lesson builds NVFP4 -- the format of NVIDIA's FP4 pretraining recipe -- from its
# value grid up, compares it with BHQ on the same gradients, and then audits whole
# recipes with Theorem 1: for each gradient path, is the expectation QAT's gradient?
#
# Everything here is `refqt.quant.formats` (theory: the *Low-precision formats* page).

# %%
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from refqt.data import load_digits
from refqt.experiments.training import classification_loss
from refqt.fqt import QuantConfig, quantize
from refqt.fqt.config import recipe
from refqt.models import MLP
from refqt.quant import BHQ, PSQ
from refqt.quant.formats import (
    FORMATS,
    RandomHadamard,
    make_format_quantizer,
    sylvester,
)
from refqt.quant.householder import householder_dense
from refqt.stats.recipe_audit import format_audit, recipe_audit

# %% [markdown]
# ## 1. The grid: FP4 (E2M1) from its bits
#
# A float with 1 sign bit, 2 exponent bits (bias 1) and 1 mantissa bit. Exponent
# field 0 is subnormal ($0.m \times 2^0$), fields 1–3 are normal ($1.m \times 2^{e-1}$).
# Decoding all 8 non-negative codes gives the whole grid:

# %%
codes = []
for e in range(4):
    for m in range(2):
        codes.append(m / 2 if e == 0 else (1 + m / 2) * 2.0 ** (e - 1))
fp4 = FORMATS["e2m1"]
print("E2M1 values:", codes)
print("refqt grid: ", fp4.values().tolist())
assert codes == fp4.values().tolist() == [0, 0.5, 1, 1.5, 2, 3, 4, 6]

# %% [markdown]
# The spacing doubles every binade (0.5 below 2, then 1, then 2): relative precision,
# not absolute. Rounding to **nearest, ties to even** is deterministic and biased;
# **stochastic rounding** between the two neighbours $lo \le y \le hi$ goes up with
# probability $p = (y - lo)/(hi - lo)$: unbiased, variance $p(1-p)(hi-lo)^2$.
#
# Hardware does not draw an exact uniform: it adds $k$ random bits to the bits it
# drops. Then the probability of going up is $\lfloor p\,2^k\rfloor / 2^k$ -- a bias
# towards zero of up to $2^{-k}$ of a spacing. `fp4.moments(y, random_bits=k)` gives
# the exact mean and variance; we check them against 20 000 draws:

# %%
y = np.linspace(1.0, 2.0, 201)[:-1]  # one binade: spacing 0.5
rng = np.random.default_rng(0)
u = (rng.integers(0, 2**16, (20000, 1)) + 0.5) / 2**16
fig, ax = plt.subplots(figsize=(6, 3.2))
worst = {}
for k in (None, 1, 2, 4):
    mean, var = fp4.moments(y, random_bits=k)
    mc = fp4.stochastic_round(y[None], u, random_bits=k).mean(axis=0)
    assert np.max(np.abs(mc - mean)) < 6 * np.sqrt(var.max() / 20000) + 1e-12  # Monte Carlo agrees
    worst[k] = float(np.max(np.abs(mean - y)))
    label = "exact SR" if k is None else f"{k} random bits"
    ax.plot(y, mean - y, label=label)
ax.set(xlabel="y", ylabel="E[SR(y)] − y", title="Bias of stochastic rounding with k random bits (FP4)")
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig("kbit_bias.png", dpi=80)
print({("exact" if k is None else f"k={k}"): round(b, 4) for k, b in worst.items()})
assert worst[None] < 1e-12 and worst[1] > worst[2] > worst[4] > 0

# %% [markdown]
# ![Bias of k-bit stochastic rounding](kbit_bias.png)
#
# ## 2. Blocks and their scales
#
# Four bits alone cover $[-6, 6]$; a *block* of 16 values shares a scale. NVFP4 has two
# levels: an FP32 tensor scale $S = 6 \cdot 448 / \max|x|$ and per block an E4M3
# (FP8) scale $s_b = \mathrm{E4M3}(\max_b|x| / 6 \cdot S)$, rounded to nearest. The
# element is rounded from $x \cdot S / s_b$ and stored as FP4. When $s_b$ rounds
# *down*, the block's largest element lands above 6 and is clipped -- a bias even under
# stochastic rounding, and `q.bias(x)` says exactly how much.
#
# MX formats use an E8M0 (power-of-two) scale per 32 elements; the OCP spec's rule
# $2^{\lfloor \log_2 \max_b \rfloor - e_{max}}$ can clip too, `ceil` never does:

# %%
rng = np.random.default_rng(0)
N, D = 64, 256
scale = np.full((N, 1), 0.03)
scale[:2] = 1.0  # two samples carry most of the gradient (as in tutorial 4)
G = (rng.standard_normal((N, D)) * scale).astype(np.float32)
G_spiky = G.copy()
G_spiky[rng.random(G.shape) < 0.01] *= 20  # plus a few large single entries

for name in ("nvfp4", "mxfp4", "mxfp4-ceil"):
    b = np.abs(make_format_quantizer(name).bias(G))
    clipped = np.mean(b > 1e-5 * np.abs(G).max())  # beyond the round-off of scaling by e and d
    print(f"{name:11s} max |bias| = {b.max():.3f}   entries clipped: {clipped:.2%}")
assert np.abs(make_format_quantizer("mxfp4").bias(G)).max() > 0.1  # floor clips
assert np.abs(make_format_quantizer("mxfp4-ceil").bias(G)).max() < 1e-6  # ceil does not

# %% [markdown]
# ## 3. The random Hadamard transform, a cousin of BHQ's Householder
#
# BHQ multiplies a *group of rows* by a Householder reflection $I - 2vv^\top/\lVert v\rVert^2$
# that sends the large row's direction $e_1$ to the flat vector $\mathbf 1/\sqrt g$: the
# large row is spread evenly over the group. The RHT multiplies each *block of 16
# entries* by $T = H_{16}\,\mathrm{diag}(s)/4$ ($H$ Sylvester's ±1 matrix, $s$ random
# signs): it sends every $e_j$ to a vector of ±1/4. Both are orthogonal, so both keep
# stochastic rounding unbiased; both flatten a spike:

# %%
d = 16
householder = householder_dense(d)  # BHQ's reflection for one group of d rows
rht = RandomHadamard(d, "fixed", seed=0)
T = rht.matrix()
assert np.allclose(T @ T.T, np.eye(d)) and np.allclose(householder @ householder.T, np.eye(d))
assert np.allclose(T, sylvester(d) * rht.signs[None, :] / 4)
spike = np.zeros(d)
spike[0] = 8.0
print("Householder · spike:", np.round(householder @ spike, 2))
print("Hadamard    · spike:", np.round(T @ spike, 2))
assert np.allclose(np.abs(householder @ spike), 2.0) and np.allclose(np.abs(T @ spike), 2.0)

# %% [markdown]
# The difference is *where* they mix: BHQ mixes samples (rows), so a per-row scale
# then fits each row; the RHT mixes neighbouring entries inside a block, so one block
# scale fits the block. The Hadamard matrix needs no search (BHQ sorts the row ranges
# to build its groups) and costs $16 \log_2 16$ additions per block.
#
# ## 4. Variances on the same gradients
#
# Exact conditional variances $\mathbb E\lVert Q(G) - G\rVert^2 / \lVert G \rVert^2$, no
# sampling. NVFP4 stores 4.5 bits per entry (4 + an 8-bit scale per 16), MXFP4 4.25;
# PSQ/BHQ at 4 bits store 4 plus two floats per row.

# %%
quantizers = {
    "PSQ 4-bit": PSQ(4),
    "BHQ 4-bit": BHQ(4),
    "NVFP4 SR": make_format_quantizer("nvfp4"),
    "NVFP4 SR + RHT": make_format_quantizer("nvfp4-rht"),
    "MXFP4 SR (ceil)": make_format_quantizer("mxfp4-ceil"),
}
table = {}
for grad_name, grad in (("row outliers", G), ("+ entry outliers", G_spiky)):
    norm2 = float(np.sum(grad.astype(np.float64) ** 2))
    table[grad_name] = {name: q.conditional_variance(grad) / norm2 for name, q in quantizers.items()}
print(f"{'':18s}" + "".join(f"{g:>18s}" for g in table))
for name in quantizers:
    print(f"{name:18s}" + "".join(f"{table[g][name]:18.4f}" for g in table))
rows, spiky = table["row outliers"], table["+ entry outliers"]
assert rows["BHQ 4-bit"] < rows["NVFP4 SR"] < rows["PSQ 4-bit"]  # large rows: BHQ's case
assert spiky["NVFP4 SR"] < spiky["BHQ 4-bit"] < spiky["PSQ 4-bit"]  # large entries: small blocks win

fig, ax = plt.subplots(figsize=(7, 3.2))
width = 0.15
for i, name in enumerate(quantizers):
    ax.bar(np.arange(2) + i * width, [table[g][name] for g in table], width, label=name)
ax.set_xticks(np.arange(2) + 2 * width, list(table))
ax.set(ylabel="E‖Q(G) − G‖² / ‖G‖²", yscale="log")
ax.legend(fontsize=7)
fig.tight_layout()
fig.savefig("format_variances.png", dpi=80)

# %% [markdown]
# ![Relative variance of each quantizer](format_variances.png)
#
# When whole *samples* dominate, BHQ's row mixing wins; when single *entries* do,
# 16-element blocks win, because one spike only coarsens its own block. On these
# Gaussian-like blocks the RHT hardly changes the variance -- what it changes is the
# clipping bias of the block scale:

# %%
bias_plain = np.abs(make_format_quantizer("nvfp4").bias(G)).max()
bias_rht = np.abs(make_format_quantizer("nvfp4-rht").bias(G)).max()
print(f"NVFP4 max |bias|: {bias_plain:.3f} without RHT, {bias_rht:.3f} with")
assert bias_rht < bias_plain

# %% [markdown]
# ## 5. Theorem 1, audited on whole recipes
#
# Theorem 1 needs two things per gradient path: an unbiased quantizer of $G$, and the
# backward GEMM using the *forward's* quantized operand. A recipe is a `QuantConfig`
# (`recipe("nvfp4")`, `recipe("mxfp8")`) on any refqt model. The audit turns one path
# on at a time and t-tests K = 48 draws per layer against QAT's gradient of the same
# forward pass (overall false-alarm rate $10^{-6}$). The input path shows in the layers
# *below* a layer (the top layer never changes).

# %%
x, y = load_digits()
batch = (x[:64].astype(np.float32), y[:64])
audits = {}
for name, config in (
    ("PSQ 4-bit", QuantConfig(mode="fqt", grad_quantizer="psq", grad_bits=4, seed=1)),
    ("NVFP4 recipe", recipe("nvfp4", seed=1)),
    ("NVFP4, wgrad reusing X_q", recipe("nvfp4", seed=1, wgrad_act_format="forward")),
    ("MXFP8 recipe", recipe("mxfp8", seed=1)),
):
    model = quantize(MLP(hidden=64, rng=np.random.default_rng(0), dtype=np.float32), config)
    audits[name] = recipe_audit(model, classification_loss, batch, np.random.default_rng(2), k=48)
    print(f"\n{name}\n{format_audit(audits[name])}")

# %% [markdown]
# What the table says, path by path:
#
# * **NVFP4, input gradient** $\nabla X = \mathrm{SR}(G)\,W_q$: unbiased. The weights are
#   quantized in 16×16 tiles, so the transposed weight the backward needs has the same
#   tiles -- it *is* the forward's $W_q$. (Stochastic rounding's own clipping bias is
#   too small to show at K = 48.)
# * **NVFP4, weight gradient** $\nabla W = \mathrm{SR}(TG)^\top\,\mathrm{RTN}(TX)$: biased.
#   $T$ cancels ($T^\top T = I$), but the activations are *re-quantized* from float,
#   along the tokens and after the RHT, to nearest: $T^\top\mathrm{RTN}(TX) \ne X_q$,
#   so $\mathbb E[\nabla W] = G^\top T^\top \mathrm{RTN}(TX) \ne G^\top X_q$. It is an
#   unbiased estimate of a *different* gradient, not QAT's of the same forward.
#   Reusing $X_q$ (third block) makes the path pass again.
# * **MXFP8**: everything rounds to nearest and both backward GEMMs re-quantize an
#   operand along their own reduction axis: deterministic and biased on both paths
#   (|t| = inf: the draws do not vary at all).

# %%
paths = {name: {p: a["paths"][p]["rejected"] for p in ("input", "weight")} for name, a in audits.items()}
print(paths)
assert paths["PSQ 4-bit"] == {"input": False, "weight": False}
assert paths["NVFP4 recipe"] == {"input": False, "weight": True}
assert paths["NVFP4, wgrad reusing X_q"] == {"input": False, "weight": False}
assert paths["MXFP8 recipe"] == {"input": True, "weight": True}

# %% [markdown]
# ## What we left out
#
# Real kernels fuse all of this and keep the FP4 codes packed; refqt dequantizes to
# float and runs the float GEMM, which is the same arithmetic in expectation and makes
# every moment a formula. The recipe keeps some layers in high precision (`skip=`), and
# the RHT's signs may be fixed or redrawn each step (`RandomHadamard(policy=...)`).

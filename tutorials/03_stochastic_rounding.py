# %% [markdown]
# # Stochastic rounding: bias and variance against the formula
#
# Rounding to nearest is deterministic and biased: $0.3$ always becomes $0$.
# Stochastic rounding rounds up with probability $p = y - \lfloor y \rfloor$:
#
# $$ \mathrm{SR}(y) = \lfloor y + u \rfloor,\quad u \sim U[0, 1), \qquad
#    \mathbb E[\mathrm{SR}(y)] = y, \qquad \mathrm{Var}[\mathrm{SR}(y)] = p(1-p) \le \tfrac14 . $$
#
# refqt passes the noise $u$ in explicitly (`stochastic_round(y, u)`), so the same
# generator gives the same roundings on every backend. We measure bias and variance
# over many draws and compare them with the formula.

# %%
import matplotlib.pyplot as plt
import numpy as np

from refqt.quant import PSQ, round_nearest, stochastic_round

rng = np.random.default_rng(0)
y = np.linspace(0.0, 3.0, 61)  # values in grid units
S = 20_000  # draws per value
u = rng.random((S, y.size))
sr = stochastic_round(y, u)  # (S, 61): S independent roundings of every y

bias_sr = sr.mean(axis=0) - y
bias_rn = round_nearest(y) - y
p = y - np.floor(y)
var_formula = p * (1 - p)
var_measured = sr.var(axis=0, ddof=1)

print(f"max |bias|, stochastic rounding: {np.abs(bias_sr).max():.4f}")
print(f"max |bias|, round to nearest:    {np.abs(bias_rn).max():.4f}")
print(f"max |var measured - p(1-p)|:     {np.abs(var_measured - var_formula).max():.4f}")

# %% [markdown]
# How close should the measured mean be? Each mean averages $S$ draws with variance at
# most $1/4$, so its standard error is at most $\sqrt{1/(4S)} \approx 0.0035$; five
# standard errors is a test that essentially never fails by chance. The sample
# variance of a Bernoulli has standard error at most about $\sqrt{1/(16 S)}$.

# %%
se_mean = np.sqrt(0.25 / S)
assert np.all(np.abs(bias_sr) < 5 * se_mean), f"SR bias {np.abs(bias_sr).max():.3g} > 5 s.e. {se_mean:.3g}"
# round to nearest is off by up to half a step
assert np.abs(bias_rn).max() > 0.49, f"largest RN bias {np.abs(bias_rn).max():.3g}"
assert np.all(np.abs(var_measured - var_formula) < 5 * np.sqrt(1 / (16 * S))), (
    f"variance off by {np.abs(var_measured - var_formula).max():.3g}"
)
assert var_formula.max() <= 0.25, f"p(1 - p) = {var_formula.max()} > 1/4"

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
axes[0].plot(y, bias_rn, label="round to nearest")
axes[0].plot(y, bias_sr, ".", label="stochastic (measured)")
axes[0].set(xlabel="y (grid units)", ylabel="E[round(y)] − y", title="bias")
axes[0].legend()
axes[1].plot(y, var_formula, label="p(1 − p)")
axes[1].plot(y, var_measured, ".", label="measured")
axes[1].set(xlabel="y (grid units)", ylabel="Var[SR(y)]", title="variance")
axes[1].legend()
fig.tight_layout()
fig.savefig("stochastic_rounding.png", dpi=80)

# %% [markdown]
# ![Bias and variance of stochastic rounding](stochastic_rounding.png)
#
# ## The same thing on a real quantizer
#
# A gradient quantizer maps each row to the grid $[0, B]$, $B = 2^b - 1$, rounds
# stochastically and maps back. Its exact conditional variance given the input is
# $\sum p(1-p)\,\text{step}^2$, which every refqt quantizer computes
# (`conditional_variance`). Here is PSQ at 4 bits on a small matrix, against 4,000
# Monte-Carlo draws (`q.quantize(x, u)` takes a leading sample axis of noise).

# %%
q = PSQ(4)
x = rng.standard_normal((8, 32))
draws = q.quantize(x, q.uniform(x, rng, samples=4000))  # (4000, 8, 32)
mc_var = float(np.mean(np.sum((draws - x) ** 2, axis=(1, 2))))
exact = q.conditional_variance(x)
bound = q.variance_bound(x)
print(f"PSQ(4): E||Q(x) - x||^2 Monte Carlo {mc_var:.4f}, exact {exact:.4f}, bound {bound:.4f}")
bias = np.abs(draws.mean(axis=0) - x).max()
print(f"max |mean of draws - x| = {bias:.4f}, typical step {np.ptp(x, axis=1).mean() / 15:.3f}")
assert abs(mc_var - exact) < 0.03 * exact, f"Monte Carlo {mc_var:.5g} vs exact {exact:.5g}"
assert exact <= bound, f"exact {exact:.5g} > bound {bound:.5g}"

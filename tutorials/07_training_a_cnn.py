# %% [markdown]
# # Training a CNN at 8 → 4 bits
#
# The same model, the same data order and the same training loop, quantized four
# ways with one line each. `train_epoch` is the loop a student would write; the
# quantization mode is decided by `quantize(model, QuantConfig(...))` alone.
#
# Expect: on these easy digits every mode trains, 8-bit FQT like QAT and 4-bit FQT
# close behind -- so close that one run cannot rank the 4-bit quantizers. What
# separates them reliably is the variance each adds to the gradient, measured at
# the end.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np

from refqt.data import load_digits, train_test_split
from refqt.experiments.training import classification_loss, evaluate, train_epoch
from refqt.fqt import QuantConfig, quantize
from refqt.models import SmallCNN
from refqt.optim import SGD
from refqt.optim.schedules import CosineSchedule
from refqt.stats import quantization_variance

x, y = load_digits()
x_train, y_train, x_test, y_test = train_test_split(x, y, seed=0)
print(x_train.shape, x_test.shape)

configs = {
    "QAT": QuantConfig(mode="qat"),
    "FQT PSQ 8-bit": QuantConfig(mode="fqt", grad_quantizer="psq", grad_bits=8),
    "FQT BHQ 4-bit": QuantConfig(mode="fqt", grad_quantizer="bhq", grad_bits=4),
    "FQT PTQ 4-bit": QuantConfig(mode="fqt", grad_quantizer="ptq", grad_bits=4),
}
epochs, batch_size = 2, 16
steps = epochs * -(-len(y_train) // batch_size)

history: dict[str, list[float]] = {}
models = {}
for label, config in configs.items():
    start = time.perf_counter()
    model = quantize(SmallCNN(channels=8, hidden=32, rng=np.random.default_rng(0)), config)
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
    schedule = CosineSchedule(0.1, steps)
    shuffle = np.random.default_rng(1)  # the same batch order for every mode
    step, accs = 0, []
    for _ in range(epochs):
        step = train_epoch(model, opt, x_train, y_train, batch_size, shuffle, schedule, step)["step"]
        accs.append(evaluate(model, x_test, y_test)["accuracy"])
    history[label], models[label] = accs, model
    print(f"{label:<14} test accuracy {100 * accs[-1]:.2f}%   ({time.perf_counter() - start:.1f} s)")

# %%
fig, ax = plt.subplots(figsize=(5, 3.5))
for label, accs in history.items():
    ax.plot(range(1, epochs + 1), [100 * a for a in accs], "o-", label=label)
ax.set(xlabel="epoch", ylabel="test accuracy (%)", xticks=range(1, epochs + 1))
ax.legend()
fig.tight_layout()
fig.savefig("training_curves.png", dpi=80)

# %% [markdown]
# ![Test accuracy per epoch](training_curves.png)
#
# The numbers this tutorial checks. One run is one draw: another seed, or another
# machine whose BLAS adds in another order, ends a few points elsewhere. Over 8 seeds
# (`python scripts/tutorial07_seeds.py 8`) each mode's accuracy had mean 0.937-0.946
# and standard deviation 0.025-0.029, the lowest run 0.891; the gap between 8-bit FQT
# and QAT had sd 0.022, and 4-bit BHQ beat 4-bit PTQ on some seeds and lost on others.
# So the checks are what holds for every seed, with four standard deviations to spare.

# %%
final = {label: accs[-1] for label, accs in history.items()}
for label, acc in final.items():  # every mode learns (chance is 0.1); mean - 4 sd ≈ 0.83
    assert acc > 0.83, f"{label} ended at test accuracy {acc:.4f}, below 0.83: {final}"
gap = final["FQT PSQ 8-bit"] - final["QAT"]  # 8-bit FQT ≈ QAT: mean gap -0.004, sd 0.022
assert abs(gap) < 0.09, f"8-bit FQT is {gap:+.4f} from QAT, more than 4 sd: {final}"

# %% [markdown]
# ## What one run cannot show: the gradient variance
#
# The quantizers differ in how much noise they add to each gradient (Eq. 8; see
# [PTQ, PSQ and BHQ](../theory/quantizers.md)). Measure it on one set of weights --
# the QAT-trained model, switched to 4-bit FQT with each quantizer in turn -- as the
# mean squared distance of the FQT gradient from the QAT gradient, over 4 quantizer
# draws on each of 2 batches:

# %%
model = models["QAT"]
batches = [(x_train[i : i + 128], y_train[i : i + 128]) for i in (0, 128)]
variance = {}
for name in ("ptq", "psq", "bhq"):
    quantize(model, QuantConfig(mode="fqt", grad_quantizer=name, grad_bits=4))
    measured = quantization_variance(model, classification_loss, batches, k=4)
    variance[name.upper()] = measured["total"]["variance"]
    print(f"4-bit {name.upper()}: gradient variance {variance[name.upper()]:.3g}")

# %% [markdown]
# Per-tensor PTQ adds the most, per-sample PSQ less (over 8 seeds PTQ / PSQ was
# 1.7-4.3, and one BLAS kernel gave 1.3 on this very seed: close enough that the
# check below leaves their order alone), and BHQ cuts PSQ's by another 3-7x: PTQ /
# BHQ was 8.1-18.5. On the digits at 4 bits even PTQ's variance is small next to
# SGD's own sampling noise, so accuracy barely notices; at 2 bits with a constant
# learning rate it does (`refqt reproduce`, the stress rows).

# %%
assert variance["BHQ"] < min(variance["PSQ"], variance["PTQ"]), f"BHQ is not the lowest: {variance}"
assert variance["PTQ"] > 3 * variance["BHQ"], f"PTQ's variance not 3x BHQ's (8 seeds: 8.1-18.5x): {variance}"

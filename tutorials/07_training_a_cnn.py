# %% [markdown]
# # Training a CNN at 8 → 4 bits
#
# The same model, the same data order and the same training loop, quantized four
# ways with one line each. `train_epoch` is the loop a student would write; the
# quantization mode is decided by `quantize(model, QuantConfig(...))` alone.
#
# Expect: 8-bit FQT trains like QAT; at 4 bits the per-sample quantizers (PSQ, BHQ)
# keep up, while per-tensor PTQ pays for its larger variance.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np

from refqt.data import load_digits, train_test_split
from refqt.experiments.training import evaluate, train_epoch
from refqt.fqt import QuantConfig, quantize
from refqt.models import SmallCNN
from refqt.optim import SGD
from refqt.optim.schedules import CosineSchedule

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
    history[label] = accs
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
# The numbers this tutorial checks (the digits are easy, so the gaps are small;
# the point is the method, not the data set):

# %%
final = {label: accs[-1] for label, accs in history.items()}
assert final["QAT"] > 0.95
assert abs(final["FQT PSQ 8-bit"] - final["QAT"]) < 0.02  # 8-bit FQT ≈ QAT
assert final["FQT BHQ 4-bit"] > 0.95

import numpy as np

from refqt.data import load_digits, train_test_split
from refqt.experiments.training import classification_loss, evaluate, train_epoch
from refqt.fqt import QuantConfig, quantize
from refqt.models import SmallCNN
from refqt.optim import SGD
from refqt.stats import quantization_variance, sampling_variance, unbiasedness_test

x, y = load_digits()  # the 1,797 bundled 8×8 digits
x_train, y_train, x_test, y_test = train_test_split(x, y, seed=0)

# Fully quantized training: 8-bit forward, 4-bit BHQ gradients; model code untouched.
config = QuantConfig(mode="fqt", grad_quantizer="bhq", grad_bits=4)
model = quantize(SmallCNN(rng=np.random.default_rng(0)), config)
opt = SGD(model.parameters(), lr=0.05, momentum=0.9)
for epoch in range(2):
    train_epoch(model, opt, x_train, y_train, 16, np.random.default_rng(epoch))
print(f"test accuracy: {evaluate(model, x_test, y_test)['accuracy']:.3f}")

# The statistics the paper is about, measured on this model.
loss = classification_loss
batches = [(x_train[i : i + 128], y_train[i : i + 128]) for i in range(0, 512, 128)]
test = unbiasedness_test(model, loss, batches[0], np.random.default_rng(0), k=32)
print(f"Theorem 1 (E[FQT grad] = QAT grad) rejected at alpha=1e-6: {test['rejected']}")
quant = quantization_variance(model, loss, batches[:2], k=8)["total"]["variance"]
samp = sampling_variance(model, loss, batches)["total"]["variance"]
print(f"quantization variance / sampling variance: {quant / samp:.3f}")

# %% [markdown]
# # The same code on CuPy
#
# refqt's array code goes through the array API standard (`xp = namespace(x)`), so
# one implementation runs on NumPy, on CuPy (an NVIDIA GPU) and on `array_api_strict`,
# a CPU library that rejects anything outside the standard. Only `refqt/backend.py`
# knows which library is which.
#
# Randomness is explicit: the quantizers take a `numpy.random.Generator`, so the same
# seed gives the **same roundings on every backend**. On the CPU backends the noise codes
# are cut from the generator's draws; on CuPy the GPU algorithms make them on the device,
# from one 64-bit key drawn from the generator (counter noise, see
# [GPU quantizers](../gpu-quantizers.md)), and NumPy reproduces them bit for bit inside
# `emulate_device()`. This tutorial checks that on every backend this machine has;
# without a GPU the CuPy part is skipped (and `array_api_strict` stands in for it, if
# installed -- it comes with `pip install -e ".[test]"`).

# %%
import numpy as np

from refqt import Tensor, ops
from refqt.backend import available_backends, emulate_device, get_backend
from refqt.data import load_digits
from refqt.fqt import QuantConfig, quantize
from refqt.models import SmallCNN
from refqt.quant import BHQ

names = available_backends()
print("backends here:", names)
if "cupy" not in names:
    print("no usable GPU: the CuPy runs are skipped")

# %% [markdown]
# ## One quantizer, every backend, the same numbers
#
# `get_backend(name).asarray` moves an array there; `to_numpy` brings it back.

# %%
x = np.random.default_rng(5).standard_normal((6, 40)) * np.array([1, 10, 0.1, 5, 1e-3, 2])[:, None]
q = BHQ(4)
for name in names:
    b = get_backend(name)
    with emulate_device(name == "cupy"):  # CuPy: compare with NumPy on the device path
        reference = q(x, np.random.default_rng(9))
    got = b.to_numpy(q(b.asarray(x), np.random.default_rng(9)))
    print(f"{name:>16}: max |difference from NumPy| = {np.abs(got - reference).max():.1e}")
    np.testing.assert_allclose(got, reference, rtol=1e-12, atol=1e-12)

# %% [markdown]
# ## A whole FQT backward pass
#
# `model.to(backend)` moves the parameters; data goes with `backend.asarray`. The model
# code, the ops and the quantizers are the same lines of Python on every backend.

# %%
images, labels = load_digits()
xb, yb = images[:16].astype(np.float64), labels[:16]


def gradients(backend_name: str) -> dict[str, np.ndarray]:
    b = get_backend(backend_name)
    model = SmallCNN(channels=4, hidden=16, rng=np.random.default_rng(0), dtype=np.float64).to(b)
    quantize(model, QuantConfig(mode="fqt", grad_quantizer="bhq", grad_bits=4, seed=1))
    loss = ops.cross_entropy(model(Tensor(b.asarray(xb))), b.asarray(yb))
    loss.backward()
    where = next(model.parameters()).backend.name
    print(f"{backend_name:>16}: loss {loss.item():.6f}, parameters on {where}")
    return {n: b.to_numpy(p.grad) for n, p in model.named_parameters()}


for name in names[1:]:
    with emulate_device(name == "cupy"):
        ref = gradients("numpy")
    got = gradients(name)
    worst = max(float(np.abs(got[k] - ref[k]).max()) for k in ref)
    print(f"{name:>16}: max |gradient difference from NumPy| = {worst:.1e}")
    for k in ref:
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-9, atol=1e-12, err_msg=k)

# %% [markdown]
# On a GPU, train with `iterate_batches(..., backend=get_backend("cupy"))` and a model
# moved with `.to("cupy")`; the training loop in `refqt.experiments.training` takes a
# `backend` argument for this.

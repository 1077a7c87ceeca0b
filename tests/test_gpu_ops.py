"""The GPU paths of pooling, normalisation and the optimizers, the fused kernels, the op table and the
GPU benchmark, all checked on NumPy under ``emulate_device`` (and on CuPy where a GPU works).

* every row of the op table (tests/test_ops.py) passes its forward, finite-difference and adjoint
  checks with the GPU algorithms switched on, in float64;
* conv / pool / norm ops on the GPU path: hypothesis-drawn shapes, forward equal to the CPU path,
  finite differences and the adjoint test in float64;
* the optimizers' fused updates follow the CPU updates step by step;
* every fused kernel's CUDA body is compiled with nvcc, for the device (-ptx) and for the CPU, and
  the CPU build is checked against its NumPy twin (skipped where nvcc is absent).
"""

import ctypes
import shutil
import subprocess

import numpy as np
import pytest
import test_ops as op_table
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from refqt import ops
from refqt.backend import emulate_device, get_backend, gpu_available
from refqt.cli import main
from refqt.gpu import fused
from refqt.gpu import norm as gpu_norm
from refqt.gpu import optim as gpu_optim
from refqt.gpu import pool as gpu_pool
from refqt.gradcheck import adjoint_test, check_vjp
from refqt.optim import SGD, Adam, AdamW
from refqt.tensor import Tensor

NUMPY = get_backend("numpy")


# -- the op table, GPU algorithms on ------------------------------------------------------------


@pytest.mark.parametrize("case", op_table.TABLE, ids=lambda c: c.name)
@settings(max_examples=10)
@given(data=st.data())
def test_op_table_forward_and_gradients_under_emulation(case, data):
    example = case.draw(data)
    with emulate_device():
        op_table.check_forward(case, NUMPY, example)
        op_table.check_gradients(case, NUMPY, example)


# -- conv, pool and norm ops on the GPU path ----------------------------------------------------


def _pool_case(data):
    n, c = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    kh, kw = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    sh, sw = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    ph, pw = data.draw(st.integers(0, kh // 2)), data.draw(st.integers(0, kw // 2))
    h, w = data.draw(st.integers(max(1, kh - 2 * ph), 8)), data.draw(st.integers(max(1, kw - 2 * pw), 8))
    return (n, c, h, w), {"kernel_size": (kh, kw), "stride": (sh, sw), "padding": (ph, pw)}


def _conv_case(data):
    n, c, f = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    k = data.draw(st.sampled_from([1, 2, 3, 5]))
    s, p = data.draw(st.sampled_from([1, 2])), data.draw(st.integers(0, 2))
    h, w = data.draw(st.integers(1, 7)), data.draw(st.integers(1, 7))
    assume(k <= h + 2 * p and k <= w + 2 * p)
    return [(n, c, h, w), (f, c, k, k), (f,)], {"stride": s, "padding": p}


def _bn_case(data):
    shape = data.draw(st.sampled_from([(4, 3), (2, 3, 3, 2), (3, 1, 2, 5)]))
    return [shape, (shape[1],), (shape[1],)], {}


def _ln_case(data):
    shape = data.draw(st.sampled_from([(3, 5), (2, 3, 4), (1, 1)]))
    return [shape, (shape[-1],), (shape[-1],)], {}


def _batch_norm(x, gamma, beta):
    return ops.batch_norm(x, gamma=gamma, beta=beta, training=True)


GPU_CASES = {
    "conv2d": (lambda x, w, b, **kw: ops.conv2d(x, w, b, **kw), _conv_case),
    "max_pool2d": (ops.max_pool2d, lambda d: ([_pool_case(d)[0]], _pool_case(d)[1])),
    "avg_pool2d": (ops.avg_pool2d, lambda d: ([_pool_case(d)[0]], _pool_case(d)[1])),
    "batch_norm": (_batch_norm, _bn_case),
    "layer_norm": (ops.layer_norm, _ln_case),
}


def _draw(name, data):
    if name in ("max_pool2d", "avg_pool2d"):
        shape, params = _pool_case(data)
        return [shape], params
    return GPU_CASES[name][1](data)


@pytest.mark.parametrize("name", list(GPU_CASES))
@settings(max_examples=15)
@given(data=st.data())
def test_gpu_path_ops_match_the_cpu_path_and_their_gradients_check(name, data):
    fn = GPU_CASES[name][0]
    shapes, params = _draw(name, data)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    arrays = [rng.standard_normal(s) for s in shapes]
    cpu = fn(*[Tensor(a) for a in arrays], **params).numpy()
    cpu32 = fn(*[Tensor(a.astype(np.float32)) for a in arrays], **params).numpy()
    with emulate_device():
        gpu = fn(*[Tensor(a) for a in arrays], **params).numpy()
        gpu32 = fn(*[Tensor(a.astype(np.float32)) for a in arrays], **params).numpy()
        check_vjp(lambda *t: fn(*t, **params), arrays, np.random.default_rng(0))
        adjoint_test(lambda *t: fn(*t, **params), arrays, np.random.default_rng(1))
    np.testing.assert_allclose(gpu, cpu, rtol=1e-10, atol=1e-12)
    assert gpu32.dtype == np.float32
    np.testing.assert_allclose(gpu32, cpu32, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["max_pool2d", "avg_pool2d", "batch_norm", "layer_norm"])
def test_gpu_gradients_equal_the_cpu_gradients(name, rng):
    """The backward of the GPU path gives the CPU path's gradients (not only gradients that check)."""
    fn = GPU_CASES[name][0]
    params = {"kernel_size": 3, "stride": 2, "padding": 1} if name.endswith("pool2d") else {}
    features = {"batch_norm": 3, "layer_norm": 2}.get(name)
    shapes = [(4, 3, 5, 2)] + ([(features,)] * 2 if features else [])
    arrays = [rng.standard_normal(s) for s in shapes]
    cot = None
    grads = []
    for emulate in (False, True):
        with emulate_device(emulate):
            tensors = [Tensor(a, requires_grad=True) for a in arrays]
            out = fn(*tensors, **params)
            cot = rng.standard_normal(out.shape) if cot is None else cot
            out.backward(cot)
            grads.append([t.grad for t in tensors])
    for cpu, gpu in zip(*grads, strict=True):
        np.testing.assert_allclose(gpu, cpu, rtol=1e-10, atol=1e-12)


def test_max_pool_gradient_goes_to_the_first_maximum_on_the_gpu_path():
    x = np.array([[[[1.0, 3.0], [3.0, 2.0]]]])
    with emulate_device():
        t = Tensor(x, requires_grad=True)
        ops.max_pool2d(t, 2).sum().backward()
    np.testing.assert_array_equal(t.grad, [[[[0.0, 1.0], [0.0, 0.0]]]])


def test_batch_norm_running_statistics_on_the_gpu_path(rng):
    x = rng.standard_normal((6, 3, 2, 2))
    stats = []
    for emulate in (False, True):
        rm, rv = np.zeros(3), np.ones(3)
        with emulate_device(emulate):
            ops.batch_norm(Tensor(x), gamma=Tensor(np.ones(3)), beta=Tensor(np.zeros(3)),
                           running_mean=rm, running_var=rv, training=True)  # fmt: skip
        stats.append((rm, rv))
    np.testing.assert_allclose(stats[1][0], stats[0][0], rtol=1e-12)
    np.testing.assert_allclose(stats[1][1], stats[0][1], rtol=1e-12)


def test_dispatch_reaches_the_gpu_modules_only_under_emulation(monkeypatch, rng):
    calls = []
    for module, names in (
        (gpu_pool, ["max_pool", "max_pool_grad", "avg_pool", "avg_pool_grad"]),
        (gpu_norm, ["normalize", "grad_input"]),
        (gpu_optim, ["sgd_update", "adam_update"]),
    ):
        for n in names:
            real = getattr(module, n)
            monkeypatch.setattr(module, n, lambda *a, _n=n, _r=real, **k: calls.append(_n) or _r(*a, **k))

    def run():
        x = Tensor(rng.standard_normal((2, 3, 4, 4)), requires_grad=True)
        g, b = Tensor(np.ones(3), requires_grad=True), Tensor(np.zeros(3), requires_grad=True)
        h = ops.batch_norm(x, gamma=g, beta=b, training=True)
        h = ops.layer_norm(h, Tensor(np.ones(4)), Tensor(np.zeros(4)))
        (ops.max_pool2d(h, 2).sum() + ops.avg_pool2d(h, 2).sum()).backward()
        SGD([x], lr=0.1, momentum=0.9).step()
        Adam([g], lr=0.1).step()

    run()
    assert calls == []
    with emulate_device():
        run()
    expected = {"max_pool", "max_pool_grad", "avg_pool", "avg_pool_grad", "normalize", "grad_input"}
    assert expected | {"sgd_update", "adam_update"} == set(calls)


# -- optimizers ------------------------------------------------------------------------------------

OPTIMIZERS = {
    "sgd": lambda p: SGD(p, lr=0.1),
    "sgd-decay": lambda p: SGD(p, lr=0.1, weight_decay=0.01),
    "momentum": lambda p: SGD(p, lr=0.1, momentum=0.9, weight_decay=0.01),
    "nesterov": lambda p: SGD(p, lr=0.1, momentum=0.9, nesterov=True),
    "adam": lambda p: Adam(p, lr=0.01, weight_decay=0.01),
    "adamw": lambda p: AdamW(p, lr=0.01),
}


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_fused_optimizer_updates_follow_the_cpu_updates(name, dtype, rtol, rng):
    w0 = rng.standard_normal((5, 4)).astype(dtype)
    grads = [rng.standard_normal((5, 4)).astype(dtype) for _ in range(4)]
    finals = []
    for emulate in (False, True):
        p = Tensor(w0.copy(), requires_grad=True)
        opt = OPTIMIZERS[name]([p])
        with emulate_device(emulate):
            for g in grads:
                p.grad = g
                opt.step()
        assert p.data.dtype == dtype
        finals.append((p.data, opt.state_dict()))
    np.testing.assert_allclose(finals[1][0], finals[0][0], rtol=rtol, atol=rtol)
    cpu_state, gpu_state = finals[0][1]["state"][0], finals[1][1]["state"][0]
    assert cpu_state.keys() == gpu_state.keys()
    for slot in cpu_state:
        np.testing.assert_allclose(gpu_state[slot], cpu_state[slot], rtol=rtol, atol=rtol)


def test_a_wrong_fused_update_would_be_caught(rng):
    """The comparison above is sharp: SGD with momentum 0.9 is not SGD with momentum 0.8."""
    w0, g = rng.standard_normal(6), rng.standard_normal(6)
    out = []
    for mu in (0.9, 0.8):
        p = Tensor(w0.copy(), requires_grad=True)
        opt = SGD([p], lr=0.1, momentum=mu)
        with emulate_device():
            for _ in range(2):
                p.grad = g
                opt.step()
        out.append(p.data)
    assert not np.allclose(out[0], out[1], rtol=1e-5)


# -- the fused kernels' CUDA source -----------------------------------------------------------------

NVCC = shutil.which("nvcc")


def _params(spec):
    return [p.split()[-1] for p in spec.split(",")]


def _source(real):
    """All fused kernels as one .cu file: each body in a __host__ __device__ function of type ``real``."""
    parts = [f"typedef {real} T;"]
    for k in fused.ALL:
        ins, outs = _params(k.in_params), _params(k.out_params)
        args = ", ".join([f"const T {a}" for a in ins] + [f"T& {o}" for o in outs])
        parts.append(f"__host__ __device__ inline void {k.name}_op({args}) {{\n{k.operation}\n}}")
        ptrs = ", ".join([f"const T* {a}_p" for a in ins] + [f"T* {o}_p" for o in outs])
        call = ", ".join([f"{a}_p[i]" for a in ins] + [f"{o}_p[i]" for o in outs])
        parts.append(
            f"__global__ void {k.name}_kernel({ptrs}, long n) {{\n"
            f"  long i = blockIdx.x * (long)blockDim.x + threadIdx.x;\n"
            f"  if (i < n) {k.name}_op({call});\n}}"
        )
        parts.append(
            f'extern "C" void {k.name}_host({ptrs}, long n) {{\n'
            f"  for (long i = 0; i < n; i++) {k.name}_op({call});\n}}"
        )
    return "\n\n".join(parts) + "\n"


@pytest.fixture(scope="module")
def host_kernels(tmp_path_factory):
    if NVCC is None:
        pytest.skip("nvcc not installed")
    folder = tmp_path_factory.mktemp("fused")
    (folder / "k32.cu").write_text(_source("float"))
    (folder / "k64.cu").write_text(_source("double"))
    ptx = subprocess.run(
        [NVCC, "-arch=sm_90", "-ptx", "k32.cu", "-o", "k32.ptx"], cwd=folder, capture_output=True, text=True
    )
    assert ptx.returncode == 0, ptx.stderr
    lib = subprocess.run(
        [NVCC, "-arch=sm_90", "-shared", "-Xcompiler", "-fPIC", "k64.cu", "-o", "k64.so"],
        cwd=folder,
        capture_output=True,
        text=True,
    )
    assert lib.returncode == 0, lib.stderr
    return (folder / "k32.ptx").read_text(), ctypes.CDLL(str(folder / "k64.so"))


def test_fused_kernel_sources_are_ascii():
    """CuPy writes each kernel's source to a file in the locale's encoding: keep the CUDA text ASCII."""
    for k in fused.ALL:
        assert k.operation.isascii(), f"{k.name}: non-ASCII characters in its CUDA body"


def test_every_fused_kernel_compiles_for_sm_90(host_kernels):
    ptx, _ = host_kernels
    for k in fused.ALL:
        assert f"{k.name}_kernel" in ptx


@pytest.mark.parametrize("kernel", fused.ALL, ids=lambda k: k.name)
def test_fused_kernel_arithmetic_equals_its_numpy_twin(kernel, host_kernels, rng):
    """The CUDA body, built for the CPU in float64, against the NumPy twin on random inputs."""
    _, lib = host_kernels
    ins, outs = _params(kernel.in_params), _params(kernel.out_params)
    n = 257
    args = [0.5 + np.abs(rng.standard_normal(n)) for _ in ins]  # positive: sqrt and divisions are safe
    got = [np.empty(n) for _ in outs]
    pointers = [a.ctypes.data_as(ctypes.c_void_p) for a in args + got]
    getattr(lib, f"{kernel.name}_host")(*pointers, ctypes.c_long(n))
    want = kernel.mirror(*args)
    want = want if isinstance(want, tuple) else (want,)
    assert len(want) == len(outs)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-13, atol=1e-13)


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason="no usable GPU")
@pytest.mark.parametrize("kernel", fused.ALL, ids=lambda k: k.name)
def test_fused_kernel_on_cupy_equals_its_numpy_twin(kernel, rng):
    cp = get_backend("cupy")
    args = [0.5 + np.abs(rng.standard_normal((3, 65))).astype(np.float32) for _ in _params(kernel.in_params)]
    got = kernel(cp.native, *[cp.asarray(a) for a in args])
    want = kernel.mirror(*args)
    got, want = (got, want) if isinstance(want, tuple) else ((got,), (want,))
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(cp.to_numpy(g), w, rtol=1e-5, atol=1e-6)


# -- benchmark and info ------------------------------------------------------------------------------


def test_gpu_bench_smoke_on_numpy(capsys):
    assert main(["bench", "--backend", "numpy", "--emulate-device", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    for row in ("ResNet-20 step, exact", "ResNet-20 step, QAT", "FQT-BHQ 5 bits", "conv forward + backward"):
        assert row in out
    for quantizer in ("PTQ", "PSQ per channel", "BHQ", "copy of the gradient", "gradient quantizers of the"):
        assert quantizer in out  # issue 11's rows in the same run
    assert "smoke sizes" in out


@pytest.mark.skipif(gpu_available(), reason="a GPU works here")
def test_gpu_bench_without_a_gpu_is_one_clear_line(capsys):
    assert main(["bench", "--backend", "cupy"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--backend cupy" in err and "GPU" in err


def test_info_names_the_gpu_or_says_there_is_none(capsys):
    assert main(["info"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("gpu "))
    if gpu_available():
        assert "GiB" in line and "CuPy" in line
    else:
        assert "none usable" in line


# -- a whole training step ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["exact", "qat"])
def test_resnet_training_steps_on_the_gpu_path_follow_the_cpu_path(mode):
    """Three SGD steps of a PreActResNet (stride-2 convs, 1×1 shortcuts, batch norm, pooling) in float64:
    the same losses and weights with the GPU algorithms as with the CPU ones."""
    from refqt.fqt import QuantConfig, quantize
    from refqt.models import PreActResNet

    data = np.random.default_rng(3)
    x, y = data.standard_normal((4, 3, 8, 8)), data.integers(0, 10, 4)
    runs = []
    for emulate in (False, True):
        model = quantize(PreActResNet(8, 4, 3, 10, rng=np.random.default_rng(0), dtype=np.float64),
                         QuantConfig(mode=mode))  # fmt: skip
        opt = SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        losses = []
        with emulate_device(emulate):
            for _ in range(3):
                loss = ops.cross_entropy(model(Tensor(x)), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.numpy())
        runs.append((losses, [p.numpy() for p in model.parameters()]))
    np.testing.assert_allclose(runs[1][0], runs[0][0], rtol=1e-9)
    for cpu, gpu in zip(runs[0][1], runs[1][1], strict=True):
        np.testing.assert_allclose(gpu, cpu, rtol=1e-7, atol=1e-9)


def test_a_resnet20_step_on_the_gpu_path_is_three_gemms_per_convolution(monkeypatch):
    """The issue's complaint was thousands of tiny launches per step. On the GPU path every
    convolution is one GEMM forward, one for the input gradient and one for the weight gradient
    (a batch that fits the workspace is one chunk), whatever the batch size: 21 convolutions
    (the stem has no input gradient) make 62 matmuls, and the classifier up to 3 more (how many of
    its products reach ``numpy.matmul`` is array_api_compat's business)."""
    from refqt.models import PreActResNet

    calls = []
    real = np.matmul
    monkeypatch.setattr(np, "matmul", lambda *a, **k: calls.append(1) or real(*a, **k))
    counts = []
    for batch in (2, 8):
        data = np.random.default_rng(batch)
        x, y = data.standard_normal((batch, 3, 32, 32), dtype=np.float32), data.integers(0, 10, batch)
        model = PreActResNet(20, 16, 3, 10, rng=np.random.default_rng(0))
        opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
        calls.clear()
        with emulate_device():
            loss = ops.cross_entropy(model(Tensor(x)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        counts.append(len(calls))
    assert counts[0] == counts[1] and 62 <= counts[0] <= 65, counts

"""Counter noise (refqt/gpu/noise.py): the NumPy spelling against plain Python and the CUDA source.

The CUDA ``__host__ __device__`` functions are compiled by nvcc for the host
(a shared library loaded with ctypes) and run on the CPU: the arithmetic of
the device kernels, checked bit for bit against the NumPy mirror. Every kernel
source is also compiled to PTX. Skipped where nvcc is absent.
"""

import ctypes
import shutil
import subprocess

import numpy as np
import pytest
from scipy import stats

from refqt.gpu.noise import CUDA_SOURCE, CounterNoise, codes_at, counter_key, draw_key, mix64, mix64_int
from refqt.gpu.rounding import COUNTERS, KERNEL_OPTIONS, ROUND_SOURCE, round_body, round_mirror
from refqt.gpu.variance import VARIANCE_MAP, VARIANCE_SOURCE, variance_sums_mirror
from refqt.quant.grid import minmax_grid, zero_aligned_grid

NVCC = shutil.which("nvcc")
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc not installed")


def splitmix64_outputs(seed, count):
    """The splitmix64 generator as published (state += γ, then the finaliser), in Python ints."""
    state, out = seed, []
    for _ in range(count):
        state = (state + 0x9E3779B97F4A7C15) % 2**64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) % 2**64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) % 2**64
        out.append(z ^ (z >> 31))
    return out


def test_codes_are_the_top_bits_of_splitmix64_outputs():
    for key in (0, 1, 0xDEADBEEF, 2**64 - 1, counter_key(7, 3, 11)):
        expected = [z >> 48 for z in splitmix64_outputs(key, 300)]
        assert codes_at(key, np.arange(300)).tolist() == expected


def test_known_splitmix64_value():
    # the first output of splitmix64 seeded with 0 (the published reference value)
    assert splitmix64_outputs(0, 1)[0] == 0xE220A8397B1DCDAF
    assert mix64_int(0x9E3779B97F4A7C15) == 0xE220A8397B1DCDAF
    assert int(mix64(np.array([0x9E3779B97F4A7C15], dtype=np.uint64))[0]) == 0xE220A8397B1DCDAF


def test_take_in_pieces_equals_one_take_and_reserve_skips():
    a = CounterNoise(12345)
    whole = a.take(1000)
    b = CounterNoise(12345)
    parts = np.concatenate([b.take(1), b.take(0), b.take(400), b.take(599)])
    assert np.array_equal(whole, parts)
    c = CounterNoise(12345)
    assert c.reserve(700) == 0
    assert np.array_equal(c.take(300), whole[700:])
    assert whole.dtype == np.uint16


def test_keys_depend_on_every_part_and_on_the_generator():
    keys = {counter_key(s, st, t) for s in range(3) for st in range(3) for t in range(3)}
    assert len(keys) == 27
    g1, g2 = np.random.default_rng(4), np.random.default_rng(4)
    assert draw_key(g1) == draw_key(g2)
    assert draw_key(g1) != draw_key(np.random.default_rng(5))
    with pytest.raises(TypeError, match="draw_key"):
        draw_key(4)
    with pytest.raises(TypeError, match="CounterNoise"):
        CounterNoise(1.5)


def test_codes_uniform_over_all_65536_values():
    """Chi-square of 2²² codes over every value (65535 degrees of freedom); false alarm α = 1e-6."""
    m = CounterNoise.from_seed(2026).take(1 << 22)
    counts = np.bincount(m, minlength=1 << 16)
    chi2 = float(np.sum((counts - 64.0) ** 2) / 64.0)
    p = stats.chi2.sf(chi2, df=(1 << 16) - 1)
    assert 1e-6 < p < 1 - 1e-6, (chi2, p)  # too uniform fails too (a counter is not noise)


def test_a_counter_is_caught_by_the_uniformity_test():
    m = (np.arange(1 << 22) % (1 << 16)).astype(np.uint16)  # perfectly even, not random
    counts = np.bincount(m, minlength=1 << 16)
    assert stats.chi2.sf(float(np.sum((counts - 64.0) ** 2) / 64.0), df=(1 << 16) - 1) > 1 - 1e-6


@pytest.mark.parametrize("other", [(1, 0), (0, 1)], ids=["stream", "step"])
def test_codes_independent_across_streams_and_steps(other):
    """Joint chi-square of the top 5 bits of paired codes (1023 dof, α = 1e-6), and lag-1 pairs."""
    n = 1 << 20
    a = CounterNoise.from_seed(9, 0, 0).take(n) >> 11
    b = CounterNoise.from_seed(9, *other).take(n) >> 11
    for first, second in ((a, b), (a[:-1], a[1:])):
        joint = np.bincount(first.astype(np.int64) * 32 + second, minlength=1024)
        expected = first.size / 1024
        p = stats.chi2.sf(float(np.sum((joint - expected) ** 2) / expected), df=1023)
        assert p > 1e-6
    same = CounterNoise.from_seed(9, 0, 0).take(n) >> 11  # caught: a stream paired with itself
    joint = np.bincount(a.astype(np.int64) * 32 + same, minlength=1024)
    assert stats.chi2.sf(float(np.sum((joint - n / 1024) ** 2) / (n / 1024)), df=1023) < 1e-6


# -- the CUDA source, compiled for the host -----------------------------------------------------
def host_round_function(counter, ctype):
    """An extern "C" host loop running the kernel body on every element, grid numbers per row."""
    return (
        f"""
extern "C" void round_{counter}_{ctype}(const {ctype}* xs, const {ctype}* los, const {ctype}* invs,
        const {ctype}* steps, {ctype} kmin, {ctype} kmax, unsigned long long key, unsigned long long start,
        int has_lo, const long long* rows, long long d, {ctype}* qs, long long n) {{
    typedef {ctype} X; typedef {ctype} W;
    for (long long i = 0; i < n; ++i) {{
        X x = xs[i]; W lo = los[i / d]; W inv_step = invs[i / d]; W step = steps[i / d]; X q;
        long long row = rows[i / d];
        (void)row;
"""
        + round_body(counter)
        + """
        qs[i] = q;
    }
}
"""
    )


HOST_VARIANCE = (
    r"""
extern "C" void variance_float(const float* xs, const float* los, const float* invs, const float* steps,
        float kmin, float kmax, int has_lo, long long d, double* out, long long n) {
    typedef float X; typedef float W;
    for (long long i = 0; i < n; ++i) {
        X x = xs[i]; W lo = los[i / d]; W inv_step = invs[i / d]; W step = steps[i / d];
        out[i] = """
    + VARIANCE_MAP
    + r""";
    }
}
"""
)

HOST_WRAPPERS = (
    "#include <cmath>\nusing std::floor;\n"
    + ROUND_SOURCE
    + VARIANCE_SOURCE
    + HOST_VARIANCE
    + r"""
extern "C" void codes(unsigned long long key, const long long* c, unsigned short* out, long long n) {
    for (long long i = 0; i < n; ++i)
        out[i] = (unsigned short)refqt_noise_code(key, (unsigned long long)c[i]);
}
"""
    + "".join(host_round_function(c, t) for c in COUNTERS for t in ("float", "double"))
)


@pytest.fixture(scope="module")
def host_lib(tmp_path_factory):
    if NVCC is None:
        pytest.skip("nvcc not installed")
    d = tmp_path_factory.mktemp("cuda_host")
    src = d / "noise.cu"
    src.write_text(HOST_WRAPPERS)
    lib = d / "libnoise.so"
    # the __host__ __device__ functions compiled for the CPU, called from host loops
    run = subprocess.run(
        [NVCC, "-x", "cu", "-shared", "-Xcompiler", "-fPIC,-ffp-contract=off", "-o", str(lib), str(src)],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    return ctypes.CDLL(str(lib))


@needs_nvcc
def test_cuda_codes_equal_numpy_bit_for_bit(host_lib):
    rng = np.random.default_rng(0)
    counters = np.concatenate([np.arange(5000), rng.integers(0, 2**62, 5000)]).astype(np.int64)
    for key in (0, 2**64 - 1, counter_key(3, 1, 4), draw_key(rng)):
        out = np.empty(counters.size, dtype=np.uint16)
        host_lib.codes(
            ctypes.c_ulonglong(key),
            counters.ctypes.data_as(ctypes.c_void_p),
            out.ctypes.data_as(ctypes.c_void_p),
            ctypes.c_longlong(counters.size),
        )
        assert np.array_equal(out, codes_at(key, counters))


def ptr(a):
    return a.ctypes.data_as(ctypes.c_void_p)


@needs_nvcc
@pytest.mark.parametrize("zero_origin", [False, True])
def test_cuda_variance_map_equals_the_numpy_mirror(host_lib, zero_origin):
    """Per element p(1 − p)·step² bit for bit; the sums agree to float64 round-off."""
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((30, 101)) * np.exp(rng.standard_normal((30, 1)))).astype(np.float32)
    x[:, :7] = 0.0
    if zero_origin:
        grid = zero_aligned_grid(float(x.min()), float(x.max()), 7, np, np.float32)
    else:
        grid = minmax_grid(x.min(axis=1, keepdims=True), x.max(axis=1, keepdims=True), 7, np.float32)
    per_row = [
        np.ascontiguousarray(np.broadcast_to(p, (30, 1)), dtype=np.float32)
        for p in (np.zeros((1, 1)) if grid.lo is None else grid.lo, grid.inv_step, grid.step)
    ]
    got = np.empty(x.shape)
    host_lib.variance_float(
        *(ptr(a) for a in (x, *per_row)),
        ctypes.c_float(float(grid.kmin[0, 0])),
        ctypes.c_float(float(grid.kmax[0, 0])),
        ctypes.c_int(grid.lo is not None),
        ctypes.c_longlong(x.shape[1]),
        ptr(got),
        ctypes.c_longlong(x.size),
    )
    want = grid.elementwise_variance(x).astype(np.float64)
    assert np.array_equal(got, want)
    np.testing.assert_allclose(variance_sums_mirror(x, grid, axis=1), got.sum(axis=1), rtol=1e-12)
    assert float(variance_sums_mirror(x, grid)) == pytest.approx(got.sum(), rel=1e-12)


@needs_nvcc
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("grid_kind", ["rows", "zero-aligned"])
@pytest.mark.parametrize("counter", sorted(COUNTERS))
def test_cuda_rounding_equals_the_numpy_mirror_bit_for_bit(host_lib, dtype, grid_kind, counter):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((40, 257)) * np.exp(rng.standard_normal((40, 1)))).astype(dtype)
    if grid_kind == "zero-aligned":  # PTQ's grid: origin 0
        grid = zero_aligned_grid(float(x.min()), float(x.max()), 15, np, dtype)
    else:  # PSQ's grid: one (lo, step) per row
        grid = minmax_grid(x.min(axis=1, keepdims=True), x.max(axis=1, keepdims=True), 15, dtype)
    assert (grid.lo is None) == (grid_kind == "zero-aligned")
    rows = rng.permutation(40) if counter == "rows" else None
    key, start = draw_key(rng), 977
    expected = round_mirror(x, grid, key, start, np.empty_like(x), rows)
    got = np.empty_like(x)
    per_row = [
        np.ascontiguousarray(np.broadcast_to(p, (40, 1)), dtype=dtype)
        for p in (np.zeros((1, 1)) if grid.lo is None else grid.lo, grid.inv_step, grid.step)
    ]
    c = ctypes.c_float if dtype == np.float32 else ctypes.c_double
    fn = getattr(host_lib, f"round_{counter}_{'float' if dtype == np.float32 else 'double'}")
    row_ids = np.arange(40, dtype=np.int64) if rows is None else rows.astype(np.int64)
    fn(
        *(ptr(a) for a in (x, *per_row)),
        c(float(grid.kmin[0, 0])),
        c(float(grid.kmax[0, 0])),
        ctypes.c_ulonglong(key),
        ctypes.c_ulonglong(start),
        ctypes.c_int(grid.lo is not None),
        ptr(row_ids),
        ctypes.c_longlong(x.shape[1]),
        ptr(got),
        ctypes.c_longlong(x.size),
    )
    bits = np.uint64 if dtype == np.float64 else np.uint32
    assert np.array_equal(got.view(bits), expected.view(bits))
    assert not np.array_equal(expected, round_mirror(x, grid, key + 1, start, np.empty_like(x), rows))


def kernel_ptx_sources():
    """Each CuPy kernel source of refqt/gpu (noise, both roundings) as a standalone __global__ kernel."""
    sources = {
        "noise": CUDA_SOURCE
        + r"""
extern "C" __global__ void codes(unsigned long long key, unsigned short* m, long long n) {
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i < n) m[i] = (unsigned short)refqt_noise_code(key, (unsigned long long)i);
}
"""
    }
    for counter in COUNTERS:
        sources[f"round-{counter}"] = (
            ROUND_SOURCE
            + r"""
typedef float X; typedef float W;
extern "C" __global__ void refqt_stochastic_round(const X* xs, const W* los, const W* invs, const W* steps,
        W kmin, W kmax, unsigned long long key, unsigned long long start, int has_lo, const long long* rows,
        long long d, X* qs, long long n) {
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i >= n) return;
    X x = xs[i]; W lo = los[i / d]; W inv_step = invs[i / d]; W step = steps[i / d]; X q;
    long long row = rows[i / d];
    (void)row;
"""
            + round_body(counter)
            + r"""
    qs[i] = q;
}
"""
        )
    sources["variance"] = (
        VARIANCE_SOURCE
        + r"""
typedef float X; typedef float W;
extern "C" __global__ void variance(const X* xs, const W* los, const W* invs, const W* steps, W kmin, W kmax,
        int has_lo, long long d, double* out, long long n) {
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i >= n) return;
    X x = xs[i]; W lo = los[i / d]; W inv_step = invs[i / d]; W step = steps[i / d];
    out[i] = """
        + VARIANCE_MAP
        + r""";
}
"""
    )
    return sources


@needs_nvcc
@pytest.mark.parametrize("name", sorted(kernel_ptx_sources()))
def test_kernel_sources_compile_to_ptx(tmp_path, name):
    src = tmp_path / f"{name}.cu"
    src.write_text(kernel_ptx_sources()[name])
    fmad = [o.replace("--fmad=", "-fmad=") for o in KERNEL_OPTIONS]
    run = subprocess.run(
        [NVCC, "-arch=sm_90", "-ptx", *fmad, "-o", str(tmp_path / f"{name}.ptx"), str(src)],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert ".entry" in (tmp_path / f"{name}.ptx").read_text()

"""ZeroPSQ (PSQ with 0 on every row's / channel's grid) against its definition.

False-alarm rates, for a correct quantizer, as in tests/test_quant_stats.py:

* unbiasedness: per element, Bernstein's inequality for the mean of S draws
  with the exact variance and the a-priori bound (one step) on |Q − x|, at
  level 1e-6 / (number of elements): ≤ 1e-6 per test, no normal approximation;
* E‖Q − x‖² against ``conditional_variance``: 5.5 standard errors (CLT),
  ≈ 4e-8 per test.

The grid is checked against the scalar per-tensor rule
(:func:`refqt.quant.grid.zero_aligned_params`) applied to each row alone, and
directly: 0 is a level and the levels cover the row. The harness rejects a
zero-aligned grid whose step forgets the positive side (a real way to get it
wrong), and plain PSQ moves exact zeros (so the zero test has power).
"""

import math

import numpy as np
import pytest
from bernstein import bernstein_rejections
from hypothesis import given
from hypothesis import strategies as st

from refqt.fqt import QuantConfig
from refqt.quant import PSQ, ZeroPSQ, fast, make_gradient_quantizer
from refqt.quant.grid import AffineGrid, zero_aligned_params
from refqt.quant.psq_zero import zero_aligned_rows

SAMPLES = 20000
AXES = ["row", "channel"]


def relu_like(shape=(8, 12), sigma=1.5, zeros=0.5, seed=0):
    """Rows over decades of scale, both signs, a fraction ``zeros`` of exact zeros (a ReLU's gradient)."""
    r = np.random.default_rng(seed)
    scale = np.exp(sigma * r.standard_normal((shape[0],) + (1,) * (len(shape) - 1)))
    x = r.standard_normal(shape) * scale
    x[r.random(shape) < zeros] = 0.0
    return x


def one_step(q, x):
    _, grid, _ = q._prepare(x)
    return np.broadcast_to(grid.step, (x.shape[0], x.size // x.shape[0])).reshape(x.shape)


# -- the grid, from the definition ------------------------------------------------------------------
@given(seed=st.integers(0, 10**6), bits=st.integers(1, 16))
def test_rows_follow_the_scalar_rule(seed, bits):
    r = np.random.default_rng(seed)
    mins = np.where(r.random(20) < 0.3, 0.0, -np.exp(4 * r.standard_normal(20)))
    maxs = np.where(r.random(20) < 0.3, 0.0, np.exp(4 * r.standard_normal(20)))
    lo, step, kmin = zero_aligned_rows(mins, maxs, 2**bits - 1)
    for i in range(20):
        assert (lo[i], step[i], kmin[i]) == zero_aligned_params(mins[i], maxs[i], 2**bits - 1)


@pytest.mark.parametrize("axis", AXES)
@pytest.mark.parametrize("bits", [2, 3, 5, 8])
def test_zero_is_a_level_and_the_levels_cover_each_row(axis, bits):
    x = relu_like((6, 3, 4), seed=bits)
    q = ZeroPSQ(bits, axis=axis)
    _, grid, _ = q._prepare(x)
    assert grid.lo is None  # the origin 0 is a grid point of every row
    step = np.broadcast_to(grid.step, (6, 12)).astype(np.float64)
    kmin = np.broadcast_to(grid.kmin, (6, 12))
    x2 = x.reshape(6, 12)
    assert np.all(kmin <= 0) and np.all(kmin + q.levels >= 0)
    assert np.all(kmin * step <= np.minimum(x2, 0) + 1e-9 * step)  # lowest level ≤ every entry
    assert np.all((kmin + q.levels) * step >= np.maximum(x2, 0) - 1e-9 * step)  # highest ≥


# -- stochastic properties -----------------------------------------------------------------------
@pytest.mark.parametrize("axis", AXES)
@pytest.mark.parametrize("bits", [2, 4])
def test_unbiased_and_variance_matches_monte_carlo(axis, bits):
    x = relu_like((8, 3, 4), seed=10 + bits)
    q = ZeroPSQ(bits, axis=axis)
    samples = q.quantize(x, q.uniform(x, np.random.default_rng(100 + bits), samples=SAMPLES))
    assert bernstein_rejections(samples, x, q.elementwise_variance(x), one_step(q, x)) == 0
    sq = np.sum((samples - x) ** 2, axis=(1, 2, 3))
    cv = q.conditional_variance(x)
    assert abs(sq.mean() - cv) <= 5.5 * sq.std() / math.sqrt(SAMPLES) + 1e-4 * cv
    assert cv <= q.variance_bound(x)


class ForgetsThePositiveSide(ZeroPSQ):
    """A wrong zero-aligned grid: step = −min/q0 only, so the top level can fall short of max."""

    def _grid(self, y2, fast_path, shape):
        _, _, kmin = self._zero_grid(y2, fast_path, shape)
        mins = np.minimum(y2.min(axis=1), 0.0)
        step = np.where(kmin < 0, mins / np.where(kmin < 0, kmin, 1.0), np.abs(y2).max(axis=1) / self.levels)
        step = np.maximum(step, 1e-30)[:, None]
        kmin = kmin[:, None]
        return AffineGrid(step, 1.0 / step, kmin, kmin + self.levels, self.levels)


def test_harness_rejects_a_grid_that_does_not_cover_the_row():
    x = relu_like(seed=3)
    x[:, 0] = -0.2 * np.abs(x).max(axis=1)  # a short negative side: q0 is small, −min/q0 too fine
    good, bad = ZeroPSQ(2), ForgetsThePositiveSide(2)
    u = good.uniform(x, np.random.default_rng(3), samples=SAMPLES)
    var, bound = good.elementwise_variance(x), one_step(good, x)
    assert bernstein_rejections(good.quantize(x, u), x, var, bound) == 0
    assert bernstein_rejections(bad.quantize(x, u), x, var, bound) > 0


@pytest.mark.parametrize("axis", AXES)
@pytest.mark.parametrize("bits", [2, 3, 4, 8, 16])
def test_exact_zeros_stay_exactly_zero(axis, bits):
    x = relu_like((16, 4, 5), zeros=0.75, seed=bits).astype(np.float32)
    zeros = x == 0
    q = ZeroPSQ(bits, axis=axis)
    for seed in range(20):
        assert np.all(q(x, np.random.default_rng(seed))[zeros] == 0)
    assert np.all(q.elementwise_variance(x)[zeros] == 0)


def test_plain_psq_moves_exact_zeros():
    """The zero test has power: plain PSQ rounds most exact zeros of mixed-sign rows away from 0."""
    x = relu_like((16, 20), zeros=0.75, seed=1)
    moved = PSQ(2)(x, np.random.default_rng(0))[x == 0] != 0
    assert moved.mean() > 0.3


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_step_at_most_twice_psqs(bits):
    """Aligning 0 costs at most a doubled step per row: Δ_i ≤ 2·R_i/B (so ≤ 4× PSQ's bound).

    Measured on 32×64 iid Gaussian rows, the exact variance over PSQ's: 2.25 at
    2 bits, 1.44 at 3, 1.19 at 4, 1.02 at 8 (docs/theory/quantizers.md).
    """
    x = np.random.default_rng(bits).standard_normal((256, 16)) * np.exp(
        np.random.default_rng(0).random((256, 1))
    )
    x[:64] -= x[:64].max(axis=1, keepdims=True) * np.linspace(0, 1.2, 64)[:, None]  # lopsided signs too
    b = 2**bits - 1
    _, grid, _ = ZeroPSQ(bits)._prepare(x)
    ranges = np.ptp(x, axis=1)
    assert np.all(grid.step[:, 0] <= 2 * ranges / b * (1 + 1e-12))
    assert ZeroPSQ(bits).variance_bound(x) <= 4 * PSQ(bits).variance_bound(x)


@given(seed=st.integers(0, 10**6), bits=st.integers(1, 12), sigma=st.floats(0, 3))
def test_conditional_variance_below_bound(seed, bits, sigma):
    x = relu_like((1 + seed % 9, 1 + seed % 7), sigma=sigma, seed=seed)
    for axis in AXES:
        q = ZeroPSQ(bits, axis=axis)
        assert q.conditional_variance(x) <= q.variance_bound(x) * (1 + 1e-9) + 1e-300


# -- fast path -----------------------------------------------------------------------------------
@pytest.fixture(params=[1 << 15, 8], ids=["chunk-default", "chunk-8"])
def small_chunks(request, monkeypatch):
    monkeypatch.setattr(fast, "CHUNK", request.param)
    return request.param


@pytest.mark.parametrize("axis", AXES)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("shape", [(7, 5), (3, 2, 19), (33, 1), (4, 3, 5, 2)])
def test_fast_equals_reference_bit_for_bit(axis, dtype, shape, small_chunks):
    x = relu_like(shape, sigma=2.0, zeros=0.3, seed=sum(shape)).astype(dtype)
    x[0] = np.abs(x[0])  # one-signed rows too
    for bits in (1, 2, 4, 8, 16):
        q = ZeroPSQ(bits, axis=axis)
        got = q(x, np.random.default_rng(bits))
        np.testing.assert_array_equal(got, q.reference(x, np.random.default_rng(bits)), err_msg=f"{q}")
        assert got.dtype == x.dtype


def test_names_in_the_factory_and_the_config():
    assert repr(make_gradient_quantizer("psq-zero", 4)) == "ZeroPSQ(bits=4)"
    assert make_gradient_quantizer("psq-zero-column", 4).axis == "column"
    config = QuantConfig(mode="fqt", grad_quantizer="psq-zero", grad_bits=4)
    assert config.resolved_weight_grad_quantizer == "psq-zero-column"

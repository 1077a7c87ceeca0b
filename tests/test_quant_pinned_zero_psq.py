"""ZeroPSQ pinned where the mutation run found its tests blind (docs/testing.md).

Deterministic (no false alarms): expectations are taken by quadrature over the
noise, not by sampling. For a grid step ``s`` the noise ``u`` runs over the
``M`` midpoints ``(m + ½)/M``; the mean of ``⌊y + u⌋`` over them differs from
``y`` by at most ``1/(2M)`` steps, so with ``M = 1024`` a bias of 1e-3 step
is caught and an unbiased quantizer always passes.

* ``zero_aligned_rows`` equals the scalar rule row by row also on ranges that
  do not contain 0 (the range must be widened to contain it) and on a positive
  side below round-off (``q0`` must be capped at ``B − 1``);
* ZeroPSQ's grid is that rule's, also for float64 rows far below float32's
  smallest normal number (the grid must be built in the input's dtype);
* the 1-bit fallback (the plain min/max grid, ``lo = min``) is unbiased;
* the bound is ``D/4·Σ step_i²`` over rows that are not all zero, rebuilt here
  from the scalar rule, and is attained to within the few entries that pin
  each row's range (so a bound loose by any factor above 1.01 fails);
* ranges too wide for float64 are refused naming the quantizer, ranges just
  inside are quantized.
"""

import numpy as np
import pytest

from refqt.quant import NonFiniteInputError, ZeroPSQ
from refqt.quant.grid import zero_aligned_params
from refqt.quant.psq_zero import zero_aligned_rows

M = 1024
BIG = float(np.finfo(np.float64).max)

# (min, max) of rows: both signs, positive only (min in (0, 1) and above 1), negative only,
# all zero, and a positive side below round-off of the negative one (q0 would round to B)
RANGES = [
    (-3.0, 5.0),
    (0.25, 0.75),
    (0.5, 3.0),
    (2.0, 9.0),
    (-4.0, -0.5),
    (-0.3, -0.1),
    (0.0, 0.0),
    (-1.0, 1e-20),
]


def quadrature_mean(q, x):
    """E[Q(x)] over the noise, by the midpoint rule on M points (exact to 1/(2M) step)."""
    u = np.broadcast_to(((np.arange(M) + 0.5) / M).reshape((M,) + (1,) * x.ndim), (M, *x.shape))
    return q.quantize(x, np.ascontiguousarray(u)).mean(axis=0)


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 8, 16])
def test_rows_follow_the_scalar_rule_on_every_kind_of_range(bits):
    mins, maxs = np.array(RANGES).T
    lo, step, kmin = zero_aligned_rows(mins, maxs, 2**bits - 1)
    assert lo.dtype == step.dtype == kmin.dtype == np.float64
    for i, (a, b) in enumerate(RANGES):
        assert (lo[i], step[i], kmin[i]) == zero_aligned_params(a, b, 2**bits - 1)


def test_float32_ranges_give_float64_grids_equal_to_the_scalar_rule():
    mins, maxs = np.array(RANGES, dtype=np.float32).T
    lo, step, kmin = zero_aligned_rows(mins, maxs, 15)
    assert lo.dtype == step.dtype == kmin.dtype == np.float64
    for i in range(len(RANGES)):
        assert (lo[i], step[i], kmin[i]) == zero_aligned_params(float(mins[i]), float(maxs[i]), 15)


def test_no_ranges_give_empty_grids():
    lo, step, kmin = zero_aligned_rows(np.zeros(0), np.zeros(0), 15)
    assert lo.shape == step.shape == kmin.shape == (0,)


def rows_with_ranges(ranges, d=6):
    """One row per (min, max): the two ends, and the rest spread evenly between them."""
    return np.array([np.linspace(a, b, d)[np.r_[0, d - 1, 1 : d - 1]] for a, b in ranges])


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("scale", [1.0, 1e-300])
def test_the_quantizers_grid_is_the_scalar_rule_per_row(bits, scale):
    """Also on float64 rows ~1e-300 wide: their steps are far below float32's smallest normal."""
    x = rows_with_ranges(RANGES) * scale
    q = ZeroPSQ(bits)
    enc = q.encode(x, np.full(x.shape, 0.5))
    step = np.broadcast_to(np.asarray(enc.grid.step, dtype=np.float64), x.shape)[:, 0]
    kmin = np.broadcast_to(np.asarray(enc.grid.kmin), x.shape)[:, 0]
    for i, (a, b) in enumerate(RANGES):
        if a == b == 0.0:
            continue  # an all-zero row: any grid holding 0 returns it exactly
        _, want_step, want_kmin = zero_aligned_params(a * scale, b * scale, q.levels)
        assert step[i] == pytest.approx(want_step, rel=1e-12, abs=0)
        assert kmin[i] == want_kmin


@pytest.mark.parametrize("axis", ["row", "channel"])
@pytest.mark.parametrize("bits", [1, 2, 4])
def test_unbiased_by_quadrature_over_the_noise(axis, bits):
    """Within 1/(2M) step of x for every element; 1 bit with both signs is the min/max fallback."""
    x = rows_with_ranges(RANGES).reshape(len(RANGES), 2, 3)
    if axis == "channel":
        x = np.moveaxis(x, 0, 1).copy()  # (2, 8, 3): eight channels with the ranges above
    q = ZeroPSQ(bits, axis=axis)
    _, grid, _ = q._prepare(x)
    step = np.broadcast_to(np.asarray(grid.step, dtype=np.float64), (x.shape[0], x.size // x.shape[0]))
    bias = np.abs(quadrature_mean(q, x) - x).reshape(step.shape)
    assert np.all(bias <= step / (2 * M) * (1 + 1e-6) + 1e-15)


def test_one_bit_rows_with_both_signs_use_the_min_max_grid():
    x = rows_with_ranges([(-3.0, 5.0), (-1.0, 1.0)])
    q = ZeroPSQ(1)
    out = q.quantize(x, np.random.default_rng(0).random((4, *x.shape)))
    for i, row in enumerate(x):
        assert set(np.unique(out[:, i])) <= {row.min(), row.max()}


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_bound_is_rebuilt_from_the_scalar_rule_and_attained(bits):
    """Rows: two entries pin the range, the rest sit at bin midpoints (p = ½): Var → bound."""
    d, levels = 400, 2**bits - 1
    x = np.zeros((len(RANGES), d))
    want = 0.0
    for i, (a, b) in enumerate(RANGES):
        if a == b == 0.0:
            continue  # an all-zero row adds nothing to the bound
        _, step, kmin = zero_aligned_params(a, b, levels)
        k = np.random.default_rng(i).integers(kmin, kmin + levels, d)  # bins inside the grid
        mid = (k + 0.5) * step
        x[i] = np.clip(mid, a, b)
        x[i, :2] = a, b
        want += d * step * step / 4.0
    q = ZeroPSQ(bits)
    bound = q.variance_bound(x)
    assert bound == pytest.approx(want, rel=1e-12, abs=0)
    assert q.conditional_variance(x) <= bound * (1 + 1e-12)
    inside = [i for i, (a, b) in enumerate(RANGES) if a != b and b - a > 1e-10]
    v = q.elementwise_variance(x)
    # entries at midpoints strictly inside the range reach step²/4: the bound is tight
    assert v[inside].sum() >= 0.95 * sum(
        d * zero_aligned_params(*RANGES[i], levels)[1] ** 2 / 4 for i in inside
    )


def test_all_zero_rows_and_empty_input_add_nothing_to_the_bound():
    x = rows_with_ranges([(-3.0, 5.0), (0.5, 3.0)])
    with_zero = np.vstack([x, np.zeros((2, x.shape[1]))])
    q = ZeroPSQ(4)
    assert q.variance_bound(with_zero) == q.variance_bound(x) > 0
    assert q.variance_bound(np.zeros((3, 4))) == 0.0
    assert q.variance_bound(np.zeros((0, 4))) == 0.0


def test_ranges_just_inside_float64_are_quantized_wider_ones_refused():
    """Just inside: one-sided rows at 4 bits, rows with both signs at 1 bit (the min/max fallback).

    (Two-sided rows whose ``−min·B`` overflows are refused on their own:
    tests/test_quant_pinned_grid.py.)
    """
    ok4 = np.array([[0.0, 0.5, 0.9 * BIG], [0.1 * BIG, 0.2 * BIG, 0.95 * BIG]])
    ok1 = np.array([[-0.45 * BIG, 0.0, 0.45 * BIG], [-0.9 * BIG, -0.5 * BIG, -0.05 * BIG]])
    for q, ok in ((ZeroPSQ(4), ok4), (ZeroPSQ(1), ok1)):
        out = q.quantize(ok, np.full(ok.shape, 0.5))
        assert np.all(np.isfinite(out))
    q = ZeroPSQ(4)
    for wide in ([[-0.6 * BIG, 0.0, 0.6 * BIG]], [[-0.9 * BIG, 0.0, 0.2 * BIG]]):
        with pytest.raises(
            NonFiniteInputError, match=r"ZeroPSQ\(bits=4\): a range max − min .* overflows float64"
        ):
            q.quantize(np.array(wide), np.full((1, 3), 0.5))
        with pytest.raises(NonFiniteInputError, match=r"ZeroPSQ\(bits=4\)"):
            q.variance_bound(np.array(wide))
    with pytest.raises(NonFiniteInputError, match=r"^zero_aligned_rows: a range"):
        zero_aligned_rows(np.array([-0.6 * BIG]), np.array([0.6 * BIG]), 15)


def test_repr_names_the_axis():
    assert repr(ZeroPSQ(4)) == "ZeroPSQ(bits=4)"
    assert repr(ZeroPSQ(4, axis="channel")) == "ZeroPSQ(bits=4, axis='channel')"

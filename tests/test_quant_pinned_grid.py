"""The per-tensor grid with 0 on it, pinned to its definition by brute force.

``zero_aligned_params(mn, mx, B)`` returns ``(lo, step, kmin)``: the grid
``lo + (kmin + j)·step``, ``j = 0 … B``. Checked here against the definition in
docs/theory/quantizers.md ("PTQ"), not against the code's own formula:

* the range is widened to contain 0; 0 is a level (except the documented 1-bit
  fallback, which is the plain min/max grid);
* the grid covers ``[min(mn, 0), max(mx, 0)]``;
* with both signs present and ``B ≥ 2``, 0 sits on level ``q0 = ⌊−mn·B/(mx − mn)⌋``
  (raised to 1 / lowered to ``B − 1`` at the ends), and the step is the smallest one
  that covers the range with 0 on that level, found by scanning the steps.

Deterministic (no false alarms).
"""

import math
import re

import numpy as np
import pytest

from refqt.quant.grid import zero_aligned_params

CASES = [
    (-3.0, 5.0),
    (-1.0, 1.0),
    (-0.01, 7.0),
    (-7.0, 0.01),
    (0.0, 2.0),
    (-2.0, 0.0),
    (0.5, 2.0),
    (-2.0, -0.5),
]


def _covers(lo, step, kmin, levels, a, b):
    bottom, top = lo + kmin * step, lo + (kmin + levels) * step
    tol = 1e-12 * max(abs(a), abs(b), 1.0)
    return bottom <= a + tol and top >= b - tol


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 8])
@pytest.mark.parametrize("mn,mx", CASES)
def test_zero_aligned_grid_covers_the_widened_range_with_zero_on_a_level(mn, mx, bits):
    levels = 2**bits - 1
    lo, step, kmin = zero_aligned_params(mn, mx, levels)
    a, b = min(mn, 0.0), max(mx, 0.0)
    assert step > 0
    assert _covers(lo, step, kmin, levels, a, b)
    if levels == 1 and a < 0 < b:  # documented fallback: the plain min/max grid
        assert (lo, step, kmin) == (a, b - a, 0)
        return
    assert lo == 0.0 and -levels <= kmin <= 0  # 0 = lo + (kmin + (−kmin))·step is level −kmin
    # no wasted range: the step is the smallest that covers [a, b] with 0 on level −kmin
    q0 = -kmin
    need = max(-a / q0 if q0 else 0.0, b / (levels - q0) if q0 < levels else 0.0)
    assert step == pytest.approx(need, rel=1e-12, abs=0)


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
@pytest.mark.parametrize("mn,mx", [c for c in CASES if c[0] < 0 < c[1]])
def test_zero_sits_on_the_authors_level(mn, mx, bits):
    levels = 2**bits - 1
    _, step, kmin = zero_aligned_params(mn, mx, levels)
    q0 = min(max(math.floor(-mn * levels / (mx - mn)), 1), levels - 1)
    assert -kmin == q0
    # brute force over candidate steps: the smallest step on a fine scan that covers the
    # range with 0 on level q0 is (to the scan's resolution) the step returned
    scan = np.linspace((mx - mn) / levels, 2 * (mx - mn), 20001)
    ok = scan[(scan * q0 >= -mn) & (scan * (levels - q0) >= mx)]
    assert abs(ok[0] - step) <= scan[1] - scan[0]


@pytest.mark.parametrize("make", ["ptq", "psq-zero"])
def test_a_range_whose_b_multiple_overflows_is_refused_in_one_line(make):
    """``−min·B`` of the zero-aligned rule must fit float64; beyond, a one-line NonFiniteInputError."""
    from refqt.quant import PTQ, NonFiniteInputError, ZeroPSQ

    q = (PTQ if make == "ptq" else ZeroPSQ)(4)
    big = np.finfo(np.float64).max
    message = rf"^{re.escape(q.label)}: a range from .* across 0, times B = 15, overflows float64"
    with pytest.raises(NonFiniteInputError, match=message):
        q(np.array([[-0.45, 0.45], [0.1, 0.2]]) * big, np.random.default_rng(0))
    # just inside the limit: quantized, finite, with 0 on the authors' level
    x = np.array([[-0.45, 0.45]]) * (big / 16)
    out = q(x, np.random.default_rng(0))
    assert np.all(np.isfinite(out))
    _, _, kmin = zero_aligned_params(x.min(), x.max(), 15)
    assert kmin == -math.floor(0.45 * 15 / 0.9)

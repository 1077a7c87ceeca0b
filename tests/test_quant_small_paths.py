"""The small-array paths' building blocks against the plain definitions they replace.

``block_householder`` takes BHQ's pre-scales ``w^(−1/3)`` with ``np.float_power``
(one C-library ``pow`` per element) instead of a Python loop of ``w ** (−1/3)``;
the two must agree bit for bit on any positive float64, or the grouping would no
longer equal the documented loop (tests/test_quant_grouping.py) on some input.
"""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

POSITIVE = st.floats(min_value=1e-300, max_value=1e300, allow_nan=False, allow_infinity=False)


@given(st.lists(POSITIVE, min_size=1, max_size=50))
def test_float_power_is_python_pow_bit_for_bit(ws):
    third = -1.0 / 3.0
    want = np.array([w**third for w in ws])
    np.testing.assert_array_equal(np.float_power(np.array(ws), third), want)


def test_float_power_is_python_pow_on_a_million_log_normal_values():
    """Where a vectorised approximation would show: ``np.power`` differs on ~5 % of these on AVX-512."""
    w = np.exp(np.random.default_rng(0).standard_normal(1 << 20) * 8.0)
    third = -1.0 / 3.0
    want = np.array([v**third for v in w.tolist()])
    np.testing.assert_array_equal(np.float_power(w, third), want)

"""The teachers' solutions (``solutions/``) run and show what the exercises ask for.

Each test runs a cut-down version of one solution (a few seconds). Nothing
here asserts one seed's training digits: exact quantities (enumerated noise,
closed-form variances) are compared with their bounds, statistical claims
with stated false-alarm rates, training runs only for their shape.
"""

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"solutions_{name}", ROOT / "solutions" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


S1, S2, S3, S4, S5, S6 = (load(f"session{i}") for i in range(1, 7))


def test_exercise_1_softplus_passes_both_gradient_checks_on_two_backends():
    for lhs, rhs in S1.exercise_1().values():  # check_vjp raises on a wrong VJP
        assert math.isclose(lhs, rhs, rel_tol=1e-6)


def test_exercise_1_a_wrong_softplus_vjp_is_caught():
    class Wrong(S1.Softplus):
        @staticmethod
        def backward(ctx, g):
            _, e = ctx.saved
            return (g / (1 + e),)  # σ(|x|) instead of σ(x): wrong for x < 0

    x = np.array([[-1.5, 0.3], [2.0, -0.2]])
    try:
        S1.check_vjp(lambda t: Wrong.apply(t), [x], np.random.default_rng(0))
    except AssertionError:
        return
    raise AssertionError("check_vjp accepted a wrong VJP")


def test_exercise_2_overwriting_keeps_half_the_gradient_of_a_times_a():
    r = S1.exercise_2()
    np.testing.assert_array_equal(r["correct"], 2 * r["a"])
    np.testing.assert_array_equal(r["overwritten"], r["a"])


def test_exercise_3_hand_written_tape_matches():
    mine, printed = S1.exercise_3()
    assert mine == printed


def test_exercise_4_exact_bias_and_variance_of_16_bit_stochastic_rounding():
    r = S2.exercise_4(np.random.default_rng(1).uniform(-3, 3, 100))
    assert 0 < r["max_bias_in_steps"] <= 2.0**-17 * (1 + 1e-9)
    assert r["max_variance_error"] <= 2.0**-17 * (1 + 1e-9)  # |q(1−q) − p(1−p)| ≤ |q − p|


def test_exercise_5_four_times_per_bit_only_from_four_bits_on():
    v = S2.exercise_5(n=2048)
    ratio = {b: v[b]["variance"] / v[b + 1]["variance"] for b in range(2, 8)}
    assert ratio[2] > 5 and ratio[3] > 5  # the zero-aligned step shrinks ~3× then ~2.7×
    assert all(3 < ratio[b] < 5 for b in range(4, 8))
    assert all(0.15 < v[b]["per_entry_over_step2"] < 0.18 for b in range(3, 9))  # ≈ 1/6


def test_exercise_6_biased_noise_needs_hundreds_of_draws():
    # Each test's false-alarm rate is ≤ 0.01, so 4 or more false alarms in 20 has
    # probability < 1e-4; the biased quantizer is rejected 90 % of the time at K = 256.
    assert S3.rejection_rate(256, 0.9, repeats=20, seed=1) >= 0.6
    assert S3.rejection_rate(256, 1.0, repeats=20, seed=1) <= 0.2
    assert S3.rejection_rate(8, 0.9, repeats=20, seed=1) <= 0.2  # too few draws to see it
    assert "tower rule" in S3.exercise_7()


def test_exercise_8_terms_are_lower_triangular_and_off_the_diagonal():
    r = S4.exercise_8(depths=(3,), hidden=16, batch=16, k=2)[3]
    terms = r["terms"]
    assert terms.shape == (4, 4) and np.all(np.triu(terms, 1) == 0)
    assert r["diagonal_share"] < 0.1  # 8-bit weight-gradient quantizers vs 4-bit input path
    assert r["by_distance"][1] == 1.0


def test_exercise_9_eq8_bound_holds_and_power_iteration_finds_the_norm():
    r = S4.exercise_9(draws=1000)
    assert math.isclose(r["norm_gamma_power_iteration"], r["norm_gamma_svd"], rel_tol=1e-6)
    assert r["term_exact"] <= r["bound"]
    # Monte Carlo against the exact term: |z| > 5 by chance has probability < 1e-6.
    assert abs(r["term_monte_carlo"] - r["term_exact"]) < 5 * r["term_monte_carlo_se"]


def test_exercise_10_gain_follows_the_spread_of_row_ranges():
    r = S5.exercise_10(n=32, d=64)
    assert r["one row dominates"]["measured"] > 32 / 2
    assert r["equal ranges"]["measured"] < 1.5
    for v in r.values():
        assert 0.7 < v["measured"] / v["predicted"] < 1.3


def test_exercise_11_leverage_sampling_is_unbiased_and_the_missing_rescale_is_caught():
    S5.property_test(examples=40)
    r = S5.exercise_11(samples=1500, alpha=1e-3)  # α: false-alarm rate of the z test
    assert r["z_correct"] < r["threshold"] < r["z_no_rescale"]
    assert abs(r["variance_measured"] - r["variance_exact"]) < 5 * r["variance_se"]


def test_exercise_12_sweep_runs_and_tabulates():
    rows = S6.sweep(bits=(2,), seeds=(0,), epochs=1, limit=96)
    assert [(r["quantizer"], r["bits"]) for r in rows] == [("ptq", 2), ("psq", 2), ("bhq", 2)]
    assert all(0 <= r["test_accuracy"] <= 1 for r in rows)
    assert S6.table(rows).count("\n") == 4


def test_exercise_13_ptq_bits_lie_between_the_two_per_bit_laws():
    r = S6.exercise_13(n_train=200, epochs=1)
    assert r["ratio_at_4_bits"] > 1  # per-tensor is worse than per-token on token rows
    low, high = r["predicted_if_4x_per_bit"], r["predicted_if_2x_per_bit"]
    assert math.floor(low) - 1 <= r["bits_needed"] <= math.ceil(high)  # −1: the 4 → 5 bit step, below
    v = r["ptq_variance"]
    # From 5 bits on the step halves per bit, so the exact variance falls between 2× and about 4× per bit;
    # from 4 to 5 bits the zero-aligned grid's step can shrink by more than 2.
    assert all(1.9 < v[b] / v[b + 1] < 4.5 for b in range(5, 12))

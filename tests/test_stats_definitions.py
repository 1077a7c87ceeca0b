"""refqt.stats against direct computations on cases small enough to do by hand.

Every estimator and every constant of a statistical test is rebuilt here from its
definition, independently of refqt.stats' own code:

* the sampling variance ``Σ_b ‖g_b − ḡ‖²/(B − 1)`` of gradients written out by hand
  (a linear loss ``⟨C, out⟩`` has ``∇W = Cᵀ X_q``, ``∇b = Σ_rows C``);
* the quantization variance around the **QAT** gradient (not the draws' mean), replayed
  with the same noise (``quantizer_state`` / ``load_quantizer_state``);
* Eq. 7's terms against their expectations from the quantizers' exact element
  variances (a two-layer linear network, where each term is a sum of σ²·weight²);
* Eq. 8's quantity from the input-path quantizer Q_b, not Q_w;
* Student-t tails and quantiles against scipy, the Bonferroni threshold of
  :func:`~refqt.stats.unbiasedness_test` against ``t_{K−1}`` at ``α/(2·L·J)``.

False alarms: the Monte-Carlo comparisons allow 5 standard errors (two-sided normal:
≈ 5.7e-7 each; seeded, so the outcome is the same on every machine). The power check
of :func:`~refqt.stats.unbiasedness_test` uses the detection limit its docstring states.
"""

import math

import numpy as np
import pytest
import scipy.stats

from refqt import Tensor
from refqt.fqt import QuantConfig, gradient_quantization, load_quantizer_state, quantize, quantizer_state
from refqt.fqt import quantized_layers as qlayers
from refqt.nn import Linear, Sequential
from refqt.quant import PTQ, make_gradient_quantizer, quantize_forward
from refqt.stats import (
    bin_usage,
    design_quantities,
    diagonal_share,
    projected_t_statistics,
    quantization_variance,
    sampling_variance,
    t_quantile_upper,
    t_tail,
    unbiasedness_test,
    variance_terms,
)


def linear_loss(model, batch):
    """``⟨C, model(X)⟩``: the output gradient is C itself, whatever the weights."""
    x, c = batch
    return (model(Tensor(x)) * Tensor(c)).sum()


def one_layer(config, n_in=3, n_out=2, bias=True):
    return quantize(
        Sequential(Linear(n_in, n_out, bias, rng=np.random.default_rng(0), dtype=np.float64)), config
    )


def two_layers(config, n_out=2):
    r = np.random.default_rng(1)
    model = Sequential(Linear(3, 4, rng=r, dtype=np.float64), Linear(4, n_out, rng=r, dtype=np.float64))
    return quantize(model, config)


def batch(seed, n=2, n_in=3, n_out=2):
    r = np.random.default_rng(seed)
    return r.standard_normal((n, n_in)), r.standard_normal((n, n_out))


def hand_gradient(x, c):
    """``[vec(∇W), ∇b]`` of ``⟨C, X_q Wᵀ + b⟩``: ``∇W = Cᵀ X_q``, ``∇b = Σ_rows C``."""
    xq = quantize_forward(x, 8, "affine")
    return np.concatenate([(c.T @ xq).reshape(-1), c.sum(axis=0)])


FQT = QuantConfig(mode="fqt", grad_quantizer="ptq", grad_bits=3, weight_grad_bits=5, seed=4)


# -- sampling variance -----------------------------------------------------------------------------


def test_sampling_variance_of_two_batches_is_half_the_squared_difference():
    """B = 2: the unbiased estimate Σ_b ‖g_b − ḡ‖²/(B − 1) is ‖g₁ − g₂‖²/2 (not /4)."""
    b1, b2 = batch(1), batch(2)
    result = sampling_variance(one_layer(FQT), linear_loss, [b1, b2])
    want = float(np.sum((hand_gradient(*b1) - hand_gradient(*b2)) ** 2) / 2)
    assert result["n_batches"] == 2
    assert result["layers"]["0"]["variance"] == pytest.approx(want, rel=1e-12)
    assert result["total"]["variance"] == pytest.approx(want, rel=1e-12)


def test_sampling_variance_and_its_standard_error_over_three_batches():
    batches = [batch(s, n=4) for s in (3, 4, 5)]
    g = np.stack([hand_gradient(*b) for b in batches])
    per_batch = np.sum((g - g.mean(axis=0)) ** 2, axis=1) * 3 / 2  # ‖g_b − ḡ‖²·B/(B − 1)
    result = sampling_variance(one_layer(FQT), linear_loss, batches)["layers"]["0"]
    assert result["variance"] == pytest.approx(np.sum((g - g.mean(axis=0)) ** 2) / 2, rel=1e-12)
    assert result["stderr"] == pytest.approx(per_batch.std(ddof=1) / math.sqrt(3), rel=1e-9)


# -- quantization variance -------------------------------------------------------------------------


def replay_draws(model, batches, k):
    """Per layer, per batch: ``(QAT gradient, k FQT draws)``, by plain backward passes."""
    out = {name: [] for name, _ in qlayers(model)}
    for b in batches:
        loss = linear_loss(model, b)

        def flat():
            return {
                name: np.concatenate([p.grad.reshape(-1) for p in (m.weight, m.bias) if p is not None])
                for name, m in qlayers(model)
            }

        model.zero_grad()
        with gradient_quantization(model, False):
            loss.backward(retain_graph=True)
        qat = flat()
        draws = {name: [] for name in out}
        for _ in range(k):
            model.zero_grad()
            loss.backward(retain_graph=True)
            for name, g in flat().items():
                draws[name].append(g)
        model.zero_grad()
        for name in out:
            out[name].append((qat[name], np.stack(draws[name])))
    return out


def test_quantization_variance_is_the_mean_squared_distance_to_the_qat_gradient():
    """Same noise replayed by hand: mean_b mean_k ‖ĝ_bk − g_b‖², around g_b (QAT), not the draws' mean."""
    model = two_layers(FQT)
    batches = [batch(s, n=3, n_out=2) for s in (6, 7)]
    state = quantizer_state(model)
    result = quantization_variance(model, linear_loss, batches, k=3)
    load_quantizer_state(model, state)
    replay = replay_draws(model, batches, k=3)
    total = 0.0
    for name, pairs in replay.items():
        sq = np.concatenate([np.sum((draws - qat) ** 2, axis=1) for qat, draws in pairs])
        assert sq.size == 6 and np.all(sq > 0)
        assert result["layers"][name]["variance"] == pytest.approx(sq.mean(), rel=1e-12)
        assert result["layers"][name]["stderr"] == pytest.approx(sq.std(ddof=1) / math.sqrt(6), rel=1e-9)
        total = total + sq
        around_mean = np.mean([np.sum((d - d.mean(axis=0)) ** 2, axis=1).mean() for _, d in pairs])
        assert not math.isclose(result["layers"][name]["variance"], around_mean, rel_tol=1e-3)
    assert result["total"]["variance"] == pytest.approx(total.mean(), rel=1e-12)
    assert (result["n_batches"], result["k"]) == (2, 3)


def test_quantization_variance_estimates_the_exact_conditional_variance():
    """One layer: ∇W = Q_w(C)ᵀ X_q, so E‖ĝ − g‖² = Σ_{o,i} Σ_n Var[Q_w(C)_no]·X_q[n, i]² (5 std errors)."""
    x, c = batch(8, n=6, n_in=4, n_out=3)
    model = one_layer(QuantConfig(mode="fqt", grad_quantizer="psq", weight_grad_bits=3, seed=2), 4, 3)
    result = quantization_variance(model, linear_loss, [(x, c)], k=400)["layers"]["0"]
    sigma2 = make_gradient_quantizer("psq-column", 3).elementwise_variance(c)
    exact = float(np.sum(sigma2.T @ quantize_forward(x, 8, "affine") ** 2))
    assert abs(result["variance"] - exact) <= 5 * result["stderr"], (result, exact)


# -- Eq. 7 term by term ----------------------------------------------------------------------------


def test_variance_terms_equal_their_exact_expectations_on_a_linear_network():
    """Two linear layers, loss ⟨C, out⟩. With the forward-quantized operands X_q, W2_q, h_q:

    * terms[1, 1] = Σ Var[Q_w1(C)]·h_q²          (layer 1's weight path on its own ∇W)
    * terms[1, 0] = Σ_{n,o} Var[Q_b1(C)]_no · Σ_j W2_q[o, j]² (‖X_q[n]‖² + 1)   (its input path, ∇W₀ and ∇b₀)
    * terms[0, 0] = Σ Var[Q_w0(C W2_q)]·X_q²     (layer 0's weight path; its input needs no gradient)
    * terms[0, 1] = 0
    """
    config = QuantConfig(mode="fqt", grad_quantizer="ptq", grad_bits=3, weight_grad_bits=4, seed=9)
    model = two_layers(config)
    x, c = batch(10, n=5, n_in=3, n_out=2)
    result = variance_terms(model, linear_loss, [(x, c)], k=300)
    assert result["layers"] == ["0", "1"]

    xq = quantize_forward(x, 8, "affine")
    w2q = quantize_forward(model[1].weight.data, 8, "zero_aligned")
    h = model[0](Tensor(x)).numpy()
    hq = quantize_forward(h, 8, "affine")
    q_b, q_w = PTQ(3), PTQ(4)
    exact = np.zeros((2, 2))
    exact[1, 1] = np.sum(q_w.elementwise_variance(c).T @ hq**2)
    exact[1, 0] = np.sum(
        q_b.elementwise_variance(c) * (np.sum(xq**2, axis=1)[:, None] + 1) * np.sum(w2q**2, axis=1)
    )
    exact[0, 0] = np.sum(q_w.elementwise_variance(c @ w2q).T @ xq**2)
    assert result["terms"][0, 1] == 0
    for l_, k_ in ((0, 0), (1, 0), (1, 1)):
        assert abs(result["terms"][l_, k_] - exact[l_, k_]) <= 5 * result["terms_stderr"][l_, k_], (l_, k_)
    np.testing.assert_allclose(result["sum_of_terms"], result["terms"].sum(axis=0), rtol=1e-12)
    se = np.sqrt(result["total_stderr"] ** 2 + np.sum(result["terms_stderr"] ** 2, axis=0))
    assert np.all(np.abs(result["total"] - exact.sum(axis=0)) <= 5 * se)


def test_diagonal_share_is_trace_over_sum():
    assert diagonal_share({"terms": np.array([[3.0, 0.0], [1.0, 4.0]])}) == pytest.approx(7 / 8, rel=1e-15)


# -- Eq. 8 -----------------------------------------------------------------------------------------


def test_design_quantities_use_the_input_path_quantizer_on_the_qat_gradient():
    """Layer 1 receives G = C, layer 0 receives C W2_q (QAT: no noise from above); Q_b has 3 bits, Q_w 8.

    (Rows of 5: PSQ keeps a row's min and max exactly, so rows of 2 would hide the noise.)
    """
    config = QuantConfig(mode="fqt", grad_quantizer="psq", grad_bits=3, weight_grad_bits=8, seed=5)
    model = two_layers(config, n_out=5)
    r = np.random.default_rng(11)
    x, c = r.standard_normal((2, 3, 3)), r.standard_normal((2, 3, 5))  # 2 sequences of 3 tokens: 6 rows
    table = design_quantities(model, linear_loss, (x, c))
    w2q = quantize_forward(model[1].weight.data, 8, "zero_aligned")
    q_b = make_gradient_quantizer("psq", 3)
    for name, g in (("1", c.reshape(6, 5)), ("0", (c @ w2q).reshape(6, 4))):
        row = table[name]
        assert row["conditional_variance"] == pytest.approx(q_b.conditional_variance(g), rel=1e-12), name
        assert row["variance_bound"] == pytest.approx(q_b.variance_bound(g), rel=1e-12), name
        assert (row["rows"], row["cols"]) == g.shape
    # a layer without an input-path quantizer is left out, the others are still reported
    model[0].fqt.grad_quantizer = None
    assert list(design_quantities(model, linear_loss, (x, c))) == ["1"]
    model[1].fqt.grad_quantizer = None
    model[0].fqt.grad_quantizer = q_b
    assert list(design_quantities(model, linear_loss, (x, c))) == ["0"]


# -- bin usage -------------------------------------------------------------------------------------


def test_bin_usage_counts_each_code():
    """A 2×2 input already on PTQ(2)'s grid {0, 1, 2, 3}: every noise gives codes 0, 1, 3, 3."""
    q = PTQ(2)
    x = np.array([[0.0, 3.0], [1.0, 3.0]])
    enc = q.encode(x, q.uniform(x, np.random.default_rng(0)))
    np.testing.assert_array_equal(bin_usage(enc), [1, 1, 0, 2])
    zeros = np.zeros((2, 2))  # every code 0: still one count per level, B + 1 of them
    np.testing.assert_array_equal(
        bin_usage(q.encode(zeros, q.uniform(zeros, np.random.default_rng(0)))), [4, 0, 0, 0]
    )


# -- Student t and the Bonferroni threshold --------------------------------------------------------


@pytest.mark.parametrize("dof", [1, 2, 3, 7, 15, 63, 255, 1000])
@pytest.mark.parametrize("alpha", [0.3, 0.05, 1e-3, 1e-6, 1e-9, 1e-12])
def test_t_quantile_and_tail_equal_scipy(alpha, dof):
    assert t_quantile_upper(alpha, dof) == pytest.approx(scipy.stats.t.isf(alpha, dof), rel=1e-9)
    for t in (0.1, 1.0, 4.0, 20.0):
        assert t_tail(t, dof) == pytest.approx(scipy.stats.t.sf(t, dof), rel=1e-9, abs=1e-300)
    assert t_tail(-1.5, dof) == pytest.approx(scipy.stats.t.sf(-1.5, dof), rel=1e-12)


def test_projected_t_statistics_by_hand():
    """K = 3 draws of a 2-vector, two directions: t = mean(s)/(sd(s)/√K), s_k = ⟨v, ĝ_k − g⟩."""
    draws = np.array([[1.0, 2.0], [3.0, 0.0], [2.0, 5.0]])
    ref = np.array([1.0, 1.0])
    v = np.array([[1.0, 0.0], [1.0, -1.0]])
    t = projected_t_statistics(draws, ref, v)
    s0 = np.array([0.0, 2.0, 1.0])  # first coordinate minus 1
    s1 = np.array([-1.0, 3.0, -3.0])  # (x₀ − 1) − (x₁ − 1)
    for got, s in zip(t, (s0, s1), strict=True):
        sd = math.sqrt(sum((si - s.mean()) ** 2 for si in s) / 2)
        assert got == pytest.approx(s.mean() / (sd / math.sqrt(3)), rel=1e-12)
    # no spread: equal to the reference -> 0, off it -> ±inf
    same = np.array([[1.0, 1.0], [1.0, 1.0]])
    np.testing.assert_array_equal(projected_t_statistics(same, ref, v), [0.0, 0.0])
    off = np.array([[2.0, 1.0], [2.0, 1.0]])
    np.testing.assert_array_equal(projected_t_statistics(off, ref, v), [np.inf, np.inf])
    np.testing.assert_array_equal(projected_t_statistics(-off, ref, v)[0], -np.inf)


@pytest.mark.parametrize(
    ("layers", "k", "directions", "alpha"), [(1, 8, 3, 1e-3), (2, 5, 4, 1e-6), (2, 16, 1, 0.01)]
)
def test_threshold_is_the_two_sided_bonferroni_student_t_quantile(layers, k, directions, alpha):
    """``t_{K−1}`` upper quantile at α/(2·L·J): not the normal one, not without Bonferroni."""
    model = one_layer(FQT) if layers == 1 else two_layers(FQT)
    result = unbiasedness_test(
        model, linear_loss, batch(0, n=4), np.random.default_rng(0), k=k, directions=directions, alpha=alpha
    )
    want = scipy.stats.t.isf(alpha / (2 * layers * directions), k - 1)
    assert result["threshold"] == pytest.approx(want, rel=1e-9)
    assert result["threshold"] > scipy.stats.norm.isf(alpha / (2 * layers * directions)) * 1.01
    # the stated overall false-alarm rate: 2·L·J·P(T > threshold) = α
    assert 2 * layers * directions * scipy.stats.t.sf(result["threshold"], k - 1) == pytest.approx(
        alpha, rel=1e-7
    )
    assert (result["alpha"], result["k"], result["directions"]) == (alpha, k, directions)
    for v in result["layers"].values():
        assert v["t"].shape == (directions,)
        assert v["max_abs_t"] == np.max(np.abs(v["t"]))
        assert v["rejected"] == (v["max_abs_t"] > result["threshold"])


def test_default_threshold_is_the_one_the_docstring_quotes():
    """Defaults K = 64, J = 16, α = 1e-6: 6.1 for one layer, 6.5 for four, 6.7 for eight; /(2√K) in steps."""
    for layers, want, steps in ((1, 6.1, 0.38), (4, 6.5, 0.41), (8, 6.7, 0.42)):
        threshold = scipy.stats.t.isf(1e-6 / (2 * layers * 16), 63)
        assert threshold == pytest.approx(want, abs=0.05)
        assert threshold / 16 == pytest.approx(steps, abs=0.005)


# -- power of the unbiasedness test ----------------------------------------------------------------


class OffsetPTQ(PTQ):
    """PTQ that adds ``beta`` grid steps to every entry: biased by exactly β steps, same variance."""

    def __init__(self, bits, beta):
        super().__init__(bits)
        self.beta = beta

    def __call__(self, x, rng, out=None):
        step = float(np.max(self.encode(x, np.full(x.shape, 0.5)).grid.step))
        result = super().__call__(x, rng) + self.beta * step
        if out is None:
            return result
        out[...] = result
        return out


def midpoint_gradient(n, out, bits):
    """An (n, out) C with every entry but one at a bin midpoint of PTQ(bits)'s grid (step 1)."""
    levels = 2**bits - 1
    r = np.random.default_rng(0)
    c = r.integers(0, levels, (n, out)) + 0.5
    c[0, 0] = levels  # pins the grid: [0, B], step 1
    return c


@pytest.mark.parametrize("seed", range(3))
def test_a_bias_just_above_the_stated_detection_limit_is_rejected(seed):
    """The docstring's limit: a bias b with ‖b‖ ≥ threshold·√(V/K) is caught; here β = 1.2× that, in steps.

    One layer, X = I (one-hot inputs), so ∇W = Q_w(C)ᵀ: the layer's gradient *is*
    the quantized matrix, with P entries of variance ¼ step² (p = ½) but one.
    """
    n, out, bits, k = 16, 8, 4, 64
    model = one_layer(
        QuantConfig(mode="fqt", grad_quantizer="ptq", weight_grad_bits=bits, seed=seed), n, out, False
    )
    c = midpoint_gradient(n, out, bits)
    x = np.eye(n)
    v_exact = PTQ(bits).conditional_variance(c)
    assert v_exact == pytest.approx((n * out - 1) / 4, rel=1e-12)
    probe = unbiasedness_test(model, linear_loss, (x, c), np.random.default_rng(seed), k=k)
    assert not probe["rejected"]  # the unbiased quantizer passes (false alarm ≤ 1e-6)
    threshold = probe["threshold"]
    beta_min = threshold * math.sqrt(v_exact / k) / math.sqrt(n * out)  # ‖b‖ = β·step·√P, step = 1
    assert beta_min == pytest.approx(threshold / (2 * math.sqrt(k)), rel=0.01)  # the docstring's "in steps"
    model[0].fqt.weight_grad_quantizer = OffsetPTQ(bits, 1.2 * beta_min)
    result = unbiasedness_test(model, linear_loss, (x, c), np.random.default_rng(100 + seed), k=k)
    assert result["rejected"], result["layers"]["0"]["max_abs_t"]


@pytest.mark.parametrize(
    ("where", "margin", "stated"),
    [
        ("test_quant_stats.py: variance within 5.5 standard errors", 5.5, 4e-8),
        ("this file, test_fqt_wiring.py: 5 standard errors, |r| < 5/√n", 5.0, 5.7e-7),
    ],
)
def test_stated_false_alarm_rates_of_the_margins_used_in_the_tests(where, margin, stated):
    """Each margin in standard errors is the two-sided normal quantile of the rate its docstring states."""
    assert 2 * scipy.stats.norm.sf(margin) == pytest.approx(stated, rel=0.06), where  # 3.8e-8 ≈ 4e-8


def test_unbiasedness_test_defaults_are_the_documented_ones():
    result = unbiasedness_test(one_layer(FQT), linear_loss, batch(0, n=4), np.random.default_rng(0))
    assert (result["alpha"], result["k"], result["directions"]) == (1e-6, 64, 16)


def test_projected_t_round_off_rule_scales_with_the_reference_and_each_direction():
    """No spread means ptp(s) ≤ 1e-9·‖v‖·‖g‖ (round-off of a large g); below that a real spread is tested."""
    r = np.random.default_rng(0)
    big = np.full(4, 1e6)  # ‖g‖ = 2e6: allowance 2e-3·‖v‖
    v = np.array([[1.0, 0, 0, 0], [0, 0, 0, 1e3]])
    jitter = big + 1e-6 * r.standard_normal((8, 4))  # spread ~1e-6·‖v‖: round-off of g, no test
    np.testing.assert_array_equal(projected_t_statistics(jitter, big, v), [0.0, 0.0])
    off = big + 1e-5  # all draws equal, off g by far less than the allowance: no bias either
    np.testing.assert_array_equal(projected_t_statistics(np.tile(off, (3, 1)), big, v), [0.0, 0.0])
    # the allowance is per direction: along v₁ (‖v₁‖ = 1e3) a spread of 1e-2 is round-off, along v₀ it is not
    spread = big + np.outer([0.0, 1e-2, 0.0, 1e-2], [1, 0, 0, 1e-3 * 0.5])
    t = projected_t_statistics(spread, big, v)
    assert np.isfinite(t[0]) and t[0] > 0 and t[1] == 0
    tiny = np.full(4, 1e-12)  # ‖g‖ ≪ 1: the allowance shrinks with it, a 1e-15 spread is tested
    draws = tiny + 1e-15 * r.standard_normal((8, 4))
    assert np.all(projected_t_statistics(draws, tiny, v) != 0)


def test_statistics_name_what_they_need():
    with pytest.raises(ValueError, match="sampling_variance: need at least 2 batches, got 1"):
        sampling_variance(one_layer(FQT), linear_loss, [batch(0)])
    with pytest.raises(ValueError, match="projected_t_statistics: need at least 2 draws, got 1"):
        projected_t_statistics(np.zeros((1, 2)), np.zeros(2), np.ones((1, 2)))
    plain = Sequential(Linear(3, 2, rng=np.random.default_rng(0), dtype=np.float64))
    for fn in (variance_terms, quantization_variance):
        with pytest.raises(ValueError, match=r"no quantized layer; call refqt\.fqt\.quantize first"):
            fn(plain, linear_loss, [batch(0)])


def test_variance_terms_standard_errors():
    """One draw: the standard errors are NaN (no warning); two or more: s/√n of the per-draw values."""
    model = two_layers(FQT)
    one = variance_terms(model, linear_loss, [batch(1, n=3)], k=1)
    assert np.all(np.isnan(one["terms_stderr"])) and np.all(np.isnan(one["total_stderr"]))
    many = variance_terms(model, linear_loss, [batch(1, n=3)], k=2)
    assert np.all(np.isfinite(many["terms_stderr"])) and np.all(np.isfinite(many["total_stderr"]))
    big = variance_terms(model, linear_loss, [batch(1, n=3), batch(2, n=3)], k=50)
    # per-draw squared distances have a spread of the order of their mean: SE ≈ mean/√100, not mean·√100
    on_diagonal = np.diag(big["terms"]) > 0
    ratio = np.diag(big["terms_stderr"])[on_diagonal] / np.diag(big["terms"])[on_diagonal]
    assert np.all((ratio > 0.02) & (ratio < 0.5)), ratio


def test_student_t_refuses_what_it_cannot_compute_and_keeps_its_ends():
    from refqt.stats.student import regularized_incomplete_beta

    assert (
        regularized_incomplete_beta(2.0, 3.0, 0.0) == 0.0
        and regularized_incomplete_beta(2.0, 3.0, 1.0) == 1.0
    )
    assert regularized_incomplete_beta(2.0, 3.0, 0.25) == pytest.approx(
        scipy.stats.beta.cdf(0.25, 2, 3), rel=1e-12
    )
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match=r"regularized_incomplete_beta: x = .* is outside \[0, 1\]"):
            regularized_incomplete_beta(2.0, 3.0, bad)
    for bad in (0.0, 0.5, 0.7):
        with pytest.raises(ValueError, match=r"t_quantile_upper: alpha must lie in \(0, 0\.5\)"):
            t_quantile_upper(bad, 5)
    for bad in (0, -1):
        with pytest.raises(ValueError, match="t_tail: degrees of freedom must be positive"):
            t_tail(1.0, bad)
    assert t_tail(0.0, 7) == 0.5


def test_quantization_variance_needs_two_draws_in_all():
    model = one_layer(FQT)
    assert quantization_variance(model, linear_loss, [batch(0)], k=2)["k"] == 2  # 1 batch · 2 draws: enough
    with pytest.raises(ValueError, match=r"^quantization_variance: need at least 2 draws in all"):
        quantization_variance(model, linear_loss, [batch(0)], k=1)
    with pytest.raises(ValueError, match=r"^quantization_variance: no batches given"):
        quantization_variance(model, linear_loss, [], k=4)
    with pytest.raises(ValueError, match=r"^draw_layer_gradients: k must be ≥ 1, got 0"):
        quantization_variance(model, linear_loss, [batch(0)], k=0)
    plain = Sequential(Linear(3, 2, rng=np.random.default_rng(0), dtype=np.float64))
    with pytest.raises(ValueError, match=r"^refqt\.stats: the model has no quantized layer"):
        quantization_variance(plain, linear_loss, [batch(0)])


def test_a_frozen_parameter_counts_as_a_zero_gradient():
    """A quantized layer's parameter that gets no gradient (frozen bias) enters its ∇Θ^(l) as zeros."""
    from refqt.stats import draw_layer_gradients

    model = one_layer(FQT)
    model[0].bias.requires_grad = False
    draws = draw_layer_gradients(model, linear_loss(model, batch(0)), 2, free_graph=True)["0"]
    assert draws.shape == (2, 3 * 2 + 2) and draws.dtype == np.float64
    np.testing.assert_array_equal(draws[:, -2:], 0.0)
    assert np.all(draws[:, :-2] != 0)

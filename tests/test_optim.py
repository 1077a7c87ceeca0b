"""Optimizers against hand-computed updates; schedules at known steps; state round trips."""

import math

import numpy as np
import pytest

from refqt.nn import Parameter
from refqt.optim import SGD, Adam, AdamW, CosineSchedule, StepSchedule, WarmupSchedule

# One weight w₀ = 1 and two gradients, 0.5 then −0.25, for every rule below.
W0, G1, G2 = 1.0, 0.5, -0.25


def run_two_steps(backend, make_optimizer):
    """Weights after each of two steps, for w₀ = [1, 1] and gradients G1, G2."""
    p = Parameter(backend.asarray(np.full(2, W0)))
    opt = make_optimizer([p])
    weights = []
    for g in (G1, G2):
        opt.zero_grad()
        p.grad = backend.asarray(np.full(2, g))
        opt.step()
        weights.append(float(p.numpy()[0]))
        assert p.backend is backend and p.dtype == backend.dtype("float64")
    return weights


def test_plain_sgd(backend):
    # w₁ = 1 − 0.1·0.5 = 0.95;  w₂ = 0.95 − 0.1·(−0.25) = 0.975
    assert run_two_steps(backend, lambda ps: SGD(ps, lr=0.1)) == pytest.approx([0.95, 0.975], abs=1e-15)


def test_sgd_momentum_with_weight_decay(backend):
    # d₁ = 0.5 + 0.1·1 = 0.6, b₁ = 0.6, w₁ = 1 − 0.06 = 0.94
    # d₂ = −0.25 + 0.1·0.94 = −0.156, b₂ = 0.9·0.6 − 0.156 = 0.384, w₂ = 0.94 − 0.0384 = 0.9016
    got = run_two_steps(backend, lambda ps: SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.1))
    assert got == pytest.approx([0.94, 0.9016], abs=1e-12)


def test_sgd_nesterov(backend):
    # d₁ = 0.6, b₁ = 0.6, w₁ = 1 − 0.1·(0.6 + 0.9·0.6) = 0.886
    # d₂ = −0.25 + 0.0886 = −0.1614, b₂ = 0.54 − 0.1614 = 0.3786,
    # w₂ = 0.886 − 0.1·(−0.1614 + 0.9·0.3786) = 0.868066
    got = run_two_steps(backend, lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1))
    assert got == pytest.approx([0.886, 0.868066], abs=1e-12)


def adam_by_hand(weight_decay, decoupled):
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-8
    w, m, v, out = W0, 0.0, 0.0, []
    for t, g in enumerate((G1, G2), start=1):
        if decoupled:
            w = w - lr * weight_decay * w
        else:
            g = g + weight_decay * w
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        w = w - lr * (m / (1 - b1**t)) / (math.sqrt(v / (1 - b2**t)) + eps)
        out.append(w)
    return out


def test_adam(backend):
    got = run_two_steps(backend, lambda ps: Adam(ps, lr=0.1))
    # First step of Adam moves by lr·sign(g) (m̂ = g, √v̂ = |g|): w₁ ≈ 0.9.
    assert got[0] == pytest.approx(0.9, abs=1e-8)
    assert got == pytest.approx(adam_by_hand(0.0, decoupled=False), abs=1e-12)


def test_adam_l2_and_adamw_decoupled_decay_differ(backend):
    l2 = run_two_steps(backend, lambda ps: Adam(ps, lr=0.1, weight_decay=0.1))
    decoupled = run_two_steps(backend, lambda ps: AdamW(ps, lr=0.1, weight_decay=0.1))
    assert l2 == pytest.approx(adam_by_hand(0.1, decoupled=False), abs=1e-12)
    assert decoupled == pytest.approx(adam_by_hand(0.1, decoupled=True), abs=1e-12)
    # AdamW: w₁ = (1 − 0.1·0.1) − 0.1·1 = 0.89; Adam with L2 normalises the decay away: 0.9.
    assert decoupled[0] == pytest.approx(0.89, abs=1e-8)
    assert l2[0] == pytest.approx(0.9, abs=1e-8)


def test_parameters_without_gradient_are_left_alone():
    a, b = Parameter(np.ones(2)), Parameter(np.ones(2))
    opt = SGD([a, b], lr=1.0, momentum=0.5)
    a.grad = np.ones(2)
    opt.step()
    np.testing.assert_array_equal(b.numpy(), np.ones(2))
    np.testing.assert_array_equal(a.numpy(), np.zeros(2))
    assert opt.state[1] == {}


def test_state_dict_round_trip_continues_identically(rng):
    grads = [rng.standard_normal((3, 2)) for _ in range(4)]

    def fresh():
        return Parameter(np.ones((3, 2)))

    p = fresh()
    opt = Adam([p], lr=0.01, weight_decay=0.1)
    for g in grads[:2]:
        p.grad = g
        opt.step()
    state = opt.state_dict()
    q = Parameter(p.numpy().copy())
    resumed = Adam([q], lr=0.5)  # hyperparameters come from the state
    resumed.load_state_dict(state)
    assert resumed.lr == 0.01 and resumed.steps == 2
    for g in grads[2:]:
        p.grad, q.grad = g, g
        opt.step()
        resumed.step()
    np.testing.assert_array_equal(p.numpy(), q.numpy())


def test_bad_optimizer_input():
    with pytest.raises(ValueError, match="SGD: got an empty parameter list"):
        SGD([], lr=0.1)
    with pytest.raises(TypeError, match="Adam: parameter 0 is not a Tensor that requires grad"):
        Adam([np.ones(2)], lr=0.1)
    with pytest.raises(ValueError, match="nesterov"):
        SGD([Parameter(np.ones(1))], lr=0.1, nesterov=True)
    opt = SGD([Parameter(np.ones(1))], lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match=r"SGD.load_state_dict: state for 2 parameters, optimizer has 1"):
        opt.load_state_dict({"hyperparameters": {}, "state": [{}, {}]})
    with pytest.raises(ValueError, match=r"slot 'momentum' of parameter 0 has shape \(3,\)"):
        opt.load_state_dict({"hyperparameters": {}, "state": [{"momentum": np.ones(3)}]})


# -- schedules ---------------------------------------------------------------------------
def test_cosine_schedule():
    s = CosineSchedule(base_lr=1.0, total_steps=10)
    assert [s.lr_at(k) for k in (0, 5, 10, 20)] == pytest.approx([1.0, 0.5, 0.0, 0.0], abs=1e-15)
    assert CosineSchedule(1.0, 10, min_lr=0.1).lr_at(5) == pytest.approx(0.55)


def test_step_schedule():
    s = StepSchedule(base_lr=1.0, step_size=3, gamma=0.5)
    assert [s.lr_at(k) for k in range(7)] == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25]


def test_warmup_then_cosine():
    s = WarmupSchedule(4, CosineSchedule(base_lr=1.0, total_steps=10))
    got = [s.lr_at(k) for k in (0, 1, 3, 4, 9, 14)]
    assert got == pytest.approx([0.25, 0.5, 1.0, 1.0, 0.5, 0.0], abs=1e-15)


def test_schedule_drives_the_optimizer():
    p = Parameter(np.zeros(1))
    opt = SGD([p], lr=0.0)
    schedule = StepSchedule(base_lr=1.0, step_size=2, gamma=0.1)
    for step in range(4):
        opt.lr = schedule.lr_at(step)
        p.grad = np.ones(1)
        opt.step()
    np.testing.assert_allclose(p.numpy(), [-(1 + 1 + 0.1 + 0.1)])

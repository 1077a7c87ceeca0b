"""The random Hadamard transform (RHT): a cheap orthogonal mix of each block.

``T = H_d · diag(s) / √d`` acts on each group of ``d`` consecutive entries
of a block (``d`` a power of two), where ``H_d`` is Sylvester's Hadamard
matrix (``H_1 = [1]``, ``H_2n = [[H_n, H_n], [H_n, −H_n]]``, entries ±1) and
``s ∈ {±1}^d`` are random signs. ``T`` is orthogonal (``T⁻¹ = Tᵀ =
diag(s) · H_d / √d``), so ``Q(x) = T⁻¹ SR(T x)`` is unbiased whenever the
rounding is, and ``‖Q(x) − x‖ = ‖SR(Tx) − Tx‖``.

Why: every entry of ``T x`` is ``±x₁ ± … ± x_d`` over ``√d`` -- one large
entry (an outlier) is spread over the whole group, so a block's maximum,
and with it its scale and rounding noise, shrinks; this is what BHQ's
Householder reflection does for a large *row* (docs/theory/formats.md,
docs/theory/quantizers.md). The random signs make the mix independent of
the data's own sign patterns.

``H_d x`` is computed with the fast Walsh–Hadamard butterflies,
``log2 d`` stages of ``(a, b) → (a + b, a − b)``: ``d log2 d`` additions per
group, in a fixed order (no BLAS, so the same numbers on every machine).

Sign policies (implementations disagree; each is unbiased given its signs):

* ``"fixed"``: drawn once from ``seed`` -- the same ``T`` for the whole run;
* ``"per-step"``: drawn from ``(seed, step)``; set :attr:`step` each step
  (every tensor of one step, e.g. both inputs of one GEMM, shares them);
* ``"per-call"``: drawn afresh from the quantizer's generator at every call.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from refqt.backend import namespace

SIGN_POLICIES = ("fixed", "per-step", "per-call")


def sylvester(d: int) -> np.ndarray:
    """The (d, d) Sylvester Hadamard matrix with ±1 entries, from the recursion (dense)."""
    if d < 1 or d & (d - 1):
        raise ValueError(f"sylvester: d must be a power of two, got {d}")
    h = np.ones((1, 1))
    while h.shape[0] < d:
        h = np.block([[h, h], [h, -h]])
    return h


def walsh_hadamard(x: Any, d: int) -> Any:
    """``H_d`` applied to each group of ``d`` entries along the last axis (unnormalised), a new array.

    ``x``: (M, b) with ``b`` a multiple of ``d``. Butterfly stage ``h = 1, 2,
    …, d/2`` pairs entry ``i`` with ``i + h`` inside each run of ``2h``.
    """
    xp = namespace(x)
    m, b = x.shape
    cur = xp.reshape(x, (m, b)) * 1
    nxt = xp.empty_like(cur)
    h = 1
    while h < d:
        src = xp.reshape(cur, (m, b // (2 * h), 2, h))
        dst = xp.reshape(nxt, (m, b // (2 * h), 2, h))
        dst[:, :, 0, :] = src[:, :, 0, :] + src[:, :, 1, :]
        dst[:, :, 1, :] = src[:, :, 0, :] - src[:, :, 1, :]
        cur, nxt = nxt, cur
        h *= 2
    return cur


class RandomHadamard:
    """``T = H_d · diag(s) / √d`` on groups of ``d`` entries, with a sign policy (module docstring).

    Parameters
    ----------
    d : int
        Power of two: 16 in NVFP4's recipe.
    policy : {"fixed", "per-step", "per-call"}
    seed : int
        Seed of the signs (fixed and per-step policies).
    """

    def __init__(self, d: int = 16, policy: str = "fixed", seed: int = 0):
        sylvester(d)  # checks d
        if policy not in SIGN_POLICIES:
            raise ValueError(f"RandomHadamard: policy must be one of {SIGN_POLICIES}, got {policy!r}")
        self.d = d
        self.policy = policy
        self.seed = seed
        self.step = 0
        self._signs = self._draw(np.random.default_rng(seed))

    def __repr__(self) -> str:
        return f"RandomHadamard(d={self.d}, policy={self.policy!r}, seed={self.seed})"

    def _draw(self, rng: np.random.Generator) -> np.ndarray:
        return 1.0 - 2.0 * rng.integers(0, 2, size=self.d).astype(np.float64)

    @property
    def signs(self) -> np.ndarray:
        """The signs ``s`` (d,) the next transform uses (host float64 ±1)."""
        if self.policy == "per-step":
            return self._draw(np.random.default_rng([self.seed, self.step]))
        return self._signs

    def redraw(self, rng: np.random.Generator) -> None:
        """Per-call policy: new signs from ``rng`` (called by the quantizer before its noise)."""
        if self.policy == "per-call":
            self._signs = self._draw(rng)

    def matrix(self) -> np.ndarray:
        """Dense ``T`` (d, d), float64: ``H_d · diag(s) / √d`` from the definition."""
        return sylvester(self.d) * self.signs[None, :] / np.sqrt(self.d)

    def _signs_like(self, x: Any) -> Any:
        xp = namespace(x)
        b = x.shape[1]
        s = np.tile(self.signs, b // self.d)[None, :]
        return xp.asarray(s, dtype=x.dtype) if xp is not np else s.astype(x.dtype)

    def forward(self, x: Any) -> Any:
        """``T`` on each group of ``d`` along the last axis of (M, b): ``H (s ⊙ x) / √d``."""
        self._check(x)
        return walsh_hadamard(x * self._signs_like(x), self.d) * (1.0 / math.sqrt(self.d))

    def inverse(self, y: Any) -> Any:
        """``T⁻¹ = Tᵀ``: ``s ⊙ (H y) / √d``."""
        self._check(y)
        return walsh_hadamard(y, self.d) * (self._signs_like(y) * (1.0 / math.sqrt(self.d)))

    def _check(self, x: Any) -> None:
        if x.ndim != 2 or x.shape[1] % self.d:
            raise ValueError(
                f"{self!r}: needs an (M, b) block matrix with b a multiple of {self.d}, got {tuple(x.shape)}"
            )

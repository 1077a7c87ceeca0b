"""Counter-based stochastic-rounding noise: a hash of (key, element index), drawn where it is used.

The CPU quantizers take their noise from the generator's raw 64-bit draws, in
order (:class:`refqt.quant.rounding.NoiseStream`); on a GPU that means drawing
every code on the host and copying it over (51 MB for a (128, 64, 56, 56)
gradient). Here a code is a pure function of a 64-bit ``key`` and the
element's index, so a kernel computes it next to the element it rounds and
nothing but the key crosses to the device::

    z   = key + (c + 1)·γ          (mod 2⁶⁴; c the element's counter, γ = 0x9E3779B97F4A7C15)
    m   = mix64(z) >> 48            (the top 16 bits: a code 0 … 65535)
    u   = (m + ½) / 2¹⁶             (as today: docs/theory/stochastic-rounding.md)

``mix64`` is the splitmix64 finaliser (Steele, Lea & Flood 2014)::

    z ^= z >> 30;  z *= 0xBF58476D1CE4E5B9
    z ^= z >> 27;  z *= 0x94D049BB133111EB
    z ^= z >> 31

so ``m`` is the top of the splitmix64 output number ``c + 1`` of the stream
that starts at ``key``. The key itself comes from (seed, stream, step) by the
same mixer (:func:`counter_key`), or from one raw draw of a layer's generator
(:func:`draw_key`).

The formula is written twice: once as NumPy ``uint64`` array operations
(:func:`codes_at`, which wrap modulo 2⁶⁴ like C), once as a CUDA
``__host__ __device__`` function (:data:`CUDA_SOURCE`) that the fused kernels of
:mod:`refqt.gpu.rounding` include. ``tests/test_gpu_noise.py`` checks the NumPy
spelling against plain Python integers and against the CUDA source compiled
for the host with nvcc, bit for bit.

Why 16 bits from one 64-bit hash per element (and not four codes per hash as
:class:`~refqt.quant.rounding.NoiseStream` does): an element needs no
neighbour's hash, so any thread can round any element, in any order.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from refqt.backend import check_generator

GOLDEN = 0x9E3779B97F4A7C15
"""The splitmix64 increment γ (2⁶⁴ divided by the golden ratio, odd)."""

MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB
MASK64 = (1 << 64) - 1

CUDA_SOURCE = r"""
// refqt counter noise (refqt/gpu/noise.py): 16-bit code of element c under key.
__host__ __device__ inline unsigned long long refqt_mix64(unsigned long long z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

__host__ __device__ inline unsigned int refqt_noise_code(unsigned long long key, unsigned long long c) {
    return (unsigned int)(refqt_mix64(key + (c + 1ULL) * 0x9E3779B97F4A7C15ULL) >> 48);
}
"""
"""The CUDA spelling of :func:`mix64` and :func:`codes_at`; a preamble of the fused kernels."""


def mix64_int(z: int) -> int:
    """The splitmix64 finaliser on one Python integer (mod 2⁶⁴): host-side keys."""
    z &= MASK64
    z = ((z ^ (z >> 30)) * MIX1) & MASK64
    z = ((z ^ (z >> 27)) * MIX2) & MASK64
    return z ^ (z >> 31)


def mix64(z: Any) -> Any:
    """The splitmix64 finaliser on a ``uint64`` array (NumPy or CuPy), wrapping mod 2⁶⁴."""
    z = z ^ (z >> np.uint64(30))
    z = z * np.uint64(MIX1)
    z = z ^ (z >> np.uint64(27))
    z = z * np.uint64(MIX2)
    return z ^ (z >> np.uint64(31))


def codes_at(key: int, counters: Any) -> Any:
    """Codes ``m = mix64(key + (c + 1)·γ) >> 48`` of the element counters ``c``, uint16.

    ``counters``: an integer array (NumPy or CuPy, any shape, values < 2⁶³);
    the result has its shape and backend. The array spelling of the CUDA
    ``refqt_noise_code``.
    """
    c = counters.astype(np.uint64)
    with np.errstate(over="ignore"):
        z = (c + np.uint64(1)) * np.uint64(GOLDEN) + np.uint64(key & MASK64)
        return (mix64(z) >> np.uint64(48)).astype(np.uint16)


def counter_key(seed: int, stream: int = 0, step: int = 0) -> int:
    """The 64-bit key of (seed, stream, step): ``mix64(mix64(mix64(seed) + stream) + step)``.

    ``stream`` tells layers (or a layer's two quantizers) apart, ``step`` the
    training steps; different triples give unrelated code sequences.
    """
    return mix64_int(mix64_int(mix64_int(seed) + stream) + step)


def draw_key(rng: np.random.Generator) -> int:
    """One raw 64-bit draw of ``rng``: the key of one quantization on the device path.

    This is how a layer's own generator drives counter noise: the generator
    advances by one draw per quantization (so the same seed gives the same
    gradients, and a checkpointed generator resumes the same noise), and only
    this number reaches the device.
    """
    check_generator("draw_key", rng)
    return int(rng.bit_generator.random_raw())


class CounterNoise:
    """Counter noise of one key, handed out in order: ``take(a)`` then ``take(b)`` = ``take(a + b)``.

    The same interface as :class:`refqt.quant.rounding.NoiseStream`
    (``take(n)`` returns the next ``n`` codes), plus :meth:`reserve`, which
    advances the counter without computing anything: a fused kernel is given
    ``(key, start)`` and computes codes ``start … start + n − 1`` itself.

    Parameters
    ----------
    key : int
        64-bit key (:func:`counter_key` or :func:`draw_key`).
    """

    def __init__(self, key: int):
        if isinstance(key, bool) or not isinstance(key, int | np.integer):
            raise TypeError(f"CounterNoise: key must be an integer, got {type(key).__name__}")
        self.key = int(key) & MASK64
        self.position = 0

    def __repr__(self) -> str:
        return f"CounterNoise(key={self.key:#018x}, position={self.position})"

    @classmethod
    def from_seed(cls, seed: int, stream: int = 0, step: int = 0) -> CounterNoise:
        """Noise keyed by :func:`counter_key` ``(seed, stream, step)``."""
        return cls(counter_key(seed, stream, step))

    def reserve(self, n: int) -> int:
        """Counter of the first of the next ``n`` codes; the stream moves past them."""
        if n < 0:
            raise ValueError(f"CounterNoise.reserve: n must be ≥ 0, got {n}")
        start = self.position
        self.position += int(n)
        return start

    def take(self, n: int, native: Any = np) -> Any:
        """The next ``n`` codes, a ``uint16`` array of shape (n,) of module ``native`` (numpy or cupy)."""
        start = self.reserve(n)
        return codes_at(self.key, native.arange(start, start + n, dtype=np.int64))

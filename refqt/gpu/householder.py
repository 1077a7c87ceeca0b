"""BHQ's block Householder transform applied as a few batched device operations.

The grouping is found on the host from the N row ranges
(:func:`refqt.quant.householder.block_householder`); applying it is, for all
K groups at once (docs/theory/quantizers.md, "BHQ"; rows in grouped order,
group after group, ``g(r)`` the group of row r)::

    A = X[order] · s                    gather the rows, pre-scale      (T; T⁻¹ scales after)
    S = J A                             group sums: J (K, N) indicator, J[g, r] = [g(r) = g]
    β = (S − √G ⊙ A[starts]) ⊙ 1/(√G − 1)     (K, D), one row per group
    A ← A − n ⊙ β[g(·)]                 the rank-1 updates of every group
    out[order] = A                      scatter back to the original rows

five device operations and one GEMM whatever the number of groups (no loop
over groups). ``n`` is ``1/√G − 1`` on a group's first row and ``1/√G`` on
the others; a group of one row has ``1/(√G − 1) = 0`` and ``n = 0``, so it is
left alone, as in the reference. The group sums come out of a GEMM in
another order than the reference's left-to-right sum, so the result equals
:func:`refqt.quant.householder.apply_transform` to float round-off, not bit
for bit. The indicator is dense: ``K·N`` numbers (N is the batch, 128 in the
ResNet step) and ``K·N·D`` multiply-adds, next to the ``N·D`` of the rest.
The GEMM must run in the working precision: CuPy's TF32 mode (``CUPY_TF32=1``,
or cuBLAS's ``NVIDIA_TF32_OVERRIDE=1``) would round the summands to 10-bit
mantissas and bias BHQ; it is off by default, and on CuPy
:func:`check_full_precision` refuses to run with either set.

``elementwise_variance`` is batched the same way: for a Householder block
``H = I − 2 n nᵀ/‖n‖²``, ``Σ_i H[r, i]² v_i = v_r (1 − 4 n_r²/‖n‖²) +
4 n_r²/‖n‖⁴ · Σ_i n_i² v_i`` (the cross terms of ``(δ_ri − c n_r n_i)²``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from refqt.backend import backend_of
from refqt.quant.householder import BlockHouseholder


def device_coefficients(t: BlockHouseholder, native: Any, work: Any) -> dict[str, Any]:
    """``t``'s grouped coefficients as ``native`` arrays of dtype ``work``, plus J (cached on ``t``).

    ``order`` (N,): original row of each grouped row; ``starts``, ``group_of``;
    ``indicator`` J (K, N); per row (N, 1) ``n``, ``s``, ``inv_s``; per group
    (K, 1) ``root``, ``inv_root_m1``.
    """
    key = ("device", native.__name__, np.dtype(work))
    if key not in t._cache:
        c = t.grouped_coefficients(work)
        sizes = c["sizes"]
        group_of = np.repeat(np.arange(sizes.size), sizes)
        indicator = np.zeros((sizes.size, group_of.size), dtype=work)
        indicator[group_of, np.arange(group_of.size)] = 1.0
        host = {
            "order": c["order"],
            "starts": c["starts"],
            "group_of": group_of,
            "indicator": indicator,
            "root": c["root"][:, None],
            "inv_root_m1": c["inv_root_m1"][:, None],
            "n": c["n"][:, None],
            "s": c["s"][:, None],
            "inv_s": c["inv_s"][:, None],
        }
        t._cache[key] = to_device(native, host)
    return t._cache[key]


def to_device(native: Any, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """The host ``arrays`` on ``native``'s device, one copy per dtype, as views of their own shapes.

    A dozen small host-to-device copies cost more than the arithmetic on them;
    the float arrays and the index arrays each travel as one buffer.
    """
    out: dict[str, Any] = {}
    for dtype in {a.dtype for a in arrays.values()}:
        names = [name for name, a in arrays.items() if a.dtype == dtype]
        flat = native.asarray(np.concatenate([arrays[name].reshape(-1) for name in names]))
        offset = 0
        for name in names:
            a = arrays[name]
            out[name] = flat[offset : offset + a.size].reshape(a.shape)
            offset += a.size
    return out


def variance_weights(t: BlockHouseholder, native: Any) -> dict[str, Any]:
    """Float64 (N, 1) weights of :func:`elementwise_variance_batched`, rows in grouped order (cached).

    ``var_self = (1 − 4n_r²/‖n‖²)/s_r²``, ``var_group = 4n_r²/(‖n‖⁴ s_r²)``, ``n_sq = n_r²``
    (all 0 but ``var_self = 1/s_r²`` for a group of one row, whose ``n = 0``).
    """
    key = ("variance", native.__name__)
    if key not in t._cache:
        c = t.grouped_coefficients(np.float64)
        group_of = np.repeat(np.arange(c["sizes"].size), c["sizes"])
        n = c["n"]
        norm_sq = np.add.reduceat(n * n, c["starts"])[group_of]  # ‖n‖² of each row's group
        with np.errstate(divide="ignore", invalid="ignore"):
            a = np.where(norm_sq > 0, 4.0 * n * n / norm_sq, 0.0)
            b = np.where(norm_sq > 0, a / norm_sq, 0.0)
        inv_s2 = 1.0 / t.scales[c["order"]] ** 2
        host = {"var_self": (1.0 - a) * inv_s2, "var_group": b * inv_s2, "n_sq": n * n}
        t._cache[key] = to_device(native, {name: v[:, None] for name, v in host.items()})
    return t._cache[key]


def gather_rows(t: BlockHouseholder, x2: Any) -> Any:
    """The rows of ``x2`` (N, D) in ``t``'s grouped order, a new array (NumPy or CuPy)."""
    native = backend_of(x2).native
    return native.take(x2, device_coefficients(t, native, x2.dtype)["order"], axis=0)


def scatter_rows(t: BlockHouseholder, a: Any, out2: Any) -> Any:
    """``out2[order] = a``: rows in grouped order back to their original places (cast to out2's dtype)."""
    native = backend_of(a).native
    out2[device_coefficients(t, native, a.dtype)["order"]] = a
    return out2


TF32_FLAGS = ("CUPY_TF32", "NVIDIA_TF32_OVERRIDE")
"""Environment variables that switch float32 GEMMs to TF32 (CuPy's own; cuBLAS's, for every library)."""


def check_full_precision(environ: Mapping[str, str] = os.environ) -> None:
    """RuntimeError if ``environ`` asks for TF32 GEMMs, which would bias BHQ's group sums on a GPU."""
    on = [f"{name}={environ[name]}" for name in TF32_FLAGS if environ.get(name, "0") not in ("", "0")]
    if on:
        raise RuntimeError(
            f"BHQ on the GPU sums its groups with a float32 GEMM, but {', '.join(on)} makes it TF32 "
            "(10-bit mantissas), which biases the quantizer; unset it to use BHQ on the GPU"
        )


def householder_grouped(t: BlockHouseholder, a: Any, inverse: bool = False) -> Any:
    """``T`` (or ``T⁻¹``) in place on rows ``a`` (N, D) already in grouped order; returns ``a``.

    Pre-scale (``T``), group sums by one GEMM, ``β`` per group, rank-1 updates
    of all rows, post-scale (``T⁻¹``): the steps of the module docstring.
    """
    native = backend_of(a).native
    if native is not np and a.dtype == native.float32:  # TF32 leaves float64 GEMMs alone
        check_full_precision()
    c = device_coefficients(t, native, a.dtype)
    if not inverse:
        a *= c["s"]
    first = native.take(a, c["starts"], axis=0)
    beta = (native.matmul(c["indicator"], a) - c["root"] * first) * c["inv_root_m1"]
    update = native.take(beta, c["group_of"], axis=0)
    update *= c["n"]
    a -= update
    if inverse:
        a *= c["inv_s"]
    return a


def apply_transform_batched(t: BlockHouseholder, x2: Any, inverse: bool = False) -> Any:
    """``T x2`` (or ``T⁻¹ x2``) of the (N, D) rows ``x2`` (NumPy or CuPy), a new array of x2's dtype."""
    a = householder_grouped(t, gather_rows(t, x2), inverse)
    return scatter_rows(t, a, backend_of(a).native.empty_like(a))


def elementwise_variance_batched(t: BlockHouseholder, v: Any) -> Any:
    """``Var[Q(x)_rj] = Σ_i T⁻¹[r, i]² v_ij`` from the rounding variances ``v`` (N, D) of ``T x``, float64.

    Rows of ``v`` in original order; the result too.
    """
    native = backend_of(v).native
    c = device_coefficients(t, native, np.float64)
    weights = variance_weights(t, native)
    vg = native.take(v, c["order"], axis=0)
    group = native.matmul(c["indicator"], weights["n_sq"] * vg)  # Σ_i n_i² v_i per group, (K, D)
    w = weights["var_self"] * vg + weights["var_group"] * native.take(group, c["group_of"], axis=0)
    out = native.empty_like(w)
    out[c["order"]] = w
    return out

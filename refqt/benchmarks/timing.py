"""Shared benchmark plumbing: one BLAS thread, best-of-N wall-clock timing."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any


def one_thread() -> tuple[contextlib.AbstractContextManager, str]:
    """A context limiting BLAS/OpenMP to one thread, and a line saying what BLAS runs."""
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:
        note = "threadpoolctl not installed: set OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 before starting"
        return contextlib.nullcontext(), note
    blas = [
        f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture', '?')} kernel)"
        for i in threadpool_info()
        if i.get("user_api") == "blas"
    ]
    return threadpool_limits(limits=1), "BLAS: " + (", ".join(blas) or "unknown")


def best_ms(fn: Callable[[], Any], repeats: int) -> float:
    """The fastest of ``repeats`` calls of ``fn``, in milliseconds."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return 1e3 * best

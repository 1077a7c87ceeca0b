"""Shared fixtures: every backend usable here, seeded hypothesis profiles."""

import numpy as np
import pytest
from hypothesis import settings

from refqt.backend import get_backend, gpu_available

# Derandomized: the same examples on every run, so CI is reproducible.
settings.register_profile("refqt", derandomize=True, deadline=None, max_examples=40, print_blob=True)
settings.load_profile("refqt")

BACKEND_PARAMS = [
    pytest.param("numpy", id="numpy"),
    pytest.param("array_api_strict", id="strict"),
    pytest.param(
        "cupy",
        id="cupy",
        marks=[pytest.mark.gpu, pytest.mark.skipif(not gpu_available(), reason="no usable GPU")],
    ),
]


@pytest.fixture(params=BACKEND_PARAMS)
def backend(request):
    """Each backend in turn: NumPy, array_api_strict, and CuPy where a GPU works."""
    return get_backend(request.param)


@pytest.fixture
def rng():
    """A fresh seeded generator for each test."""
    return np.random.default_rng(20201028)


@pytest.fixture(params=BACKEND_PARAMS, scope="session")
def session_backend(request):
    """Same backends as ``backend``, session-scoped so hypothesis ``@given`` tests can use it.

    Hypothesis refuses function-scoped fixtures (they are not reset between
    examples); a Backend holds no state, so sharing one per session is safe.
    """
    return get_backend(request.param)

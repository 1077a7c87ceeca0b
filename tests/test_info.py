"""``refqt info`` names the BLAS library, the kernel it picked and its thread count."""

import os
import platform
import subprocess
import sys

import pytest
from threadpoolctl import threadpool_info

from refqt.cli import main


def test_info_names_the_blas_library(capsys):
    assert main(["info"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("blas "))
    blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
    if blas:
        assert blas[0]["internal_api"] in line and "kernel" in line and "thread" in line
    else:
        assert "none found" in line


@pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64")
    or not any(i["internal_api"] == "openblas" for i in threadpool_info()),
    reason="NumPy does not use OpenBLAS on x86-64 here",
)
def test_info_shows_the_kernel_and_threads_openblas_was_told_to_use():
    env = {**os.environ, "OPENBLAS_CORETYPE": "Sandybridge", "OPENBLAS_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "refqt", "info"], env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert "kernel Sandybridge, 1 thread (" in run.stdout, run.stdout

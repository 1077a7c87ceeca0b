#!/usr/bin/env bash
# Run the GPU-marked tests (the CuPy backend) on a machine with a working GPU:
#
#     pip install -e ".[test,cuda12]"     # or cuda13
#     bash scripts/gpu_tests.sh [extra pytest arguments]
#
# Without CuPy or a working GPU it says so and exits 0, so it is safe in any CI.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python -c "import sys; from refqt.backend import gpu_available; sys.exit(0 if gpu_available() else 1)"; then
    echo "gpu_tests.sh: no usable GPU here (CuPy missing or no working CUDA device); skipping the GPU tests."
    exit 0
fi

python -c "import cupy; d = cupy.cuda.Device(); print('gpu_tests.sh: CuPy', cupy.__version__, 'on', cupy.cuda.runtime.getDeviceProperties(d.id)['name'].decode())"
status=0
python -m pytest -m gpu "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "gpu_tests.sh: no tests are marked gpu yet."
    exit 0
fi
exit "$status"

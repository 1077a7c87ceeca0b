#!/usr/bin/env bash
# Issue 11 on a GPU, in one go (under 8 minutes on an H200): the GPU-marked quantizer tests,
# then the quantizer benchmark (rows as multiples of a device copy, ResNet-20 quantizer share).
#
#     pip install -e ".[test,cuda13]"
#     bash scripts/gpu_quant_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
python -c "import sys; from refqt.backend import gpu_available; sys.exit(0 if gpu_available() else 1)" || {
    echo "gpu_quant_check.sh: no usable GPU here; nothing to measure."
    exit 0
}
status=0
timeout 300 python -m pytest -q -p no:cacheprovider -m gpu \
    tests/test_gpu_quant.py tests/test_gpu_noise.py tests/test_quant.py tests/test_fqt.py || status=$?
timeout 240 python -m refqt.benchmarks.gpu_quant --backend cupy --repeats 20 || status=$?
exit "$status"

#!/usr/bin/env bash
# Everything a GPU session measures for refqt, in one run of under 8 minutes (issues 10, 11):
#
#     bash scripts/gpu_check.sh            # on a machine with CuPy and a CUDA GPU
#
# 1. `refqt info` (names the GPU);
# 2. the GPU-marked tests (`scripts/gpu_tests.sh`: the CuPy backend, the GPU conv / norm / pool /
#    optimizer kernels, the device quantizers and their statistical tests);
# 3. `refqt bench --backend cupy`: the ResNet-20 step (exact, QAT, FQT-BHQ 5 bits) and the conv layer
#    beside PyTorch on the same GPU when torch imports, peak device memory, and the quantizer rows
#    (multiples of a device copy of the gradient).
#
# Each stage has its own time limit and a failing stage does not stop the next; the exit status is
# the number of stages that failed. Logs and the benchmark's JSON go to $OUT when it is set (the
# device tool's output folder), else to ./gpu-check/. Without a usable GPU it says so and exits 0.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu-check}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1

if ! python -c "import sys; from refqt.backend import gpu_available; sys.exit(0 if gpu_available() else 1)"; then
    echo "gpu_check.sh: no usable GPU here (CuPy missing or no working CUDA device); nothing to measure."
    exit 0
fi

failed=0
stage() {  # stage NAME SECONDS COMMAND...: run with a limit, log to $out/NAME.log, count failures
    local name=$1 limit=$2
    shift 2
    echo "=== $name (limit ${limit} s): $*"
    local start=$SECONDS
    timeout "$limit" "$@" 2>&1 | tee "$out/$name.log"
    local status=${PIPESTATUS[0]}
    echo "=== $name: exit $status after $((SECONDS - start)) s"
    [ "$status" -eq 0 ] || failed=$((failed + 1))
}

stage info 60 python -m refqt info
stage tests 240 bash scripts/gpu_tests.sh -q -p no:cacheprovider -x
stage bench 180 python -m refqt bench --backend cupy --repeats 5 --json "$out/gpu_bench.json"
echo "gpu_check.sh: $failed stage(s) failed; logs in $out/"
exit "$failed"

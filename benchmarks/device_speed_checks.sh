#!/usr/bin/env bash
# The GPU checks of the speed work in one call on a machine with an NVIDIA GPU (prints figures and the
# test's verdict; about 6–8 minutes on one H100). Each step has its own time limit (together 570 s, under
# a 600 s call), so one that hangs does not take the others with it; the exit status is 1 when a step
# failed, was skipped or ran out of time. The log is also written to $OUT/device_speed_checks.log when
# $OUT is set.
#
#   1. The fixed-shape training step captured as CUDA graphs (torch.compile's reduce-overhead mode)
#      against eager: tests/test_training.py::test_cuda_graph_step_agrees_with_eager.
#   2. Training throughput, eager and with CUDA graphs, projected to 150 epochs × 10 000 slices at batch 8
#      (target ≤ 20 min): benchmarks/bench_training.py --compile --compile-mode reduce-overhead.
#   3. Caching with the transforms on the device against on the CPU, end to end with 8 workers
#      (target ≥ 2 000 slices/s): benchmarks/bench_preprocessing.py --transforms-on device|cpu --end-to-end 8.
#
# Where python3 lacks SimpleITK and batchgenerators, carry them as wheels in .whl/ (git-ignored), fetched
# on a machine with pip for the GPU machine's Python (3.12 here):
#
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#       -d .whl SimpleITK batchgenerators future unittest2 traceback2 linecache2 six
#
# DEVICE=cpu runs the same steps on a CPU, cut down (a check of this script, not of the targets).
set -u -o pipefail
cd "$(dirname "$0")/.."
DEVICE=${DEVICE:-cuda}
LOG=${OUT:+$OUT/device_speed_checks.log}
LOG=${LOG:-/dev/null}
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/lw_site \
        .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/lw_site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
if [ "$DEVICE" = cpu ]; then
    STEPS=3 PRE=(--slices 8 --cases 1 --scale 0.5 --end-to-end 2) TEST=test_compile_mode_without_compile_is_refused
else
    STEPS=100 PRE=(--end-to-end 8) TEST=test_cuda_graph_step_agrees_with_eager
fi

step() {  # step SECONDS TITLE COMMAND...: one check under its own time limit
    local limit=$1 title=$2 status
    shift 2
    echo "=== $title ($(date -u +%H:%M:%S), limit ${limit} s): $*"
    timeout "$limit" "$@"
    status=$?
    echo "=== exit status $status"
    [ "$status" = 0 ] || FAILED="$FAILED; $title (exit status $status)"
}

FAILED=""
exec > >(tee "$LOG") 2>&1  # the steps run in this shell (FAILED is seen), their output also to the log
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
if [ "$DEVICE" != cpu ] && ! python3 -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then
    echo "=== no CUDA device: nothing measured"
    exit 1
fi
# -rs names a skip; a skipped test counts as not passed
step 180 "CUDA graphs against eager" bash -c "python3 -m pytest -q -rs -p no:cacheprovider -o addopts='' \
    'tests/test_training.py::$TEST' | tee /tmp/lw_check_test.log; grep -q '^1 passed' /tmp/lw_check_test.log"
step 180 "training throughput" python3 benchmarks/bench_training.py --device "$DEVICE" --steps "$STEPS" \
    --compile --compile-mode reduce-overhead
# stage figures of the device path, then end to end both ways (the benchmark times both with --end-to-end)
step 150 "caching, transforms on the device" python3 benchmarks/bench_preprocessing.py --device "$DEVICE" \
    --transforms-on device "${PRE[@]}"
step 60 "the CPU path's stages" python3 benchmarks/bench_preprocessing.py --device "$DEVICE" \
    --transforms-on cpu "${PRE[@]:0:${#PRE[@]}-2}"
if [ -n "$FAILED" ]; then
    echo "=== not passed: ${FAILED#; }"
    exit 1
fi
echo "=== every step passed"

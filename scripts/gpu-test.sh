#!/usr/bin/env bash
# Run on the GPU machine, from the repository root, over a build folder made by gpu-build.sh:
#   scripts/gpu-test.sh [BUILD_DIR=build-gpu] [LOG_DIR=${OUT:-gpu-logs}]
# 1. the CPU and GPU suites; 2. the GPU suite under compute-sanitizer memcheck (with leak
# check), racecheck and initcheck. Logs go to LOG_DIR; a summary table is printed last.
set -uo pipefail
dir=${1:-build-gpu}
logs=${2:-${OUT:-gpu-logs}}
mkdir -p "$logs"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$logs/gpu.txt"
declare -A rc
run() {  # name, command...
  local name=$1; shift
  local t0=$SECONDS
  "$@" >"$logs/$name.log" 2>&1
  rc[$name]=$?
  echo "$name: exit ${rc[$name]} in $((SECONDS - t0)) s; $(grep -E 'test cases:|ERROR SUMMARY|RACECHECK SUMMARY' "$logs/$name.log" | tail -2 | tr '\n' ' ')"
}
run cpu "$dir/tests/colt5_tests"
run gpu "$dir/tests/colt5_gpu_tests"
# The sanitizers slow kernels down ~100x: run every op case (small shapes) and the runtime
# tests, but skip the gradcheck sweep (the same kernels, thousands of times), the tests built
# around very long rows, and the out-of-memory test (its failing cudaMalloc is by design, and
# the sanitizer counts it as an API error).
san="timeout ${SAN_TIMEOUT:-900} compute-sanitizer --error-exitcode 1"
filter='--test-case-exclude=*gradcheck*,*long rows*,*1M-element*,*out of memory*'
run memcheck $san --tool memcheck --leak-check full "$dir/tests/colt5_gpu_tests" "$filter"
run racecheck $san --tool racecheck "$dir/tests/colt5_gpu_tests" "$filter"
run initcheck $san --tool initcheck "$dir/tests/colt5_gpu_tests" "$filter"
# GPU cases that live beside their CPU tests in colt5_tests (coordinate descent, optimizers).
for tool in memcheck racecheck initcheck; do
  run "$tool-cpu-suite" $san --tool $tool "$dir/tests/colt5_tests" '--test-case=gpu*'
done
run golden-f64 "$dir/tests/golden_parity" --dir tests/golden --device cuda
run golden-f32 "$dir/tests/golden_parity" --dir tests/golden --device cuda --dtype float32
status=0
for k in "${!rc[@]}"; do [ "${rc[$k]}" = 0 ] || status=1; done
exit $status

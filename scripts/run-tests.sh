#!/usr/bin/env bash
# Run every doctest binary of a build and add up their results.
#
#   scripts/run-tests.sh BUILD_DIR [doctest options...]
#
# Runs each executable in BUILD_DIR/tests (colt5_tests; colt5_gpu_tests where built) with the
# given doctest options, shows its output, and ends with one line of its own:
#   N passed, N failed
# summing doctest's "test cases:" counts. A binary that crashes or exits non-zero without
# reporting a failed test case adds one failure. Exit status: 0 when nothing failed.
set -uo pipefail

if [ $# -lt 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
  echo "usage: scripts/run-tests.sh BUILD_DIR [doctest options...]" >&2
  exit 2
fi
build_dir=$1
shift

binaries=()
if [ -d "$build_dir/tests" ]; then
  while IFS= read -r -d '' f; do binaries+=("$f"); done \
    < <(find "$build_dir/tests" -maxdepth 1 -type f -executable -name 'colt5_*tests' -print0 | sort -z)
fi

passed=0
failed=0
if [ ${#binaries[@]} -eq 0 ]; then
  echo "run-tests.sh: no test binary found in $build_dir/tests (build it first: ninja -C $build_dir)" >&2
  failed=1
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
for bin in "${binaries[@]}"; do
  echo "==> $bin $*"
  "$bin" "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  # doctest's summary: "[doctest] test cases: 104 | 103 passed | 1 failed | 0 skipped"
  summary=$(grep -E '^\[doctest\] test cases:' "$log" | tail -n 1)
  if [ -n "$summary" ]; then
    p=$(sed -E 's/.*\| *([0-9]+) passed.*/\1/' <<<"$summary")
    f=$(sed -E 's/.*\| *([0-9]+) failed.*/\1/' <<<"$summary")
    passed=$((passed + p))
    failed=$((failed + f))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
      echo "run-tests.sh: $bin exited with status $rc after reporting no failure; counted as a failure" >&2
      failed=$((failed + 1))
    fi
  else
    echo "run-tests.sh: $bin exited with status $rc without a doctest summary (crashed?); counted as a failure" >&2
    failed=$((failed + 1))
  fi
  echo
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

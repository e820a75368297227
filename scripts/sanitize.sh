#!/usr/bin/env bash
# Build the CPU test suite with AddressSanitizer and UndefinedBehaviorSanitizer, and run it.
#
#   scripts/sanitize.sh BUILD_DIR
#
# BUILD_DIR is configured when it has no build.ninja yet: a CPU-only build (-Dcuda=disabled:
# the sanitizers cover host code) with -Db_sanitize=address,undefined and -Db_lundef=false (the
# shared library leaves the sanitizer runtime's symbols to the executables that link it), at -O1
# without debug info (-Doptimization=1 -Ddebug=false: ASan's recommended level; reports still
# name the functions, and the build takes a fraction of -O2 -g's time, which matters within
# CI's 90 minutes: core/cpu/elementwise.cpp alone took 386 s at -O2 -g, 70 s at -O1), assertions
# on, with frame pointers.
# The compiler is g++ unless CXX names another: Debian 12's clang 14 cannot build the doctest
# suites (their CAPTURE and *_MESSAGE macros are lambdas, and some capture structured bindings,
# which clang accepts from version 16), so the fuzz targets have a clang build of their own
# (scripts/fuzz.sh). A folder configured without the sanitizers is refused.
#
# Then it builds everything and runs scripts/run-tests.sh BUILD_DIR with UBSan stopping at its
# first report (UBSAN_OPTIONS=halt_on_error=1) and ASan's leak detection on; a report ends that
# test binary, which run-tests.sh counts as a failure. The programs the tests start (train,
# generate, colt5_bench) come from the same build and run under the same settings. The last
# line is run-tests.sh's "N passed, N failed"; the exit status is non-zero on any failure.
set -euo pipefail

if [ $# -ne 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
  echo "usage: scripts/sanitize.sh BUILD_DIR" >&2
  exit 2
fi
build_dir=$1
cd "$(dirname "$0")/.."

if [ ! -f "$build_dir/build.ninja" ]; then
  CC=${CC:-gcc} CXX=${CXX:-g++} meson setup "$build_dir" -Dcuda=disabled -Doptimization=1 -Ddebug=false \
    -Db_sanitize=address,undefined -Db_lundef=false -Dcpp_args=-fno-omit-frame-pointer
elif ! grep -q -- '-fsanitize=address' "$build_dir/build.ninja"; then
  echo "sanitize.sh: $build_dir is configured without -Db_sanitize=address,undefined; use a fresh folder" >&2
  exit 2
fi

ninja -C "$build_dir"

# The caller's own options come after these, and so win.
export ASAN_OPTIONS=detect_leaks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}
scripts/run-tests.sh "$build_dir"

#!/usr/bin/env bash
# Build for an H100 (sm_90) on a machine that has nvcc but no GPU. The binaries need nothing
# beyond the CUDA runtime and cuBLAS (fmt is header-only), so the build folder can be copied to
# a GPU machine and the test binaries run there directly (see scripts/gpu-test.sh).
#   scripts/gpu-build.sh [BUILD_DIR=build-gpu] [ARCH=90] [more meson options...]
# e.g. `scripts/gpu-build.sh build-dev 90 -Dblas=disabled` for a GPU machine without OpenBLAS
# (CPU matrix products then use colt5's own loops).
set -euo pipefail
dir=${1:-build-gpu}
arch=${2:-90}
shift $(( $# < 2 ? $# : 2 ))
if [ -d "$dir" ]; then
  meson setup "$dir" --reconfigure -Dcuda=enabled -Dgpu_arch="$arch" -Dbuildtype=release "$@" >/dev/null
else
  meson setup "$dir" -Dcuda=enabled -Dgpu_arch="$arch" -Dbuildtype=release "$@" >/dev/null
fi
ninja -C "$dir"

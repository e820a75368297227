#!/usr/bin/env bash
# Install what building and testing colt5 needs on Debian 12 (bookworm): the compiler, Meson and
# Ninja, and the header libraries (fmt, doctest, nlohmann-json, CLI11) plus OpenBLAS.
#
#   scripts/install-deps.sh          the packages above
#   scripts/install-deps.sh --ci     also clang with its sanitizer and libFuzzer runtimes
#                                    (libclang-rt-14-dev) and llvm-symbolizer (llvm), for
#                                    scripts/sanitize.sh and scripts/fuzz.sh
#
# Runs apt-get directly as root, through sudo otherwise. The CUDA toolkit is not installed here:
# a CUDA build needs nvcc and cuBLAS from NVIDIA's packages.
set -euo pipefail

packages=(meson ninja-build g++ pkg-config libfmt-dev doctest-dev nlohmann-json3-dev libcli11-dev libopenblas-dev)

case "${1:-}" in
  "") ;;
  --ci) packages+=(clang libclang-rt-14-dev llvm) ;;
  *)
    echo "usage: scripts/install-deps.sh [--ci]" >&2
    exit 2
    ;;
esac

if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  echo "install-deps.sh: needs root, or sudo to become root" >&2
  exit 1
fi

"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "${packages[@]}"

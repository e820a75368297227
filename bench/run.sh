#!/usr/bin/env bash
# One command per device: colt5 and the PyTorch reference on the same workloads, then one table.
#
#   bench/run.sh cuda|cpu [--quick] [--build DIR] [--reference-root DIR] [--parts LIST]
#                         [--part-timeout SECONDS] [--timeouts PART=SECONDS,...] [--results DIR]
#
# Parts (default: all of them, in this order):
#   ceilings (GPU) build/bench/bench_ops: the card's copy bandwidth and float32 GEMM rate, which
#            the report's floors use (bench/floors.py)
#   check    the reference writes float64 fixtures at the benchmark shapes (reference_bench.py
#            --fixtures) and tests/golden_parity replays them through colt5 in float64 and float32:
#            do the two compute the same thing at these sizes?
#   colt5    build/bench/colt5_bench
#   ref048   reference_bench.py with CoLT5-attention 0.4.8 (plain and Triton + flash variants)
#   ref0111  reference_bench.py with CoLT5-attention 0.11.1
#   compile  reference_bench.py, 0.4.8 under torch.compile (GPU; reports the compile time)
# Each part runs under `timeout` (--part-timeout, default 1200 s, or its own from --timeouts;
# the check's two golden_parity runs each take the limit named "parity") and
# writes its JSON row by row, so a part cut short still contributes what it measured. Then bench/report.py writes
#   RESULTS/<device>-<date>.json and .md      (RESULTS default: bench/results)
# and, when $OUT is set (the GPU machine's return folder), copies both and the logs there.
#
# Defaults: --build build (a CUDA build for cuda: scripts/gpu-build.sh), --reference-root
# ../shared/reference, else .reference (a copy carried to a machine that lacks ../shared);
# python: $PYTHON, else /usr/bin/python3 on the CPU (Debian's python3-torch) and python3 on the GPU.
set -uo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,25p' "$0"; exit 2; }
[ $# -ge 1 ] || usage
device=$1; shift
case "$device" in cuda|cpu) ;; *) usage ;; esac
quick=()
build=build
refroot=""
parts="ceilings check colt5 ref048 ref0111 compile"
part_timeout=1200
declare -A limit
results=bench/results
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=(--quick) ;;
    --build) build=$2; shift ;;
    --reference-root) refroot=$2; shift ;;
    --parts) parts=${2//,/ }; shift ;;
    --part-timeout) part_timeout=$2; shift ;;
    --timeouts) IFS=, read -ra kv <<<"$2"; for x in "${kv[@]}"; do limit[${x%%=*}]=${x#*=}; done; shift ;;
    --results) results=$2; shift ;;
    *) usage ;;
  esac
  shift
done
if [ -z "$refroot" ]; then
  for d in ../shared/reference .reference; do [ -d "$d/colt5-attention-0.4.8" ] && refroot=$d && break; done
fi
[ -n "$refroot" ] || { echo "run.sh: no reference folder (../shared/reference or .reference); give --reference-root" >&2; exit 1; }
if [ -z "${PYTHON:-}" ]; then
  PYTHON=python3
  [ "$device" = cpu ] && [ -x /usr/bin/python3 ] && PYTHON=/usr/bin/python3
fi
[ -x "$build/bench/colt5_bench" ] || { echo "run.sh: $build/bench/colt5_bench not built (ninja -C $build)" >&2; exit 1; }

date=$(date -u +%Y-%m-%d)
raw=${TMPDIR:-/tmp}/colt5-bench-$device-$date
mkdir -p "$raw" "$results"
ref="$PYTHON bench/reference_bench.py --device $device"
v048="--reference $refroot/colt5-attention-0.4.8"
v0111="--reference $refroot/colt5-attention-0.11.1"

declare -A took
part() {  # name, command...: run one part under the time limit, log to raw/<name>.log
  local name=$1; shift
  local t0=$SECONDS
  echo "== $name: $*" >&2
  timeout "${limit[$name]:-$part_timeout}" "$@" >"$raw/$name.log" 2>&1
  local rc=$?
  took[$name]="exit $rc in $((SECONDS - t0)) s"
  echo "== $name: ${took[$name]}" >&2
  tail -n 3 "$raw/$name.log" >&2
}

for p in $parts; do
  case "$p" in
    ceilings) [ "$device" = cuda ] && part ceilings "$build/bench/bench_ops" ;;
    check)
      rm -rf "$raw/fixtures"
      # Made on the CPU whatever the device: the routers' scores tie (coordinate descent gives
      # many tokens exactly 1.0) and colt5 follows torch's CPU topk order on ties, not CUDA's.
      part fixtures $PYTHON bench/reference_bench.py --device cpu --fixture-shapes "$device" $v048 --fixtures "$raw/fixtures" \
        $([ "$device" = cuda ] && echo --compare-on cuda)
      {
        echo "float64 (tolerance 1e-9):"
        timeout "${limit[parity]:-$part_timeout}" "$build/tests/golden_parity" --dir "$raw/fixtures" --device "$device" 2>&1
        echo
        echo "float32 (tolerance 1e-4):"
        timeout "${limit[parity]:-$part_timeout}" "$build/tests/golden_parity" --dir "$raw/fixtures" --device "$device" --dtype float32 2>&1
      } >"$raw/check.txt"
      took[check]="done"
      cat "$raw/check.txt" >&2
      rm -rf "$raw/fixtures" ;;
    colt5) part colt5 "$build/bench/colt5_bench" --device "$device" "${quick[@]}" --json "$raw/colt5.json" ;;
    ref048) part ref048 $ref $v048 "${quick[@]}" --variants plain,triton-flash,sdpa,attend --json "$raw/ref-0.4.8.json" ;;
    ref0111) part ref0111 $ref $v0111 "${quick[@]}" --variants plain,triton-flash --json "$raw/ref-0.11.1.json" ;;
    compile) [ "$device" = cuda ] && part compile $ref $v048 "${quick[@]}" --variants compile --json "$raw/ref-compile.json" ;;
    *) echo "run.sh: unknown part $p" >&2; exit 2 ;;
  esac
done

# Facts the programs cannot see: the driver, the commit.
commit=${COLT5_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
driver=""
[ "$device" = cuda ] && driver=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n 1)
printf '{"commit": "%s", "driver": "%s", "quick": %s}\n' "$commit" "$driver" \
  "$([ ${#quick[@]} -gt 0 ] && echo true || echo false)" >"$raw/meta.json"

out="$results/$device-$date"
$PYTHON bench/report.py --out "$out" --meta "$raw/meta.json" --check "$raw/check.txt" --ceilings "$raw/ceilings.log" \
  "$raw/colt5.json" "$raw/ref-0.4.8.json" "$raw/ref-0.11.1.json" "$raw/ref-compile.json"
for k in "${!took[@]}"; do echo "part $k: ${took[$k]}"; done
if [ -n "${OUT:-}" ]; then
  cp "$out.json" "$out.md" "$OUT/"
  tar -czf "$OUT/bench-raw.tgz" -C "$raw" .
fi
cat "$out.md"

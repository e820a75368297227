#!/usr/bin/env bash
# Run every libFuzzer target of tests/fuzz for a bounded time, from a seed corpus of valid files.
#
#   scripts/fuzz.sh BUILD_DIR SECONDS
#
# BUILD_DIR is configured when it has no build.ninja yet: clang (libFuzzer comes with it), CPU
# only, ASan + UBSan (-Db_sanitize=address,undefined -Db_lundef=false), -O1 without debug info
# (as scripts/sanitize.sh, for build time) with frame pointers, -Dfuzz=enabled, and every file compiled with -fsanitize=fuzzer-no-link so that
# the library's code, not only the targets', guides the fuzzer (tests/fuzz/meson.build adds
# -fsanitize=fuzzer to the targets). Only the targets and the seed programs are built: Debian's
# clang 14 cannot compile the doctest suites (scripts/sanitize.sh says why), which the sanitizer
# run builds with gcc. Then this script writes the seeds to BUILD_DIR/fuzz/seeds/<target>/ with
# the project's own programs:
#   fuzz_checkpoint   two one-step checkpoints of examples/train (the recall encoder and a
#                     byte-level language model on README.md), tiny models, about a second each
#   fuzz_safetensors  those checkpoints, the sample file of examples/safetensors_tool and the
#                     golden fixtures tests/golden/*.safetensors
# and runs each target for SECONDS seconds (libFuzzer's -max_total_time) with the dictionary
# tests/fuzz/safetensors.dict. New inputs that reach new code go to BUILD_DIR/fuzz/corpus/<target>/
# (kept between runs), findings to BUILD_DIR/fuzz/artifacts/<target>/, the output to
# BUILD_DIR/fuzz/<target>.log. A summary line per target gives the executions, exec/s and
# coverage. Exit status: 0 when no target found anything; otherwise 1, after printing each
# crashing input's path and the command that reproduces it.
set -euo pipefail

if [ $# -ne 2 ] || ! [[ $2 =~ ^[0-9]+$ ]] || [ "$2" -lt 1 ]; then
  echo "usage: scripts/fuzz.sh BUILD_DIR SECONDS" >&2
  exit 2
fi
build_dir=$1
seconds=$2
cd "$(dirname "$0")/.."

if [ ! -f "$build_dir/build.ninja" ]; then
  CC=clang CXX=clang++ meson setup "$build_dir" -Dfuzz=enabled -Dcuda=disabled -Doptimization=1 -Ddebug=false \
    -Db_sanitize=address,undefined -Db_lundef=false "-Dcpp_args=-fno-omit-frame-pointer -fsanitize=fuzzer-no-link"
fi
targets=(fuzz_safetensors fuzz_checkpoint)
# The target list goes through a variable, not a pipe: grep -q exits at its first match, ninja then
# dies of SIGPIPE on a long list, and pipefail turns that into "no fuzz targets".
target_list=$(ninja -C "$build_dir" -t targets all)
if ! grep -q '^tests/fuzz/fuzz_safetensors:' <<<"$target_list"; then
  echo "fuzz.sh: $build_dir has no fuzz targets: they need clang and -Dfuzz=enabled (see tests/fuzz/README.md)" >&2
  exit 2
fi
ninja -C "$build_dir" "${targets[@]/#/tests/fuzz/}" examples/train examples/safetensors_tool

# The sanitizer settings of scripts/sanitize.sh: a UBSan report stops the run (libFuzzer then
# saves the input), leaks are findings. The seed programs run under them too. Symbolised stacks
# need llvm-symbolizer, which Debian installs as llvm-symbolizer-14 unless the llvm package is
# there too.
if ! command -v llvm-symbolizer >/dev/null 2>&1 && [ -x /usr/lib/llvm-14/bin/llvm-symbolizer ]; then
  export ASAN_SYMBOLIZER_PATH=/usr/lib/llvm-14/bin/llvm-symbolizer
fi
export ASAN_OPTIONS=detect_leaks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}

work=$build_dir/fuzz
rm -rf "$work/seeds" "$work/artifacts"
mkdir -p "$work/artifacts" "$work/seeds/fuzz_safetensors" "$work/seeds/fuzz_checkpoint"

# ---- seeds ----
seed_fail() {
  cat "$work/seeds.log"
  echo "fuzz.sh: making the seed corpus failed ($1)" >&2
  exit 1
}
: > "$work/seeds.log"
# The smallest model the config accepts with every routed part in use: width 8, one block, one
# head of width 4, 16 tokens, 2 routed tokens of each kind, so a checkpoint is 25 KB (text: 72 KB).
tiny=(--device cpu --steps 1 --batch-size 2 --eval-every 0 --eval-batches 1 --seq-len 16 --dim 8 --depth 1
      --light-window 4 --heavy-kv 2 --heavy-ff 2 --heads 1 --heavy-heads 1 --dim-head 4 --heavy-dim-head 4)
"$build_dir/examples/train" "${tiny[@]}" --pairs 2 --keys 4 --values 4 --noise 4 --heavy-q 2 \
  --out "$work/seeds/run-recall" >> "$work/seeds.log" 2>&1 || seed_fail "examples/train, recall"
"$build_dir/examples/train" "${tiny[@]}" --data README.md --heavy-window 4 --ff-window 4 \
  --out "$work/seeds/run-text" >> "$work/seeds.log" 2>&1 || seed_fail "examples/train, text"
"$build_dir/examples/safetensors_tool" sample "$work/seeds/fuzz_safetensors/sample.safetensors" \
  >> "$work/seeds.log" 2>&1 || seed_fail "examples/safetensors_tool sample"
for task in recall text; do
  for t in "${targets[@]}"; do
    cp "$work/seeds/run-$task/checkpoint.safetensors" "$work/seeds/$t/checkpoint-$task.safetensors"
  done
done
cp tests/golden/*.safetensors "$work/seeds/fuzz_safetensors/"

# ---- fuzzing ----
# -rss_limit_mb=2048: no valid input needs more than a few tens of MB, and 2 GB stays well inside a
#   CI machine's memory, so an input that makes the code allocate gigabytes is reported as an
#   out-of-memory finding (-malloc_limit_mb follows it: one malloc over 2 GB is reported at once,
#   with its stack) instead of swapping or being killed.
# -timeout=10: an input takes milliseconds (the largest seed about 50 ms under the sanitizers),
#   so 10 s on one input is a hang or a super-linear blow-up, with headroom for a slow machine.
found=0
for t in "${targets[@]}"; do
  mkdir -p "$work/corpus/$t" "$work/artifacts/$t"
  log=$work/$t.log
  echo "==> $t: ${seconds} s"
  set +e
  "$build_dir/tests/fuzz/$t" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
    -dict=tests/fuzz/safetensors.dict -print_final_stats=1 -artifact_prefix="$work/artifacts/$t/" \
    "$work/corpus/$t" "$work/seeds/$t" > "$log" 2>&1
  rc=$?
  set -e
  # "#123456  DONE   cov: 1234 ft: 5678 corp: 90/1Mb lim: 4096 exec/s: 2057 rss: 120Mb"
  last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
  runs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$log")
  speed=$(sed -nE 's/^stat::average_exec_per_sec: *([0-9]+).*/\1/p' "$log")
  cov=$(sed -nE 's/.* cov: ([0-9]+) ft: ([0-9]+) corp: ([0-9]+\/[^ ]+).*/cov \1, ft \2, corpus \3/p' <<<"$last")
  if [ "$rc" -eq 0 ]; then
    echo "$t: no finding in ${seconds} s: ${runs:-?} inputs, ${speed:-?} exec/s, ${cov:-no coverage line}"
    continue
  fi
  found=1
  # Enough of the report to see what and where; the whole of it is in the log.
  grep -E -A 40 '^==[0-9]+==ERROR|runtime error:|FINDING|^==[0-9]+== ERROR: libFuzzer' "$log" | head -n 60 || tail -n 40 "$log"
  saved=$(sed -nE 's/.*Test unit written to (.*)$/\1/p' "$log" | tail -n 1)
  echo "$t: FINDING (exit status $rc) after ${runs:-?} inputs; output in $log"
  if [ -n "$saved" ]; then
    echo "$t: the input is saved in $saved"
    echo "$t: reproduce with: $build_dir/tests/fuzz/$t $saved"
  else
    echo "$t: libFuzzer saved no input (see the log)"
  fi
done
exit "$found"

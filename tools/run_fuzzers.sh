#!/usr/bin/env bash
# Builds the libFuzzer targets in tests/fuzz with clang (as a project of its own, so no nvcc is
# needed) in build-fuzz/, then runs each for SECONDS (default 60) starting from its committed
# seed corpus. Exits non-zero if a target crashes, leaks or trips a sanitizer; the input that did
# it is left in build-fuzz/artifacts/<target>/.
#
#   tools/run_fuzzers.sh [SECONDS]
# Environment: CXX_FUZZ (default clang++), KESTREL_FUZZ_BUILD (default <repo>/build-fuzz).
set -euo pipefail

seconds=${1:-60}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${KESTREL_FUZZ_BUILD:-$root/build-fuzz}
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)

cmake -S "$root/tests/fuzz" -B "$build" "${generator[@]}" \
  -DCMAKE_CXX_COMPILER="${CXX_FUZZ:-clang++}" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" --target fuzz_cifar10 fuzz_safetensors

# target  corpus folder  extra libFuzzer options
run() {
  local target=$1 corpus=$2
  shift 2
  # New inputs go to the build folder; the committed seeds are only read.
  local work="$build/corpus/$corpus" artifacts="$build/artifacts/$target"
  mkdir -p "$work" "$artifacts"
  echo "== $target: ${seconds}s from tests/fuzz/corpus/$corpus"
  local rc=0
  "$build/bin/$target" "$work" "$root/tests/fuzz/corpus/$corpus" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" "$@" >"$build/$target.log" 2>&1 || rc=$?
  grep -E "cov: " "$build/$target.log" | tail -n 1 || true
  grep -E "^Done|stat::new_units_added|ERROR|SUMMARY" "$build/$target.log" || true
  if [[ $rc -ne 0 ]]; then
    echo "!! $target failed (exit $rc); log: $build/$target.log, inputs: $artifacts/"
    tail -n 40 "$build/$target.log"
  fi
  return $rc
}

status=0
run fuzz_cifar10 cifar -max_len=10000 || status=1
run fuzz_safetensors safetensors -max_len=4096 -dict="$root/tests/fuzz/safetensors.dict" || status=1
exit $status

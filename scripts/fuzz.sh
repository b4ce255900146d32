#!/usr/bin/env bash
# Build the libFuzzer targets (fuzz/fuzz_*.c) with clang in build-fuzz/ and run each over its
# committed corpus (fuzz/corpus/<target>/) for a bounded time. New inputs go to a scratch
# directory, so the committed corpus only changes by hand (see fuzz/README.md).
#   scripts/fuzz.sh [--time SECONDS] [--jobs N] [TARGET...]
# Defaults: 15 s per target, every target, one process (the test command runs it this way).
# Exit status 1 when a target crashed; its reproducer is kept under build-fuzz/findings/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=15 jobs=1 targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --time) secs="$2"; shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done
command -v clang >/dev/null || { echo "clang is missing: scripts/deps.sh installs it"; exit 1; }
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCHATD_FUZZ=ON -DCHATD_TESTS=OFF \
      -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-fuzz -j"$(nproc)" >/dev/null
if [ ${#targets[@]} -eq 0 ]; then
  for f in fuzz/fuzz_*.c; do targets+=("$(basename "$f" .c)"); done
fi
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=()
for t in "${targets[@]}"; do
  corpus="fuzz/corpus/$t" scratch="build-fuzz/scratch/$t" findings="build-fuzz/findings/$t"
  mkdir -p "$corpus" "$scratch" "$findings"
  args=(-max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$findings/")
  [ -f "fuzz/$t.dict" ] && args+=(-dict="fuzz/$t.dict")
  [ -f "fuzz/$t.options" ] && read -r -a extra < "fuzz/$t.options" && args+=("${extra[@]}")
  [ "$jobs" -gt 1 ] && args+=(-fork="$jobs")
  echo "== $t (${secs}s)"
  if ./build-fuzz/"$t" "${args[@]}" "$scratch" "$corpus" > "build-fuzz/$t.log" 2>&1; then
    grep -E '^stat::number_of_executed_units|^stat::new_units_added' "build-fuzz/$t.log" |
      tr '\n' ' '; echo
  else
    echo "$t FAILED: see build-fuzz/$t.log; reproducer in $findings/"
    grep -E 'ERROR|check failed|SUMMARY' "build-fuzz/$t.log" | head -5 || true
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then echo "fuzz targets failed: ${failed[*]}"; exit 1; fi

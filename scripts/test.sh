#!/usr/bin/env bash
# Set-up command 2: install what is missing, build with AddressSanitizer + UBSan, run every test:
# C unit tests (ctest), then the black-box tests (Node's test runner + ws) against the real binary.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
cmake -S . -B build-test -DCHATD_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-test -j"$(nproc)"
echo "== format check"
if ! clang-format --dry-run --Werror src/*.c src/*/*.c src/*/*.h tests/unit/*/*.c; then
  echo "code is not formatted: run clang-format -i on the files above"; exit 1
fi
echo "== unit tests"
ctest --test-dir build-test --output-on-failure -j2
echo "== black-box tests"
(cd tests/e2e && npm install --no-audit --no-fund --silent)
CHATD_BIN="$PWD/build-test/chatd" node --test --test-concurrency=1 tests/e2e/
echo "== fuzz targets over their corpora"; scripts/fuzz.sh --time "${CHATD_FUZZ_TIME:-15}"

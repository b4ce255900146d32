#!/usr/bin/env bash
# Set-up command 2: install what is missing, build with AddressSanitizer + UBSan, run every test:
# C unit tests (ctest), then the black-box tests (Node's test runner + ws) against the real binary.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp:print_suppressions=0}
cmake -S . -B build-test -DCHATD_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-test -j"$(nproc)"
echo "== release build (what scripts/run.sh and the benchmarks build: other warnings at -O2)"
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DCHATD_TESTS=OFF >/dev/null
cmake --build build-release -j"$(nproc)" --target chatd chatbench >/dev/null
echo "== format check"
if ! clang-format --dry-run --Werror src/*.c src/*/*.c src/*/*.h tests/unit/*/*.c; then
  echo "code is not formatted: run clang-format -i on the files above"; exit 1
fi
echo "== PostgreSQL for the store tests (scripts/pg.sh, private to this checkout, stopped at exit)"
export CHATD_PG_DIR=${CHATD_PG_DIR:-/tmp/chatd-pg-test-$(echo "$PWD" | sha1sum | cut -c1-12)}
trap 'scripts/pg.sh stop || true' EXIT
PG_URL=$(scripts/pg.sh start)
# leftovers of an interrupted run: one schema per test or per e2e data directory
psql -X -q "$PG_URL" -tAc "SELECT 'DROP SCHEMA ' || nspname || ' CASCADE;' FROM pg_namespace
  WHERE nspname LIKE 'e2e\_%' OR nspname LIKE 't\_%'" | psql -X -q "$PG_URL" >/dev/null 2>&1 || true
echo "== unit tests"
CHATD_TEST_PG_URL="$PG_URL" ctest --test-dir build-test --output-on-failure -j2
echo "== black-box tests"
(cd tests/e2e && npm install --no-audit --no-fund --silent)
CHATD_BIN="$PWD/build-test/chatd" node --test --test-concurrency=1 tests/e2e/
echo "== black-box tests again, every server on PostgreSQL (--store-url)"
CHATD_TEST_STORE_URL="$PG_URL" CHATD_BIN="$PWD/build-test/chatd" \
  node --test --test-concurrency=1 tests/e2e/
echo "== cluster tests: several nodes on PostgreSQL, a NATS cluster and Redis"
CHATD_BIN="$PWD/build-test/chatd" node --test --test-concurrency=1 tests/cluster/
echo "== JavaScript SDK tests (sdk/js against the real chatd)"
(cd sdk/js && npm install --no-audit --no-fund --silent)
CHATD_BIN="$PWD/build-test/chatd" node --test --test-concurrency=1 sdk/js/test/*.test.js
echo "== browser tests (the web client in Debian's Chromium; screenshots in tests/browser/artifacts/)"
(cd tests/browser && npm install --no-audit --no-fund --silent)
CHATD_BIN="$PWD/build-test/chatd" node --test --test-concurrency=1 tests/browser/*.test.js
echo "== fuzz targets over their corpora"; scripts/fuzz.sh --time "${CHATD_FUZZ_TIME:-15}"

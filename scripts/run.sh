#!/usr/bin/env bash
# Set-up command 1: install what is missing, build chatd (release) and start it on its embedded
# defaults (0.0.0.0:8080, SQLite in ./chatd-data). Extra arguments go to chatd.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --no-browser   # running needs no browser (the tests do)
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DCHATD_TESTS=OFF >/dev/null
cmake --build build-release -j"$(nproc)" --target chatd
exec build-release/chatd "$@"

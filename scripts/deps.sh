#!/usr/bin/env bash
# Install the Debian packages chatd needs to build, test and run (only what is missing).
set -euo pipefail
pkgs=(build-essential cmake pkg-config clang-format libuv1-dev libhttp-parser-dev libjansson-dev
      libsqlite3-dev libsodium-dev libcmocka-dev libpq-dev postgresql libnats-dev nats-server
      libhiredis-dev redis-server nodejs npm curl util-linux clang libclang-rt-14-dev
      librdkafka-dev kcat libcurl4-openssl-dev prometheus nginx-light systemd openssl)
# The browser tests (tests/browser) drive Debian's Chromium; playwright-core downloads nothing
# (the emoji font: reaction chips in the screenshots are legible).
[ "${1:-}" != "--no-browser" ] && pkgs+=(chromium fonts-noto-color-emoji)
[ "${1:-}" = "--bench" ] && pkgs+=(gnuplot-nox nats-server mosquitto)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# nodejs from another repository may ship npm itself; then Debian's npm is not needed.
if printf '%s\n' "${missing[@]}" | grep -qx npm && command -v npm >/dev/null; then
  missing=("${missing[@]/npm}")
fi
missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

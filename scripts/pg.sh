#!/usr/bin/env bash
# A private PostgreSQL cluster for tests and local clusters, on 127.0.0.1 only.
#
#   scripts/pg.sh start   initdb if needed, start (idempotent), create database `chatd`, print URL
#   scripts/pg.sh stop    stop it (pg_ctl, by its PID file); idempotent
#   scripts/pg.sh url     print the URL of the running cluster (exit 1 if not running)
#   scripts/pg.sh status  say whether it runs
#
# Settings (environment):
#   CHATD_PG_DIR   directory of the cluster (default /tmp/chatd-pg-$USER); data in $DIR/data,
#                  socket, log and port file beside it
#   CHATD_PG_PORT  port (default: 55432, or the next free one above it at first start)
#
# initdb refuses to run as root: as root, the cluster belongs to the `postgres` user (created by
# Debian's postgresql package) and every server command runs as that user. Authentication is
# `trust`, acceptable only because the server listens on loopback and a private socket directory:
# never point this at a shared machine's network.
set -euo pipefail

DIR=${CHATD_PG_DIR:-/tmp/chatd-pg-${USER:-$(id -un)}}
DATA=$DIR/data
PORT_FILE=$DIR/port
LOG=$DIR/postgres.log

pgbin() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/pg_ctl" ] && { echo "$d"; return; }
  done
  command -v pg_ctl >/dev/null && { dirname "$(command -v pg_ctl)"; return; }
  echo "pg.sh: PostgreSQL server binaries not found (apt-get install postgresql)" >&2
  exit 1
}
BIN=$(pgbin)

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

running() { [ -f "$DATA/postmaster.pid" ] && as_owner "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

url() { echo "postgres://postgres@127.0.0.1:$(cat "$PORT_FILE")/chatd"; }

psql_admin() {
  "$BIN/psql" -X -q -h 127.0.0.1 -p "$(cat "$PORT_FILE")" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"
}

start() {
  if running; then
    url
    return
  fi
  mkdir -p "$DIR"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$DIR"
  chmod 700 "$DIR"
  if [ ! -f "$DATA/PG_VERSION" ]; then
    as_owner "$BIN/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
      >"$DIR/initdb.log" 2>&1 || { cat "$DIR/initdb.log" >&2; exit 1; }
  fi
  if [ ! -f "$PORT_FILE" ]; then
    port=${CHATD_PG_PORT:-55432}
    if [ -z "${CHATD_PG_PORT:-}" ]; then
      while port_busy "$port"; do port=$((port + 1)); done
    fi
    echo "$port" | as_owner tee "$PORT_FILE" >/dev/null
  fi
  port=$(cat "$PORT_FILE")
  if port_busy "$port"; then
    if [ -n "${CHATD_PG_PORT:-}" ]; then
      echo "pg.sh: port $port is taken by another process" >&2
      exit 1
    fi
    while port_busy "$port"; do port=$((port + 1)); done # taken since the last start: move
    echo "$port" | as_owner tee "$PORT_FILE" >/dev/null
  fi
  as_owner "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 \
    -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$DIR -c max_connections=500" \
    start >/dev/null || { tail -20 "$LOG" >&2; exit 1; }
  if [ -z "$(psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = 'chatd'")" ]; then
    psql_admin -c "CREATE DATABASE chatd"
  fi
  url
}

stop() {
  if running; then
    as_owner "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  url) running && url || { echo "pg.sh: not running ($DIR)" >&2; exit 1; } ;;
  status) if running; then echo "running: $(url)"; else echo "stopped ($DIR)"; exit 1; fi ;;
  *) echo "usage: $0 start|stop|url|status" >&2; exit 2 ;;
esac

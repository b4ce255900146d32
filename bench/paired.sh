#!/usr/bin/env bash
# Paired fanout benchmark of two revisions of chatd, in one run: builds both (release), then
# alternates them (A B A B ...) through the same chatbench fanout, pinned as bench/run.sh pins
# (server on CPU 0, load on CPU 1), and prints each run's figures and the medians.
#   bench/paired.sh [OLD_REV] [NEW_REV|WORKTREE] [--rate N] [--rounds N] [--duration S]
#                   [--scenario fanout|durable]
# Default: HEAD~1 against the working tree. For commit messages of hot-path changes.
# --scenario durable: the commit path instead (chatbench durable: 100 senders at --rate msgs/s
# each, every message waiting for its durable ack; figures: acks/s, ack latency, server CPU).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OLD=${1:-HEAD~1}; NEW=${2:-WORKTREE}
shift $(( $# >= 2 ? 2 : $# )) || true
RATE=2000; ROUNDS=3; DUR=5; RECEIVERS=1000; SCEN=fanout
while [ $# -gt 0 ]; do
  case $1 in
    --rate) RATE=$2; shift 2 ;; --rounds) ROUNDS=$2; shift 2 ;; --duration) DUR=$2; shift 2 ;;
    --scenario) SCEN=$2; shift 2 ;;
    *) echo "unknown option $1"; exit 2 ;;
  esac
done
W=$(mktemp -d /tmp/chatd-paired.XXXXXX)
trap 'kill $SPID 2>/dev/null || true; for t in old new; do git -C "$ROOT" worktree remove --force "$W/$t" 2>/dev/null || true; done; rm -rf "$W"' EXIT
SPID=""
build() { # $1 = source dir, $2 = build dir
  cmake -S "$1" -B "$2" -DCMAKE_BUILD_TYPE=Release -DCHATD_TESTS=OFF >/dev/null
  cmake --build "$2" -j"$(nproc)" --target chatd chatbench >/dev/null
}
git -C "$ROOT" worktree add -q --detach "$W/old" "$OLD"
build "$W/old" "$W/build-old"
if [ "$NEW" = WORKTREE ]; then build "$ROOT" "$W/build-new"; else
  git -C "$ROOT" worktree add -q --detach "$W/new" "$NEW"; build "$W/new" "$W/build-new"; fi
CB=$W/build-new/bench/chatbench
[ -x "$CB" ] || CB=$(find "$W/build-new" -name chatbench -type f | head -1)
port=18931
run_one() { # $1 = label, $2 = chatd binary
  rm -rf "$W/data"
  taskset -c 0 "$2" --listen "127.0.0.1:$port" --data-dir "$W/data" --threads 1 --sqlite-sync normal \
    --pwhash-ops 1 --pwhash-mem-kib 8192 --rate-limits off --max-conns-per-user 1000000 \
    --log-level warn 2>>"$W/server.log" &
  SPID=$!
  for _ in $(seq 1 100); do curl -sf "127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  if [ "$SCEN" = durable ]; then
    taskset -c 1 "$CB" durable --target chatd --url "ws://127.0.0.1:$port/" --senders 100 \
      --rate "$RATE" --tick-us 1000 --duration "$DUR" --warmup 2 --drain 2 --server-pid "$SPID" \
      --label "$1" --quiet >"$W/$1.json" 2>>"$W/cb.log" || true
  else
    taskset -c 1 "$CB" fanout --target chatd --url "ws://127.0.0.1:$port/" --receivers $RECEIVERS \
      --senders 1 --rate "$RATE" --duration "$DUR" --warmup 2 --drain 2 --server-pid "$SPID" \
      --label "$1" --quiet >"$W/$1.json" 2>>"$W/cb.log" || true
  fi
  kill "$SPID" 2>/dev/null || { echo "$1: the server exited early:"; tail -5 "$W/server.log"; }
  wait "$SPID" 2>/dev/null || true; SPID=""
  python3 - "$W/$1.json" "$1" "$SCEN" <<'PY'
import json,sys
try: d=json.load(open(sys.argv[1]))
except Exception as e: print(f"{sys.argv[2]}: no result ({e})"); sys.exit()
lat=d.get("latency_ms",{})
if sys.argv[3] != "durable":
    print(f"{sys.argv[2]}: deliveries/s {d.get('deliveries_per_s')}  p50 {lat.get('p50')} ms  p99 {lat.get('p99')} ms  drops {d.get('drops')}  server_cpu {d.get('server_cpu_share')}  cpu0 {d.get('cpu0_busy')} cpu1 {d.get('cpu1_busy')}")
else:
    ack=d.get('ack_ms',{})
    print(f"{sys.argv[2]}: acks/s {d.get('acked_per_s')}  ack p50 {ack.get('p50')} ms  p99 {ack.get('p99')} ms  server_cpu {d.get('server_cpu_share')}  cpu0 {d.get('cpu0_busy')} cpu1 {d.get('cpu1_busy')}")
PY
}
echo "paired $SCEN: $OLD vs $NEW, $RATE msgs/s, $DUR s, $ROUNDS rounds"
echo "command: bench/paired.sh $OLD $NEW --rate $RATE --rounds $ROUNDS --duration $DUR --scenario $SCEN"
for r in $(seq 1 "$ROUNDS"); do run_one "old-$r" "$W/build-old/chatd"; run_one "new-$r" "$W/build-new/chatd"; done

#!/usr/bin/env bash
# The outbox's sinks under the single node's durable load (issue 13, docs/BENCHMARKS.md "Event
# stream"): chatbench durable drives chatd (100 senders x RATE msgs/s for DUR s; RELAY_RATE
# for the cluster-mode node, whose durable rate on PostgreSQL is lower) while
#   exporter: chatd (SQLite, --sqlite-sync full) exports to Kafka (librdkafka's mock cluster,
#             build-bench/kafka_mock); read back with kcat: throughput and commit-to-produce lag
#   relay:    chatd (PostgreSQL, --nats-url) relays to JetStream (3 nats-server, replicas 3);
#             read back with build-bench/js_dump: commit-to-stored lag (p50, p99, max)
# Prints the figures and the commands that produced them.
#
#   bench/sinks.sh                 # RATE=100 RELAY_RATE=20 DUR=10
#   RATE=200 DUR=20 bench/sinks.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build-bench}
RATE=${RATE:-100}
RELAY_RATE=${RELAY_RATE:-20}
DUR=${DUR:-10}
OUT=$(mktemp -d /tmp/chatd-sinks-XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

# Always brought up to date (a stale binary from an older checkout would be measured otherwise).
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCHATD_TESTS=OFF -DCHATD_WERROR=OFF >/dev/null
cmake --build "$BUILD" -j2 --target chatd chatbench kafka_mock js_dump >/dev/null
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 150); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
load() { # $1 = chatd port, $2 = msgs/s per sender
  local cmd=("$BUILD/bench/chatbench" durable --target chatd --url "ws://127.0.0.1:$1/" --senders 100
             --rate "$2" --tick-us 1000 --duration "$DUR" --warmup 1 --drain 3)
  echo "  load: ${cmd[*]}"
  "${cmd[@]}" 2>/dev/null > "$OUT/load.json"
  python3 -c 'import json,sys; r=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1]); print("  durable: %.0f acked msgs/s, ack p50 %.1f ms, p99 %.1f ms" % (r["acked_per_s"], r["ack_ms"]["p50"], r["ack_ms"]["p99"]))' "$OUT/load.json" || true
}
chatd_args=(--threads 1 --pwhash-ops 1 --pwhash-mem-kib 8192 --rate-limits off
            --max-conns-per-user 1000000 --log-level warn)

echo "== exporter (SQLite, synchronous=full, Kafka mock cluster)"
"$BUILD/kafka_mock" --topic chatd.events --partitions 8 > "$OUT/kmock.out" 2>/dev/null &
PIDS+=($!)
for _ in $(seq 1 50); do grep -q BOOTSTRAP "$OUT/kmock.out" && break; sleep 0.1; done
BROKERS=$(awk '/BOOTSTRAP/ {print $2}' "$OUT/kmock.out")
PORT=$(free_port)
"$BUILD/chatd" --listen "127.0.0.1:$PORT" --data-dir "$OUT/exp-data" --kafka-brokers "$BROKERS" \
  "${chatd_args[@]}" 2> "$OUT/exp-chatd.log" &
PIDS+=($!)
wait_port "$PORT"
echo "  chatd --kafka-brokers $BROKERS ${chatd_args[*]}"
load "$PORT" "$RATE"
sleep 3 # the exporter's last batches
kcat -C -b "$BROKERS" -t chatd.events -e -q -f '%T\t%s\n' > "$OUT/kafka.tsv"
python3 - "$OUT/kafka.tsv" <<'PY'
import json, sys
lags, ts = [], []
for line in open(sys.argv[1]):
    t, v = line.rstrip('\n').split('\t', 1)
    e = json.loads(v)
    if e['type'] != 'message': continue
    lags.append(int(t) - e['ts']); ts.append(int(t))
lags.sort()
n = len(lags)
span = (max(ts) - min(ts)) / 1000 if n > 1 else 0
q = lambda p: lags[min(n - 1, int(p * n))]
print(f"  exporter: {n} messages exported, {n / span:.0f} msgs/s over {span:.1f} s; "
      f"commit-to-produce lag p50 {q(.5)} ms, p99 {q(.99)} ms, max {lags[-1]} ms")
PY

echo "== exporter catching up (the same load stored first, then exported as one backlog)"
PORT=$(free_port)
"$BUILD/chatd" --listen "127.0.0.1:$PORT" --data-dir "$OUT/backlog-data" --roles gateway \
  "${chatd_args[@]}" 2> "$OUT/backlog-chatd.log" &
CPID=$!
PIDS+=($CPID)
wait_port "$PORT"
load "$PORT" "$RATE"
kill "$CPID"; wait "$CPID" 2>/dev/null || true
PORT=$(free_port)
T0=$(date +%s%3N)
"$BUILD/chatd" --listen "127.0.0.1:$PORT" --data-dir "$OUT/backlog-data" --kafka-brokers "$BROKERS" \
  --kafka-topic chatd.backlog "${chatd_args[@]}" 2> "$OUT/backlog2-chatd.log" &
PIDS+=($!)
echo "  chatd --kafka-brokers $BROKERS --kafka-topic chatd.backlog ${chatd_args[*]}  (started at $T0)"
want=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])["acks"])' "$OUT/load.json")
prev=-1
for _ in $(seq 1 120); do # until every message is there and nothing more comes
  sleep 1
  n=$(kcat -C -b "$BROKERS" -t chatd.backlog -e -q -f '%T\n' 2>/dev/null | wc -l)
  [ "$n" -ge "$want" ] && [ "$n" -eq "$prev" ] && break
  prev=$n
done
kcat -C -b "$BROKERS" -t chatd.backlog -e -q -f '%T\n' 2>/dev/null > "$OUT/backlog.t"
python3 - "$OUT/backlog.t" "$T0" <<'PY'
import sys
ts = sorted(int(l) for l in open(sys.argv[1]) if l.strip())
t0 = int(sys.argv[2])
n = len(ts)
print(f"  exporter backlog: {n} events exported in {(ts[-1] - ts[0]) / 1000:.1f} s = "
      f"{n / max(0.001, (ts[-1] - ts[0]) / 1000):.0f} events/s (first one {ts[0] - t0} ms after the start)")
PY

echo "== relay (PostgreSQL, 3 nats-server with JetStream, replicas 3)"
PGURL=$(CHATD_PG_DIR=${CHATD_PG_DIR:-/tmp/chatd-pg-bench} "$ROOT/scripts/pg.sh" start | tail -1)
DB=chatd_sinks_$$
psql -X -q "$PGURL" -c "CREATE DATABASE $DB" >/dev/null
STORE=${PGURL%/*}/$DB
NURLS=""; ROUTES=()
for i in 0 1 2; do ROUTES+=("$(free_port)"); done
for i in 0 1 2; do
  p=$(free_port)
  others=$(printf 'nats-route://127.0.0.1:%s,' "${ROUTES[@]}"); others=${others%,}
  cat > "$OUT/n$i.conf" <<CONF
server_name: b$i
listen: 127.0.0.1:$p
cluster { name: b, listen: 127.0.0.1:${ROUTES[$i]}, routes: [ ${others//,/, } ] }
jetstream { store_dir: "$OUT/js$i" }
CONF
  nats-server -c "$OUT/n$i.conf" 2>/dev/null &
  PIDS+=($!)
  NURLS+="${NURLS:+,}nats://127.0.0.1:$p"
done
sleep 4 # routes and the JetStream meta leader
PORT=$(free_port)
"$BUILD/chatd" --listen "127.0.0.1:$PORT" --data-dir "$OUT/rel-data" --store-url "$STORE" \
  --nats-url "$NURLS" "${chatd_args[@]}" 2> "$OUT/rel-chatd.log" &
PIDS+=($!)
wait_port "$PORT"
echo "  chatd --store-url $STORE --nats-url $NURLS ${chatd_args[*]}"
load "$PORT" "$RELAY_RATE"
sleep 3
"$BUILD/js_dump" "$NURLS" CHATD_EVENTS > "$OUT/js.jsonl"
python3 - "$OUT/js.jsonl" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
info, msgs = lines[0], [m for m in lines[1:] if m['data']['type'] == 'message']
lags = sorted(m['stored_ns'] / 1e6 - m['data']['ts'] for m in msgs)
n = len(lags)
q = lambda p: lags[min(n - 1, int(p * n))]
print(f"  relay: {n} messages in {info['stream']} (replicas {info['replicas']}); commit-to-stored "
      f"lag p50 {q(.5):.1f} ms, p99 {q(.99):.1f} ms, max {lags[-1]:.1f} ms")
PY
psql -X -q "$PGURL" -c "DROP DATABASE $DB WITH (FORCE)" >/dev/null 2>&1 || true
echo "(raw data in $OUT; reproduce: RATE=$RATE RELAY_RATE=$RELAY_RATE DUR=$DUR bench/sinks.sh)"

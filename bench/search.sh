#!/usr/bin/env bash
# Search latency over a large log (docs/BENCHMARKS.md, "Search"): loads N messages directly into
# the store's tables (SQL through sqlite3 or psql: the same rows and index entries chatd's
# writer makes, without a million HTTP requests; chatd itself created the schema, the user and
# the rooms first), then runs sequential GET /v1/search requests for one-word queries of
# several frequencies and prints p50/p99 per word.
#   bench/search.sh [--messages N] [--rooms N] [--queries N] [--store-url postgres://...]
# Needs a built chatd (CHATD_BIN, default build-release/chatd: built here if missing), sqlite3
# (or psql), node and curl.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=1000000; ROOMS=100; Q=500; STORE_URL=""
while [ $# -gt 0 ]; do
  case $1 in
    --messages) N=$2; shift 2 ;; --rooms) ROOMS=$2; shift 2 ;; --queries) Q=$2; shift 2 ;;
    --store-url) STORE_URL=$2; shift 2 ;;
    *) echo "unknown option $1"; exit 2 ;;
  esac
done
BIN=${CHATD_BIN:-$ROOT/build-release/chatd}
if [ ! -x "$BIN" ]; then
  cmake -S "$ROOT" -B "$ROOT/build-release" -DCMAKE_BUILD_TYPE=Release -DCHATD_TESTS=OFF >/dev/null
  cmake --build "$ROOT/build-release" -j"$(nproc)" --target chatd >/dev/null
fi
W=$(mktemp -d /tmp/chatd-search.XXXXXX)
PORT=18977
SPID=""
trap '[ -n "$SPID" ] && kill $SPID 2>/dev/null; rm -rf "$W"' EXIT
start() {
  local store=()
  [ -n "$STORE_URL" ] && store=(--store-url "$STORE_URL")
  "$BIN" --listen "127.0.0.1:$PORT" --data-dir "$W/data" "${store[@]}" --threads 2 \
    --rate-limits off --pwhash-ops 1 --pwhash-mem-kib 8192 --log-level warn 2>>"$W/server.log" &
  SPID=$!
  for _ in $(seq 1 200); do curl -sf "127.0.0.1:$PORT/healthz" >/dev/null && return; sleep 0.1; done
  echo "chatd did not start"; cat "$W/server.log"; exit 1
}
stop() { kill "$SPID"; wait "$SPID" || true; SPID=""; }
json() { node -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>console.log(JSON.parse(s)$1))"; }

start
TOKEN=$(curl -sf -X POST "127.0.0.1:$PORT/v1/auth/register" -H 'Content-Type: application/json' \
  -d '{"username":"bencher","password":"correct horse battery"}' | json .access_token)
UID_N=$(curl -sf "127.0.0.1:$PORT/v1/me" -H "Authorization: Bearer $TOKEN" | json ".user.id.slice(2)")
FIRST=""
for i in $(seq 1 "$ROOMS"); do
  R=$(curl -sf -X POST "127.0.0.1:$PORT/v1/rooms" -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/json' -d "{\"name\":\"bench $i\"}" | json ".room.id.slice(2)")
  [ -z "$FIRST" ] && FIRST=$R
done
stop

# Every message: 8 words of a 5,000-word vocabulary (uniform: ~1,600 messages each), "the" in
# every second one (500,000), "needle" in one of 50,000 (20). Seq continues after each room's
# join entry (seq 1); ts increases with the insertion order, as the writer's would.
BODY="'w' || (abs(random()) % 5000) || ' w' || (abs(random()) % 5000) || ' w' || (abs(random()) % 5000) || ' w' || (abs(random()) % 5000) || ' w' || (abs(random()) % 5000) || ' w' || (abs(random()) % 5000) || ' w' || (abs(random()) % 5000) || ' w' || (abs(random()) % 5000) || CASE WHEN i % 2 = 0 THEN ' the' ELSE '' END || CASE WHEN i % 50000 = 7 THEN ' needle' ELSE '' END"
t0=$(date +%s)
if [ -z "$STORE_URL" ]; then
  sqlite3 "$W/data/chatd.db" >/dev/null <<SQL
PRAGMA journal_mode = WAL;
PRAGMA synchronous = OFF;
BEGIN;
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < $N - 1)
INSERT INTO events(room_id, seq, kind, sender, ts, client_msg_id, body)
  SELECT $FIRST + (i % $ROOMS), 2 + (i / $ROOMS), 0, $UID_N, 1700000000000 + i, NULL, $BODY FROM n;
INSERT INTO msg_search(rowid, body, room_id, seq)
  SELECT id, body, room_id, seq FROM events WHERE kind = 0;
UPDATE search_pos SET id = (SELECT max(id) FROM events);
COMMIT;
SQL
else
  BODY_PG=${BODY//abs(random()) % 5000/floor(random() * 5000)::int}
  psql -X -q -v ON_ERROR_STOP=1 "$STORE_URL" <<SQL
BEGIN;
INSERT INTO events(room_id, seq, kind, sender, ts, client_msg_id, body)
  SELECT $FIRST + (i % $ROOMS), 2 + (i / $ROOMS), 0, $UID_N, 1700000000000 + i, NULL, $BODY_PG
  FROM generate_series(0, $N - 1) AS i;
UPDATE rooms r SET last_seq = (SELECT max(seq) FROM events e WHERE e.room_id = r.id);
INSERT INTO msg_search(room_id, seq, body)
  SELECT room_id, seq, body FROM events WHERE kind = 0 ORDER BY ts;
COMMIT;
VACUUM ANALYZE events;
VACUUM ANALYZE msg_search;
SQL
fi
echo "loaded $N messages into $ROOMS rooms in $(( $(date +%s) - t0 )) s" >&2
start
echo "command: bench/search.sh --messages $N --rooms $ROOMS --queries $Q${STORE_URL:+ --store-url ...}" >&2
node "$ROOT/bench/search_query.js" "$PORT" "$TOKEN" "$Q" "needle:rare (20 messages)" \
  "w42:medium (~1,600 messages)" "the:common (500,000 messages)"
stop

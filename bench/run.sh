#!/usr/bin/env bash
# bench/run.sh - run chatd, the ceiling and every peer through chatbench, write bench/out/ and
# regenerate docs/BENCHMARKS.md (tables + gnuplot PNGs under docs/bench/).
#
#   bench/run.sh [--quick] [--systems "chatd ceiling ws socketio nats mosquitto"] [--no-install]
#                [--no-docs] [--mix-only]
#
# --mix-only runs only chatd's `mix` step (real-chat shape: small rooms, DMs, churn) and writes
# no docs unless asked by a later full run.
# Every server runs pinned to CPU 0 and chatbench to CPU 1 (taskset), one system at a time, each
# on a fresh server process. Installs what is missing (Debian: nats-server mosquitto gnuplot-nox
# nodejs npm python3; npm: ws, socket.io into bench/peers/<name>/node_modules), builds Release
# without sanitizers into build-bench/. --quick finishes in under 3 minutes, the full run in
# under 30. Load goes to 127.0.0.1 only; every chatbench run is bounded in time and count.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${CHATBENCH_BUILD_DIR:-$ROOT/build-bench}
QUICK=0
INSTALL=1
DOCS=1
MIX_ONLY=0
SYSTEMS="ceiling ceilingeq chatd ws socketio nats mosquitto"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --systems) SYSTEMS=$2; shift ;;
    --no-install) INSTALL=0 ;;
    --no-docs) DOCS=0 ;;
    --mix-only) MIX_ONLY=1; DOCS=0 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

STAMP=$(date -u +%Y%m%d-%H%M%S)
OUT=$ROOT/bench/out/$STAMP
mkdir -p "$OUT/logs"
ln -sfn "$STAMP" "$ROOT/bench/out/latest"
CMDS=$OUT/commands.txt
: > "$CMDS"
T_BEGIN=$(date +%s)

log() { echo "[run.sh $(($(date +%s) - T_BEGIN))s] $*" >&2; }

if [ "$QUICK" = 1 ]; then
  RATES="100 1000 5000 20000"   # messages/s from one sender to 1,000 receivers
  DUR=1.5; WARM=0.5; DRAIN=1.5
  CONNS=5000
  LAT_DUR=2
  RETRIES=0   # no retry of a failed step: --quick is a smoke run, not a measurement
  DURABLE_RATES="100 500"   # messages/s per sender, 100 senders
  # mix: users, total msgs/s, reconnects/s (each overridable from the environment)
  MIX_USERS=${MIX_USERS:-500}; MIX_RATES=${MIX_RATES:-1000}; MIX_CHURN=${MIX_CHURN:-20}
else
  RATES="20 50 100 200 500 1000 2000 3000 5000 10000 15000 20000 30000"
  DUR=4; WARM=1; DRAIN=3
  CONNS=15000
  LAT_DUR=5
  RETRIES=2
  DURABLE_RATES="50 100 200 300 400 500 1000 2000"
  MIX_USERS=${MIX_USERS:-2000}; MIX_RATES=${MIX_RATES:-"1000 5000 10000"}
  MIX_CHURN=${MIX_CHURN:-100}
fi
RECEIVERS=1000

# ---------------------------------------------------------------- install + build
install_deps() {
  local missing=()
  command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ] || missing+=(nats-server)
  command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
  command -v gnuplot >/dev/null || missing+=(gnuplot-nox)
  command -v node >/dev/null || missing+=(nodejs)
  command -v npm >/dev/null || missing+=(npm)
  command -v python3 >/dev/null || missing+=(python3)
  command -v cmake >/dev/null || missing+=(cmake)
  command -v taskset >/dev/null || missing+=(util-linux)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  for peer in ws socketio; do
    if [ ! -d "$ROOT/bench/peers/$peer/node_modules" ]; then
      log "npm install for peer $peer"
      (cd "$ROOT/bench/peers/$peer" && npm install --no-audit --no-fund --silent)
    fi
  done
}

build() {
  log "building Release into $BUILD"
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCHATD_TESTS=OFF \
    -DCHATD_SANITIZE=OFF >"$OUT/logs/cmake.log" 2>&1
  cmake --build "$BUILD" -j2 --target chatbench ceiling >>"$OUT/logs/cmake.log" 2>&1
  CHATD_BUILT=1
  cmake --build "$BUILD" -j2 --target chatd >>"$OUT/logs/cmake.log" 2>&1 || CHATD_BUILT=0
}

[ "$INSTALL" = 1 ] && install_deps
build
CB=$BUILD/bench/chatbench
# Room quotas (when this chatd has them): high, so the setup of `mix` (thousands of rooms and
# DMs made in seconds) is not refused. Older binaries without the flags get none of them.
CHATD_QUOTAS=()
if [ "${CHATD_BUILT:-0}" = 1 ]; then
  CHATD_HELP=$("$BUILD/chatd" --help 2>&1 || true)
  for q in --max-owned-rooms --max-rooms-per-user --max-new-dms --room-rate; do
    if grep -q -- "$q " <<<"$CHATD_HELP"; then CHATD_QUOTAS+=("$q" 1000000); fi
  done
fi

# ---------------------------------------------------------------- servers
PATH=$PATH:/usr/sbin
SPID=""
port_of() {
  case $1 in ceiling|ceilingeq) echo 19101 ;; ws) echo 19102 ;; socketio) echo 19103 ;;
    nats) echo 19104 ;; mosquitto) echo 19105 ;; chatd) echo 19106 ;; esac
}
target_of() { case $1 in mosquitto) echo mqtt ;; ceilingeq) echo ceiling ;; *) echo "$1" ;; esac; }
# Body bytes per message. ceilingeq is the ceiling fed bodies as long as chatd's whole `message`
# event (235 bytes + a 4-byte header = the 239 bytes per frame chatd's receivers read): the same
# server at equal bytes per delivery, for reading chatd's fraction of the ceiling.
size_of() { case $1 in ceilingeq) echo 235 ;; *) echo 100 ;; esac; }

wait_port() { # port timeout_s
  local i
  for ((i = 0; i < $2 * 20; i++)); do
    if ss -ltn "sport = :$1" 2>/dev/null | grep -q LISTEN; then return 0; fi
    sleep 0.05
  done
  return 1
}

start_server() { # system -> sets SPID
  local sys=$1 port; port=$(port_of "$sys")
  local logf=$OUT/logs/$sys.log
  if ss -ltn "sport = :$port" | grep -q LISTEN; then
    echo "port $port already in use" > "$OUT/${sys}__skipped.txt"; return 1
  fi
  case $sys in
    ceiling|ceilingeq) taskset -c 0 "$BUILD/bench/ceiling" --port "$port" >>"$logf" 2>&1 & ;;
    ws) taskset -c 0 node "$ROOT/bench/peers/ws/server.js" "$port" >>"$logf" 2>&1 & ;;
    socketio) taskset -c 0 node "$ROOT/bench/peers/socketio/server.js" "$port" >>"$logf" 2>&1 & ;;
    nats)
      sed -e "s/@NATS_PORT@/$((port + 10))/" -e "s/@WS_PORT@/$port/" \
        "$ROOT/bench/peers/nats/nats.conf.in" > "$OUT/nats.conf"
      taskset -c 0 nats-server -c "$OUT/nats.conf" >>"$logf" 2>&1 & ;;
    mosquitto)
      sed -e "s/@MQTT_PORT@/$((port + 10))/" -e "s/@WS_PORT@/$port/" \
        "$ROOT/bench/peers/mosquitto/mosquitto.conf.in" > "$OUT/mosquitto.conf"
      taskset -c 0 mosquitto -c "$OUT/mosquitto.conf" >>"$logf" 2>&1 & ;;
    chatd)
      rm -rf "$OUT/chatd-data"
      taskset -c 0 "$BUILD/chatd" --listen "127.0.0.1:$port" --data-dir "$OUT/chatd-data" \
        --threads 1 --sqlite-sync "${CHATD_SYNC:-normal}" --pwhash-ops 1 --pwhash-mem-kib 8192 \
        --rate-limits off --max-conns-per-user 1000000 "${CHATD_QUOTAS[@]}" \
        --log-level warn >>"$logf" 2>&1 & ;;
  esac
  SPID=$!
  if ! wait_port "$port" 15; then
    echo "server did not listen on $port within 15 s (see logs/$sys.log)" > "$OUT/${sys}__skipped.txt"
    kill "$SPID" 2>/dev/null || true; wait "$SPID" 2>/dev/null || true; SPID=""
    return 1
  fi
  echo "taskset -c 0 <$sys server> (pid $SPID) on 127.0.0.1:$port" >> "$CMDS"
}

stop_server() {
  if [ -n "$SPID" ]; then
    kill "$SPID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SPID" 2>/dev/null || true
    wait "$SPID" 2>/dev/null || true
    SPID=""
  fi
}
trap stop_server EXIT

# run_cb NAME ARGS... : one chatbench run pinned to CPU 1; JSON into $OUT/NAME.json
run_cb() {
  local name=$1; shift
  echo "taskset -c 1 chatbench $*" >> "$CMDS"
  if ! taskset -c 1 "$CB" "$@" --label "$name" --quiet > "$OUT/$name.json" 2>"$OUT/logs/$name.err"; then
    log "chatbench $name failed: $(tail -2 "$OUT/logs/$name.err" | tr '\n' ' ')"
    rm -f "$OUT/$name.json"
    return 1
  fi
}

# verdict FILE -> prints "pass" when p99 < 50 ms, < 1 % missing and no failed connection
verdict() {
  python3 - "$1" <<'EOF'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
    exp = d.get("expected", 0)
    ok = (d["latency_ms"]["p99"] < 50 and exp > 0 and d["drops"] <= 0.01 * exp
          and d["conns_failed"] == 0)
    print("pass" if ok else "fail")
except Exception:
    print("fail")
EOF
}

# quiet_check LABEL: with no server of ours running, how busy are the two cores over 1 s? Other
# work on the machine (builds, tests, another benchmark) shows here; it is recorded per system
# in contention.txt and printed in docs/BENCHMARKS.md, because it moves every figure.
quiet_check() {
  local a b
  a=$(awk '/^cpu / {print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat)
  sleep 1
  b=$(awk '/^cpu / {print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat)
  local busy
  busy=$(echo "$a $b" | awk '{d = $4 - $2; printf "%.2f", (d > 0 ? ($3 - $1) / d * 2 : 0)}')
  local others
  others=$(ps -eo pcpu=,comm= --sort=-pcpu | awk '$1 > 5 {printf "%s(%s%%) ", $2, $1}' | head -c 300)
  echo "$1: ${busy} of 2 cores busy before the run; busy processes: ${others:-none}" >> "$OUT/contention.txt"
}

# ---------------------------------------------------------------- per system
bench_system() {
  local sys=$1 target url port
  quiet_check "$sys"
  target=$(target_of "$sys"); port=$(port_of "$sys"); url=ws://127.0.0.1:$port/
  if [ "$sys" = chatd ] && [ "${CHATD_BUILT:-0}" != 1 ]; then
    echo "chatd did not build (see logs/cmake.log)" > "$OUT/chatd__skipped.txt"; return
  fi
  local size; size=$(size_of "$sys")
  # ceilingeq is the ceiling's server again: only its fanout is run, with longer frames.
  if [ "$sys" != ceilingeq ]; then
    log "== $sys: connections ($CONNS)"
    if start_server "$sys"; then
      run_cb "${sys}__connections" connections --target "$target" --url "$url" --conns "$CONNS" \
        --server-pid "$SPID" --connect-timeout 60 || true
      stop_server
    else
      log "$sys: $(cat "$OUT/${sys}__skipped.txt")"; return
    fi
  fi
  log "== $sys: latency at 100,000 deliveries/s, then the fanout sweep"
  start_server "$sys" || return
  run_cb "${sys}__latency100k" fanout --target "$target" --url "$url" --receivers $RECEIVERS \
    --size "$size" --senders 1 --rate 100 --duration $LAT_DUR --warmup $WARM --drain $DRAIN --server-pid "$SPID" || true
  for rate in $RATES; do
    if ! kill -0 "$SPID" 2>/dev/null; then
      echo "server exited during the sweep at $rate msg/s" >> "$OUT/${sys}__notes.txt"; break
    fi
    run_cb "${sys}__fanout__$rate" fanout --target "$target" --url "$url" --receivers $RECEIVERS \
      --size "$size" --senders 1 --rate "$rate" --duration $DUR --warmup $WARM --drain $DRAIN \
      --server-pid "$SPID" || break
    v=$(verdict "$OUT/${sys}__fanout__$rate.json")
    for try in $(seq 1 "$RETRIES"); do
      [ "$v" != pass ] && kill -0 "$SPID" 2>/dev/null || break
      # Retry (twice at most) on fresh connections: this is a shared VM and single runs at high
      # load vary by 2x or more in p99. Every attempt is kept as NAME__retryN__RATE.json.
      mv "$OUT/${sys}__fanout__$rate.json" "$OUT/${sys}__retry${try}__$rate.json"
      run_cb "${sys}__fanout__$rate" fanout --target "$target" --url "$url" --receivers $RECEIVERS \
        --size "$size" --senders 1 --rate "$rate" --duration $DUR --warmup $WARM --drain $DRAIN \
        --server-pid "$SPID" || break 2
      v=$(verdict "$OUT/${sys}__fanout__$rate.json")
      log "$sys fanout $rate msg/s: retry $try: $v"
    done
    log "$sys fanout $rate msg/s x $RECEIVERS: $v"
    [ "$v" = pass ] || break
  done
  stop_server
  if [ "$sys" = chatd ]; then
    bench_chatd_only
  elif [ "$sys" = ceiling ]; then
    # The floor of `durable`: the same senders and rates, each frame acked and stored nowhere.
    log "== ceiling: durable (acks only, no storage)"
    start_server ceiling || return
    for rate in $DURABLE_RATES; do
      run_cb "ceiling__durable__$rate" durable --target ceiling --url "$url" --senders 100 \
        --rate "$rate" --tick-us 1000 --duration $DUR --warmup $WARM --drain $DRAIN --server-pid "$SPID" || break
    done
    stop_server
  fi
}

# mix_sweep: chatd's `mix` at each of MIX_RATES on the running server (SPID).
mix_sweep() {
  local rate
  for rate in $MIX_RATES; do
    kill -0 "$SPID" 2>/dev/null || break
    run_cb "chatd__mix__$rate" mix --target chatd --url "ws://127.0.0.1:$(port_of chatd)/" \
      --users "$MIX_USERS" --rate "$rate" --churn "$MIX_CHURN" --duration $DUR --warmup $WARM \
      --drain $DRAIN --server-pid "$SPID" || break
  done
}

bench_chatd_only() {
  local url=ws://127.0.0.1:$(port_of chatd)/
  for sc in durable storm history mix; do
    log "== chatd: $sc"
    start_server chatd || return
    case $sc in
      durable)
        for rate in $DURABLE_RATES; do
          run_cb "chatd__durable__$rate" durable --target chatd --url "$url" --senders 100 \
            --rate "$rate" --tick-us 1000 --duration $DUR --warmup $WARM --drain $DRAIN --server-pid "$SPID" || break
        done
        stop_server
        # The same with synchronous=FULL (an fsync per group commit), chatd's default.
        CHATD_SYNC=full start_server chatd || return
        for rate in $([ "$QUICK" = 1 ] && echo "100" || echo "50 100 200 500 1000"); do
          run_cb "chatd-full__durable__$rate" durable --target chatd --url "$url" --senders 100 \
            --rate "$rate" --tick-us 1000 --duration $DUR --warmup $WARM --drain $DRAIN --server-pid "$SPID" || break
        done ;;
      storm)
        run_cb "chatd__storm" storm --target chatd --url "$url" --conns "$CONNS" --rooms 100 \
          --missed 10 --server-pid "$SPID" || true ;;
      mix)
        # Real-chat shape: MIX_USERS users (one connection each) in groups of 10 (3 each) and 4
        # DMs each, 10 % of them sending at a total of RATE msgs/s with durable acks, MIX_CHURN
        # connections/s reset and resynced. One server for all rates (each run makes its own
        # users and rooms; the registrations take most of the setup).
        mix_sweep ;;
      history)
        run_cb "chatd__history" history --target chatd --url "$url" \
          --history-msgs "$([ "$QUICK" = 1 ] && echo 100000 || echo 1000000)" \
          --server-pid "$SPID" || true ;;
    esac
    stop_server
  done
}

# ---------------------------------------------------------------- machine + versions
machine_json() {
  local ver_ws ver_sio
  ver_ws=$(cd "$ROOT/bench/peers/ws" && node -p "require('ws/package.json').version" 2>/dev/null || echo none)
  ver_sio=$(cd "$ROOT/bench/peers/socketio" && node -p "require('socket.io/package.json').version" 2>/dev/null || echo none)
  python3 - "$OUT/machine.json" <<EOF
import json, os, platform, subprocess, sys
def sh(cmd):
    try:
        r = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=10)
        return (r.stdout or r.stderr).strip().splitlines()[0]
    except Exception:
        return "none"
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem = next((l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")), "?")
osr = dict(l.rstrip().split("=", 1) for l in open("/etc/os-release") if "=" in l)
json.dump({
    "cpu": cpu, "cores": os.cpu_count(), "mem_kib": int(mem), "kernel": platform.release(),
    "os": osr.get("PRETTY_NAME", "?").strip('"'), "nofile": sh("ulimit -n"),
    "chatd": sh("$BUILD/chatd --version"), "git": sh("git -C $ROOT rev-parse --short HEAD"),
    "node": sh("node --version"), "ws": "$ver_ws", "socketio": "$ver_sio",
    "nats": sh("nats-server --version"), "mosquitto": sh("mosquitto -h"), "gcc": sh("gcc --version"),
    "quick": $QUICK, "stamp": "$STAMP"}, open(sys.argv[1], "w"), indent=1)
EOF
}
machine_json

if [ "$MIX_ONLY" = 1 ]; then
  quiet_check chatd
  if [ "${CHATD_BUILT:-0}" != 1 ]; then echo "chatd did not build" >&2; exit 1; fi
  log "== chatd: mix"
  if start_server chatd; then
    mix_sweep
    stop_server
  fi
  SYSTEMS=""
fi
for sys in $SYSTEMS; do
  bench_system "$sys"
done
echo "$(($(date +%s) - T_BEGIN))" > "$OUT/elapsed_seconds"
log "results in $OUT"

if [ "$DOCS" = 1 ]; then
  python3 "$ROOT/bench/report.py" "$OUT" "$ROOT/docs"
  log "wrote docs/BENCHMARKS.md"
fi

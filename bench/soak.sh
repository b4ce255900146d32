#!/usr/bin/env bash
# bench/soak.sh - the soak test (issue 11, not in CI): one release chatd under an hour of mixed
# load at about half of its measured capacity, sampled every minute; flat memory is the target.
#
#   bench/soak.sh [--duration 3600] [--interval 60] [--durable-rate 50] [--fanout-rate 250]
#                 [--threads 0] [--no-install] [--no-docs]
#
# Load (127.0.0.1 only; every part stops by itself after --duration, see docs/BENCHMARKS.md "Soak"
# for why this is about half capacity):
#   durable  chatbench durable: 100 senders x --durable-rate 50 = 5,000 msgs/s, each acked
#   fanout   chatbench fanout: 1 sender x --fanout-rate 250 msgs/s into one room of 1,000
#            receivers = 250,000 deliveries/s
#   mixed    bench/soak/load.js: 2,000 idle WebSockets of 400 users in 20 rooms, 10 reconnects/s
#            (resuming with sync), 20 REST history reads/s, a sampling sender at 20 msgs/s
# Every --interval seconds one CSV row goes to bench/out/soak-<stamp>/soak.csv: server RSS, peak
# RSS and RSS split into anonymous memory and mapped files (/proc/PID/status), open files (/proc/PID/fd), threads, the data directory's bytes,
# CPU use of chatd, of the load and of the whole machine, and the latency of each load over its
# last interval (ack p50/p99 of durable, delivery p99 of fanout, ack p99 of the sampling sender,
# history read p99) and a few of chatd's /metrics. Then docs/bench/soak.csv, docs/bench/soak.png (gnuplot) and the numbers for
# the "Soak" section of docs/BENCHMARKS.md (bench/soak.md, appended to it by bench/report.py).
# chatd and chatbench are built Release without sanitizers into build-bench/ (as bench/run.sh).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${CHATBENCH_BUILD_DIR:-$ROOT/build-bench}
DURATION=3600
INTERVAL=60
INSTALL=1
DOCS=1
PORT=${SOAK_PORT:-19201}
DURABLE_RATE=50   # per sender, 100 senders
FANOUT_RATE=250   # messages/s into the room of 1,000 receivers
THREADS=0         # chatd --threads: 0 = one I/O thread per core, chatd's default
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift ;;
    --interval) INTERVAL=$2; shift ;;
    --durable-rate) DURABLE_RATE=$2; shift ;;
    --fanout-rate) FANOUT_RATE=$2; shift ;;
    --threads) THREADS=$2; shift ;;
    --no-install) INSTALL=0 ;;
    --no-docs) DOCS=0 ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "soak.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
case "$DURATION$INTERVAL" in *[!0-9]*) echo "soak.sh: --duration and --interval are whole seconds" >&2; exit 2 ;; esac
[ "$INTERVAL" -ge 5 ] && [ "$DURATION" -ge "$INTERVAL" ] || { echo "soak.sh: need --interval >= 5 and --duration >= --interval" >&2; exit 2; }

STAMP=$(date -u +%Y%m%d-%H%M%S)
OUT=$ROOT/bench/out/soak-$STAMP
mkdir -p "$OUT/logs"
ln -sfn "soak-$STAMP" "$ROOT/bench/out/soak-latest"
T_BEGIN=$(date +%s)
log() { echo "[soak.sh $(($(date +%s) - T_BEGIN))s] $*" >&2; }

# ---------------------------------------------------------------- install + build
if [ "$INSTALL" = 1 ]; then
  missing=()
  command -v gnuplot >/dev/null || missing+=(gnuplot-nox)
  command -v node >/dev/null || missing+=(nodejs)
  command -v npm >/dev/null || missing+=(npm)
  command -v curl >/dev/null || missing+=(curl)
  command -v cmake >/dev/null || missing+=(cmake)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  if [ ! -d "$ROOT/bench/soak/node_modules/ws" ]; then
    log "npm install in bench/soak"
    (cd "$ROOT/bench/soak" && npm install --no-audit --no-fund --silent)
  fi
fi
log "building Release into $BUILD"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCHATD_TESTS=OFF -DCHATD_SANITIZE=OFF \
  >"$OUT/logs/cmake.log" 2>&1
cmake --build "$BUILD" -j2 --target chatd chatbench >>"$OUT/logs/cmake.log" 2>&1
CB=$BUILD/bench/chatbench

# ---------------------------------------------------------------- server
if ss -ltn "sport = :$PORT" | grep -q LISTEN; then
  echo "soak.sh: port $PORT is in use (set SOAK_PORT)" >&2; exit 1
fi
# Nothing is pinned to a core and chatd has its default I/O threads (one per core), unlike
# bench/run.sh: on a shared machine a pinned, single-threaded chatd cannot use what the other core
# has free. Otherwise the benchmark flags of bench/run.sh (synchronous=NORMAL, cheap Argon2id, no
# rate limits) so that capacity figures compare; tokens outlive the run.
CHATD_ARGS=(--listen "127.0.0.1:$PORT" --data-dir "$OUT/chatd-data" --threads "$THREADS" --sqlite-sync normal
  --pwhash-ops 1 --pwhash-mem-kib 8192 --rate-limits off --max-conns-per-user 1000000
  --access-ttl $((DURATION + 3600)) --log-level warn)
"$BUILD/chatd" "${CHATD_ARGS[@]}" >"$OUT/logs/chatd.log" 2>&1 &
SPID=$!
LOADPIDS=()
cleanup() {
  for p in "${LOADPIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  if kill -0 "$SPID" 2>/dev/null; then
    kill "$SPID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SPID" 2>/dev/null || true
  fi
  wait 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 1 300); do
  ss -ltn "sport = :$PORT" | grep -q LISTEN && break
  kill -0 "$SPID" 2>/dev/null || { echo "soak.sh: chatd exited (logs/chatd.log)" >&2; exit 1; }
  sleep 0.05
done

# ---------------------------------------------------------------- load
URL=ws://127.0.0.1:$PORT/
# The loads run 45 s longer than the sampling, which starts once all of them are running, so the
# last sample is still taken under the full load; each load then stops by itself.
LOAD_S=$((DURATION + 45))
{
  echo "# $(date -u +%FT%TZ) git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)"
  echo "bench/soak.sh --duration $DURATION --interval $INTERVAL --durable-rate $DURABLE_RATE --fanout-rate $FANOUT_RATE --threads $THREADS"
  echo "chatd ${CHATD_ARGS[*]}"
} >"$OUT/commands.txt"
run_load() { # name cmd...
  local name=$1; shift
  echo "$*" >>"$OUT/commands.txt"
  "$@" >"$OUT/$name.out" 2>"$OUT/logs/$name.err" &
  LOADPIDS+=($!)
}
run_load durable "$CB" durable --target chatd --url "$URL" --senders 100 --rate "$DURABLE_RATE" --tick-us 1000 \
  --duration "$LOAD_S" --warmup 0 --drain 5 --server-pid "$SPID" --quiet \
  --every "$INTERVAL" --every-file "$OUT/durable.csv"
run_load fanout "$CB" fanout --target chatd --url "$URL" --receivers 1000 --senders 1 --rate "$FANOUT_RATE" \
  --duration "$LOAD_S" --warmup 0 --drain 5 --server-pid "$SPID" --quiet \
  --every "$INTERVAL" --every-file "$OUT/fanout.csv"
run_load mixed node "$ROOT/bench/soak/load.js" --url "http://127.0.0.1:$PORT" --duration "$LOAD_S" \
  --every "$INTERVAL" --every-file "$OUT/mixed.csv"
for _ in $(seq 1 180); do # load.js registers its users and opens its connections first
  grep -q running "$OUT/logs/mixed.err" 2>/dev/null && break
  kill -0 "${LOADPIDS[2]}" 2>/dev/null || { echo "soak.sh: load.js failed: $(tail -3 "$OUT/logs/mixed.err")" >&2; exit 1; }
  sleep 1
done
log "chatd pid $SPID, load pids ${LOADPIDS[*]}; $DURATION s, a row every $INTERVAL s -> $OUT/soak.csv"

# ---------------------------------------------------------------- sampling
CLK=$(getconf CLK_TCK)
proc_ticks() { # pid... -> utime+stime of these processes and their children (ticks)
  local t=0 p v
  for p in "$@"; do
    for q in $p $(pgrep -P "$p" 2>/dev/null || true); do
      v=$(awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$q/stat" 2>/dev/null || echo 0)
      t=$((t + v))
    done
  done
  echo "$t"
}
machine_ticks() { awk '/^cpu / {print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat; }
status_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
last_row() { # file -> its last data row, or empty
  [ -s "$1" ] && [ "$(wc -l <"$1")" -gt 1 ] && tail -n 1 "$1" || true
}
col() { # row index(1-based) -> field
  echo "$1" | cut -d, -f"$2"
}
num() { case $1 in ''|*[!0-9]*) echo 0 ;; *) echo "$1" ;; esac; }

CSV=$OUT/soak.csv
echo "t_min,rss_mib,hwm_mib,fds,threads,data_mib,chatd_cpu,load_cpu,machine_busy,others_busy,durable_msgs_s,durable_ack_p50_ms,durable_ack_p99_ms,durable_ack_max_ms,fanout_deliv_s,fanout_p50_ms,fanout_p99_ms,sample_ack_p50_ms,sample_ack_p99_ms,history_p50_ms,history_p99_ms,conns_open,reconnects,cb_errors,mixed_errors,rss_anon_mib,rss_file_mib,ws_open,slow_consumer_closed,store_queued_jobs" >"$CSV"
T0=$(date +%s)
c0=$(proc_ticks "$SPID"); l0=$(proc_ticks "${LOADPIDS[@]}"); read -r mb0 mt0 <<<"$(machine_ticks)"
N=$((DURATION / INTERVAL))
set +e # a failed sample (a file that vanished, a process gone) must not end the soak
for ((i = 1; i <= N; i++)); do
  # Sample a few seconds after each load wrote its row for the same interval.
  target=$((T0 + i * INTERVAL + 3))
  while [ "$(date +%s)" -lt "$target" ]; do
    kill -0 "$SPID" 2>/dev/null || break 2
    sleep 1
  done
  kill -0 "$SPID" 2>/dev/null || { log "chatd exited during the soak"; break; }
  rss=$(status_kib "$SPID" VmRSS); hwm=$(status_kib "$SPID" VmHWM); thr=$(awk '$1 == "Threads:" {print $2}' "/proc/$SPID/status")
  fds=$(ls "/proc/$SPID/fd" | wc -l)
  data=$(du -sk "$OUT/chatd-data" 2>/dev/null | cut -f1); data=$(num "$data")
  c1=$(proc_ticks "$SPID"); l1=$(proc_ticks "${LOADPIDS[@]}"); read -r mb1 mt1 <<<"$(machine_ticks)"
  [ "$mt1" -gt "$mt0" ] || mt1=$((mt0 + 1))
  # CPU in cores: process ticks over elapsed ticks of one core; machine busy in cores (of 2).
  ncpu=$(nproc)
  chatd_cpu=$(awk -v a="$c0" -v b="$c1" -v m0="$mt0" -v m1="$mt1" -v n="$ncpu" 'BEGIN {printf "%.2f", (b - a) / ((m1 - m0) / n)}')
  # (blank when a load process ended within the interval: its ticks are gone)
  load_cpu=$(awk -v a="$l0" -v b="$l1" -v m0="$mt0" -v m1="$mt1" -v n="$ncpu" 'BEGIN {if (b >= a) printf "%.2f", (b - a) / ((m1 - m0) / n)}')
  busy=$(awk -v a="$mb0" -v b="$mb1" -v m0="$mt0" -v m1="$mt1" -v n="$ncpu" 'BEGIN {printf "%.2f", (b - a) / (m1 - m0) * n}')
  others=$(awk -v b="$busy" -v c="$chatd_cpu" -v l="$load_cpu" 'BEGIN {o = b - c - l; if (l != "") printf "%.2f", o < 0 ? 0 : o}')
  c0=$c1; l0=$l1; mb0=$mb1; mt0=$mt1
  d=$(last_row "$OUT/durable.csv"); f=$(last_row "$OUT/fanout.csv"); m=$(last_row "$OUT/mixed.csv")
  per_s() { awk -v x="$1" -v s="$INTERVAL" 'BEGIN {printf "%.0f", (x == "" ? 0 : x) / s}'; }
  row="$(awk -v t=$((i * INTERVAL)) 'BEGIN {printf "%.1f", t / 60}')"
  row+=",$(awk -v r="$rss" -v h="$hwm" 'BEGIN {printf "%.1f,%.1f", r / 1024, h / 1024}'),$fds,$thr,$((data / 1024))"
  row+=",$chatd_cpu,$load_cpu,$busy,$others"
  row+=",$(per_s "$(col "$d" 7)"),$(col "$d" 8),$(col "$d" 9),$(col "$d" 10)"
  row+=",$(per_s "$(col "$f" 11)"),$(col "$f" 12),$(col "$f" 13)"
  row+=",$(col "$m" 12),$(col "$m" 13),$(col "$m" 8),$(col "$m" 9)"
  # chatbench: errors + lost connections so far (cumulative); load.js: errors, lost connections
  # and failed reconnects in this interval.
  cb_errs=$(( $(num "$(col "$d" 4)") + $(num "$(col "$d" 5)") + $(num "$(col "$f" 4)") + $(num "$(col "$f" 5)") ))
  mx_errs=$(( $(num "$(col "$m" 16)") + $(num "$(col "$m" 5)") + $(num "$(col "$m" 4)") + $(num "$(col "$m" 7)") ))
  row+=",$(col "$m" 2),$(col "$m" 3),$cb_errs,$mx_errs"
  anon=$(status_kib "$SPID" RssAnon); file=$(status_kib "$SPID" RssFile)
  row+=",$(awk -v a="$anon" -v f="$file" 'BEGIN {printf "%.1f,%.1f", a / 1024, f / 1024}')"
  metrics=$(curl -s -m 10 "http://127.0.0.1:$PORT/metrics" 2>/dev/null)
  metric() { echo "$metrics" | awk -v k="$1" '$1 == k {print $2}'; }
  row+=",$(metric chatd_websockets_open),$(metric chatd_ws_slow_consumer_closed_total),$(metric chatd_store_queued_jobs)"
  echo "$row" >>"$CSV"
  log "$(echo "$row" | cut -d, -f1-7,11-13,16,17,19)"
done
T_END=$(date +%s)
log "sampling done after $((T_END - T0)) s; waiting for the load to stop"
for p in "${LOADPIDS[@]}"; do
  for _ in $(seq 1 1200); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
done
SURVIVED=1; kill -0 "$SPID" 2>/dev/null || SURVIVED=0
echo "$SURVIVED" >"$OUT/chatd_survived"
echo $((T_END - T0)) >"$OUT/sampled_seconds"
cleanup
trap - EXIT
grep -c . "$OUT/logs/chatd.log" >"$OUT/chatd_log_lines" || true

# ---------------------------------------------------------------- plot + docs
plot() {
  command -v gnuplot >/dev/null || { log "no gnuplot: no plot"; return; }
  gnuplot -e "csv='$CSV'; png='$OUT/soak.png'; ttl='chatd soak: $((T_END - T0)) s of mixed load ($STAMP)'" \
    "$ROOT/bench/soak.gp"
}
plot || log "gnuplot failed"
python3 "$ROOT/bench/soak_report.py" "$OUT" >"$OUT/summary.md" || log "summary failed"
if [ "$DOCS" = 1 ]; then
  mkdir -p "$ROOT/docs/bench"
  cp "$CSV" "$ROOT/docs/bench/soak.csv"
  [ -f "$OUT/soak.png" ] && cp "$OUT/soak.png" "$ROOT/docs/bench/soak.png"
  cp "$OUT/summary.md" "$ROOT/bench/soak.md"
  python3 "$ROOT/bench/soak_report.py" --update-doc "$ROOT/docs/BENCHMARKS.md" "$ROOT/bench/soak.md"
  log "wrote docs/bench/soak.csv, docs/bench/soak.png, bench/soak.md and the Soak section of docs/BENCHMARKS.md"
fi
log "results in $OUT"
cat "$OUT/summary.md"

#!/usr/bin/env bash
# A chatd cluster on this machine, on loopback only, from Debian's packages (no Docker):
# PostgreSQL (storage), three nats-server processes clustered with JetStream (cross-node
# fanout), Redis, N chatd nodes and nginx in front of them on one port.
#
#   scripts/cluster.sh up [NODES]   install what is missing, build chatd, start everything (3 nodes)
#   scripts/cluster.sh status       what runs, each node's /readyz
#   scripts/cluster.sh down         stop everything (by PID files)
#   scripts/cluster.sh env          print the URLs (eval-able: CHATD_STORE_URL=... )
#
# Settings (environment): CHATD_CLUSTER_DIR (state, default /tmp/chatd-cluster), CHATD_CLUSTER_PORT
# (nginx, default 8080), CHATD_NODE_BASE (first node's port, default 8181), CHATD_NATS_BASE
# (first NATS client port, default 4322; cluster routes +1000, monitoring +4000),
# CHATD_REDIS_PORT (6479), CHATD_BIN (a chatd binary to run instead of building one),
# CHATD_NODE_ARGS (extra flags for every node), CHATD_CLUSTER_WORKERS (1, default: the nodes run
# --roles gateway and one more process runs every other role, --roles relay,notifier,exporter,
# indexer, on the port after the last node's, outside nginx; 0: every node runs all roles).
# Everything is described in docs/CLUSTER.md.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${CHATD_CLUSTER_DIR:-/tmp/chatd-cluster}
PORT=${CHATD_CLUSTER_PORT:-8080}
NODE_BASE=${CHATD_NODE_BASE:-8181}
NATS_BASE=${CHATD_NATS_BASE:-4322}
REDIS_PORT=${CHATD_REDIS_PORT:-6479}
export CHATD_PG_DIR=$DIR/pg

log() { echo "cluster: $*" >&2; }

deps() {
  local pkgs=(postgresql nats-server redis-server nginx-light) missing=()
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    local SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  "$ROOT/scripts/deps.sh"
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_port() { # port seconds
  for _ in $(seq 1 $(( $2 * 10 ))); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  return 1
}

nats_urls() {
  local u=() i
  for i in 0 1 2; do u+=("nats://127.0.0.1:$((NATS_BASE + i))"); done
  (IFS=,; echo "${u[*]}")
}

start_nats() {
  local i routes=()
  for i in 0 1 2; do routes+=("nats-route://127.0.0.1:$((NATS_BASE + 1000 + i))"); done
  for i in 0 1 2; do
    local pidf=$DIR/nats$i.pid conf=$DIR/nats$i.conf
    alive "$pidf" && continue
    mkdir -p "$DIR/nats$i"
    cat > "$conf" <<CONF
server_name: chatd-nats$i
listen: 127.0.0.1:$((NATS_BASE + i))
http: 127.0.0.1:$((NATS_BASE + 4000 + i))
max_payload: 1MB
jetstream { store_dir: "$DIR/nats$i", max_memory_store: 256MB, max_file_store: 2GB }
cluster {
  name: chatd
  listen: 127.0.0.1:$((NATS_BASE + 1000 + i))
  routes: [ $(IFS=,; echo "${routes[*]}") ]
}
CONF
    nats-server -c "$conf" >>"$DIR/nats$i.log" 2>&1 &
    echo $! > "$pidf"
  done
  for i in 0 1 2; do wait_port $((NATS_BASE + i)) 15 || { log "nats$i did not start (see $DIR/nats$i.log)"; exit 1; }; done
}

start_redis() {
  alive "$DIR/redis.pid" && return
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    --dir "$DIR" --logfile "$DIR/redis.log" --daemonize no >/dev/null 2>&1 &
  echo $! > "$DIR/redis.pid"
  wait_port "$REDIS_PORT" 15 || { log "redis did not start (see $DIR/redis.log)"; exit 1; }
}

chatd_bin() {
  if [ -n "${CHATD_BIN:-}" ]; then echo "$CHATD_BIN"; return; fi
  cmake -S "$ROOT" -B "$ROOT/build-release" -DCMAKE_BUILD_TYPE=Release -DCHATD_TESTS=OFF >/dev/null
  cmake --build "$ROOT/build-release" -j"$(nproc)" --target chatd >/dev/null
  echo "$ROOT/build-release/chatd"
}

# Every node signs and verifies tokens with the same keys: generated once, kept in the state dir.
jwt_keys() {
  local f=$DIR/jwt.keys
  if [ ! -s "$f" ]; then
    (umask 077; echo "k$(head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n'):$(head -c32 /dev/urandom | od -An -tx1 | tr -d ' \n')" > "$f")
  fi
  cat "$f"
}

WORKERS=${CHATD_CLUSTER_WORKERS:-1}

start_node() { # index binary store_url keys [name roles]: a gateway node, or the workers process
  local i=$1 bin=$2 url=$3 keys=$4 port=$((NODE_BASE + $1)) name=${5:-node$1} roles=${6:-all} nats
  local pidf=$DIR/$name.pid
  alive "$pidf" && return
  [ "$WORKERS" = 1 ] && [ -z "${5:-}" ] && roles=gateway
  mkdir -p "$DIR/$name"
  nats=$(nats_urls)
  # shellcheck disable=SC2086
  "$bin" --listen "127.0.0.1:$port" --data-dir "$DIR/$name" --store-url "$url" \
    --nats-url "$nats" --redis-url "redis://127.0.0.1:$REDIS_PORT" --node-id "$name" \
    --jwt-keys "$keys" --roles "$roles" ${CHATD_NODE_ARGS:-} >>"$DIR/$name.log" 2>&1 &
  echo $! > "$pidf"
}

start_nginx() {
  local n=$1 i conf=$DIR/nginx.conf
  alive "$DIR/nginx.pid" && return
  mkdir -p "$DIR/nginx"
  {
    echo "worker_processes 1; pid $DIR/nginx.pid; error_log $DIR/nginx.log warn; daemon off;"
    echo "events { worker_connections 16384; }"
    echo "http {"
    echo "  access_log off; client_body_temp_path $DIR/nginx; proxy_temp_path $DIR/nginx;"
    echo "  fastcgi_temp_path $DIR/nginx; uwsgi_temp_path $DIR/nginx; scgi_temp_path $DIR/nginx;"
    echo "  map \$http_upgrade \$connection_upgrade { default upgrade; '' ''; }"
    echo "  upstream chatd {"
    for i in $(seq 0 $((n - 1))); do
      echo "    server 127.0.0.1:$((NODE_BASE + i)) max_fails=1 fail_timeout=5s;"
    done
    echo "    keepalive 64;"
    echo "  }"
    echo "  server {"
    echo "    listen 127.0.0.1:$PORT;"
    echo "    location / {"
    echo "      proxy_pass http://chatd; proxy_http_version 1.1;"
    echo "      proxy_set_header Upgrade \$http_upgrade; proxy_set_header Connection \$connection_upgrade;"
    echo "      proxy_set_header X-Forwarded-For \$remote_addr; proxy_set_header Host \$host;"
    echo "      proxy_read_timeout 3600s; proxy_send_timeout 3600s;"
    echo "      proxy_next_upstream error timeout http_502 http_503;"
    echo "    }"
    echo "  }"
    echo "}"
  } > "$conf"
  nginx -c "$conf" -p "$DIR/nginx" >>"$DIR/nginx.log" 2>&1 &
  echo $! > "$DIR/nginx.pid.launch"
  wait_port "$PORT" 15 || { log "nginx did not start (see $DIR/nginx.log)"; exit 1; }
}

up() {
  local n=${1:-3} bin url i keys
  mkdir -p "$DIR"
  chmod 711 "$DIR" # PostgreSQL runs as its own user and must reach $DIR/pg; files stay private
  deps
  url=$("$ROOT/scripts/pg.sh" start)
  start_nats
  start_redis
  bin=$(chatd_bin)
  keys=$(jwt_keys) # once: every node signs and verifies with the same keys
  for i in $(seq 0 $((n - 1))); do start_node "$i" "$bin" "$url" "$keys"; done
  for i in $(seq 0 $((n - 1))); do
    wait_port $((NODE_BASE + i)) 30 || { log "node$i did not start (see $DIR/node$i.log)"; tail -5 "$DIR/node$i.log" >&2; exit 1; }
  done
  if [ "$WORKERS" = 1 ]; then # the roles beside the gateway, in a process of their own
    start_node "$n" "$bin" "$url" "$keys" workers relay,notifier,exporter,indexer
    wait_port $((NODE_BASE + n)) 30 || { log "workers did not start (see $DIR/workers.log)"; tail -5 "$DIR/workers.log" >&2; exit 1; }
  fi
  echo "$n" > "$DIR/nodes"
  start_nginx "$n"
  log "up: http://127.0.0.1:$PORT/ (nginx) -> $n chatd nodes on ports $NODE_BASE..$((NODE_BASE + n - 1))"
  status
}

status() {
  local n i f
  n=$(cat "$DIR/nodes" 2>/dev/null || echo 0)
  "$ROOT/scripts/pg.sh" status || true
  for i in 0 1 2; do alive "$DIR/nats$i.pid" && echo "nats$i: running (127.0.0.1:$((NATS_BASE + i)))" || echo "nats$i: stopped"; done
  alive "$DIR/redis.pid" && echo "redis: running (127.0.0.1:$REDIS_PORT)" || echo "redis: stopped"
  for i in $(seq 0 $((n - 1))); do
    f=$DIR/node$i.pid
    if alive "$f"; then
      echo "node$i: pid $(cat "$f"), 127.0.0.1:$((NODE_BASE + i)), readyz $(curl -s -o /dev/null -w '%{http_code}' "127.0.0.1:$((NODE_BASE + i))/readyz")"
    else echo "node$i: stopped"; fi
  done
  alive "$DIR/workers.pid" && echo "workers: pid $(cat "$DIR/workers.pid"), 127.0.0.1:$((NODE_BASE + n)) (relay, notifier, exporter, indexer), readyz $(curl -s -o /dev/null -w '%{http_code}' "127.0.0.1:$((NODE_BASE + n))/readyz")"
  alive "$DIR/nginx.pid" && echo "nginx: running (127.0.0.1:$PORT)" || echo "nginx: stopped"
}

stop_pid() { # pidfile [signal]
  local f=$1 p
  [ -f "$f" ] || return 0
  p=$(cat "$f")
  if kill -0 "$p" 2>/dev/null; then
    kill "-${2:-TERM}" "$p" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null || true
  fi
  rm -f "$f"
}

down() {
  local i
  stop_pid "$DIR/nginx.pid" QUIT; rm -f "$DIR/nginx.pid.launch"
  for f in "$DIR"/node*.pid "$DIR/workers.pid"; do [ -e "$f" ] && stop_pid "$f"; done
  stop_pid "$DIR/redis.pid"
  for i in 0 1 2; do stop_pid "$DIR/nats$i.pid"; done
  "$ROOT/scripts/pg.sh" stop || true
  log "down"
}

case ${1:-} in
  up) shift; up "$@" ;;
  status) status ;;
  down) down ;;
  env)
    echo "CHATD_STORE_URL=$("$ROOT/scripts/pg.sh" url)"
    echo "CHATD_NATS_URL=$(nats_urls)"
    echo "CHATD_REDIS_URL=redis://127.0.0.1:$REDIS_PORT" ;;
  *) sed -n '2,19p' "$0"; exit 2 ;;
esac

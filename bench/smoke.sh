#!/usr/bin/env bash
# bench/smoke.sh URL [CHATBENCH] - a seconds-long chatbench run against a running chatd, for the
# test suite: it checks that the tool still works end to end (connect, authenticate, send,
# receive, JSON result; mix: churn with sync), never how fast. No timing assertions.
#
#   bench/smoke.sh ws://127.0.0.1:8080/ [build/bench/chatbench]
#
# The chatd under test must allow cheap registration (e.g. --rate-limits off, or an --auth-rate
# high enough for a few registrations). Exit 0 when every run produced a result with no failed
# connection, no error and nothing missing or doubled; 1 otherwise.
set -euo pipefail
URL=${1:?usage: bench/smoke.sh ws://127.0.0.1:PORT/ [chatbench]}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CB=${2:-}
if [ -z "$CB" ]; then
  for c in "$ROOT/build/bench/chatbench" "$ROOT/build-bench/bench/chatbench"; do
    [ -x "$c" ] && CB=$c && break
  done
fi
[ -x "${CB:-}" ] || { echo "smoke.sh: chatbench not built" >&2; exit 1; }

fail=0
check() { # name json
  python3 - "$1" "$2" <<'PY' || fail=1
import json, sys
name, raw = sys.argv[1], sys.argv[2]
try:
    d = json.loads(raw)
except ValueError:
    print(f"smoke {name}: FAILED (chatbench produced no result)")
    sys.exit(1)
bad = []
if d["conns_failed"] or d["errors"] or d["closed"]:
    bad.append(f'failed={d["conns_failed"]} errors={d["errors"]} closed={d["closed"]}')
if "expected" in d and (d["drops"] != 0 or d["dups"] != 0 or d["received"] == 0 or d.get("gaps", 0)):
    bad.append(f'expected={d["expected"]} received={d["received"]} dups={d["dups"]} gaps={d.get("gaps", 0)}')
if d.get("scenario") == "mix" and (not d["ok"] or d["reconnects"] == 0):
    bad.append(f'ok={d["ok"]} reconnects={d["reconnects"]} reconnect_failed={d["reconnect_failed"]}')
print(f"smoke {name}: " + ("ok" if not bad else "FAILED " + "; ".join(bad)))
sys.exit(1 if bad else 0)
PY
}
out=$("$CB" connections --target chatd --url "$URL" --conns 50 --users 2 --quiet --connect-timeout 10) || true
check connections "$out"
out=$("$CB" fanout --target chatd --url "$URL" --receivers 20 --senders 2 --rate 20 --users 5 \
  --duration 1 --warmup 0.2 --drain 3 --quiet --connect-timeout 10) || true
check fanout "$out"
# mix: small rooms and DMs, 20 % of the users sending, connections reset and resynced meanwhile
out=$("$CB" mix --target chatd --url "$URL" --users 20 --rate 40 --senders-share 0.2 --churn 10 \
  --room-size 5 --setup-procs 2 --duration 1 --warmup 0.5 --drain 3 --quiet --connect-timeout 10) || true
check mix "$out"
exit $fail

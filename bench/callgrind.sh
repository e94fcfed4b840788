#!/usr/bin/env bash
# bench/callgrind.sh: instructions per proxied request (base-URL mode) counted by callgrind.
# A run with REQUESTS keep-alive requests minus a run with none (start, token fetch, stop), and
# the top functions of the request path into docs/bench/callgrind-top.txt.
#
# With -H, HAProxy doing the same job (set the header, forward over TLS to the same upstream, one
# thread) is counted the same way, for a figure of the same kind next to msiproxy's.
#
# usage: bench/callgrind.sh [-n REQUESTS] [-s RESPONSE_BYTES] [-H]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
REQ=2000 SIZE=3 HAP=0
while getopts "n:s:H" o; do
  case $o in n) REQ=$OPTARG ;; s) SIZE=$OPTARG ;; H) HAP=1 ;; *) exit 2 ;; esac
done
PX=19184 AD=19185 IM=19186 UP=19443 HP=19182

bench_need nginx valgrind callgrind_annotate openssl python3 curl cmake ninja
[ "$HAP" = 0 ] || bench_need haproxy
bench_build
bench_workdir
trap bench_cleanup EXIT
head -c "$SIZE" /dev/zero | tr '\0' x >"$W/body"
bench_upstream $UP
bench_imds $IM
bench_config $PX $AD $IM $UP

# Keep-alive client on one connection; every response read in full, bounded by a timeout.
cat >"$W/client.py" <<'PY'
import http.client, sys
n, port = int(sys.argv[1]), int(sys.argv[2])
c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
for _ in range(n):
    c.request("GET", "/", headers={"Host": "127.0.0.1"})
    r = c.getresponse(); r.read()
    if r.status != 200:
        sys.exit(f"unexpected status {r.status}")
PY

total_ir() { awk '/^(summary|totals):/ {print $2; exit}' "$1"; }

# With callgrind running as `pid`: dump the counters, send REQUESTS requests to `port`, dump
# again (each dump resets the counters, so the second holds the requests alone), then SIGTERM.
count_window() { # pid requests port pid_file
  if [ "$2" -gt 0 ]; then
    callgrind_control -d "$1" >/dev/null
    python3 "$W/client.py" "$2" "$3"
    callgrind_control -d "$1" >/dev/null
  fi
  kill -TERM "$1"
  wait "$1" || true
  rm -f "$4"
}

# One daemon run under callgrind: start, wait for the token, REQUESTS requests, SIGTERM.
# With requests, counters are also dumped before and after them: a profile of the request path alone.
profile() { # requests out_file
  rm -f "$W/imds-served" "$2" "$2".*
  valgrind --tool=callgrind --callgrind-out-file="$2" "$BIN" --config "$W/msiproxy.toml" \
    >"$W/daemon.log" 2>&1 &
  local pid=$!
  echo $pid >"$W/daemon.pid"
  for _ in $(seq 300); do [ -f "$W/imds-served" ] && break; sleep 0.2; done
  bench_wait_ready $AD 300
  count_window $pid "$1" $PX "$W/daemon.pid"  # part 1: start and token fetch; 2: the requests
}

echo "callgrind: baseline run (0 requests)" >&2
profile 0 "$W/cg.base"
echo "callgrind: $REQ requests" >&2
profile "$REQ" "$W/cg.req"

base=$(total_ir "$W/cg.base")
with_total=0
for f in "$W"/cg.req*; do with_total=$((with_total + $(total_ir "$f"))); done
per=$(((with_total - base) / REQ))
dump=$(find "$W" -name 'cg.req.*' | sort -V | sed -n 2p)
echo
echo "instructions, whole run with $REQ requests: $with_total; baseline (start, token fetch, stop): $base"
echo "instructions per request (base-URL mode, $SIZE-byte response, keep-alive): $per"
if [ -n "$dump" ]; then
  echo "instructions per request, request window alone (dumped before and after): $(($(total_ir "$dump") / REQ))"
  cp "$dump" "$ROOT/build-release/callgrind.out.requests"   # kept for callgrind_annotate / kcachegrind
fi
if [ -n "$dump" ] && [ "$SIZE" = 3 ]; then  # the committed profile is of the 3-byte case
  mkdir -p "$ROOT/docs/bench"
  callgrind_annotate --inclusive=yes --threshold=100 "$dump" >"$W/incl.txt" 2>/dev/null
  callgrind_annotate --threshold=100 "$dump" >"$W/self.txt" 2>/dev/null
  # Function rows: "N (P%)  file:function [object]". The event loop, main and libc frames hold
  # every request (about 100%); the request path starts below them.
  top() { sed 's#'"$ROOT"'/##g' "$1" | awk '/^ *[0-9,]+ \( *[0-9.]+%\) / {
      pct = $2; gsub(/[(%)]/, "", pct); if (pct + 0 < 99.0 && n < 15) { print; n++ } }'; }
  {
    echo "# callgrind, msiproxy Release, $REQ keep-alive GET requests in base-URL mode, 3-byte responses,"
    echo "# TLS upstream (nginx); counters dumped after the token fetch and again after the last response."
    echo "# instructions per request: $per (whole run minus a 0-request baseline);"
    echo "# request window alone: $(total_ir "$dump") instructions, $(($(total_ir "$dump") / REQ)) per request."
    echo
    echo "## top 15 by inclusive instructions (frames at >= 99%: main, event loop, libc, left out)"
    top "$W/incl.txt"
    echo
    echo "## top 15 by self (exclusive) instructions"
    top "$W/self.txt"
  } >"$ROOT/docs/bench/callgrind-top.txt"
  echo
  echo "top functions (docs/bench/callgrind-top.txt):"
  cut -c1-220 "$ROOT/docs/bench/callgrind-top.txt"
fi

if [ "$HAP" = 1 ]; then
  # HAProxy in front of the same upstream, counted over the same kind of window: REQUESTS on one
  # new client connection, the first of which opens the upstream TLS connection.
  cat >"$W/hap.cfg" <<HP
global
  maxconn 1000
  nbthread 1
defaults
  mode http
  timeout connect 5s
  timeout client 300s
  timeout server 300s
  http-reuse always
frontend f
  bind 127.0.0.1:$HP
  http-request set-header Authorization "Bearer $(cat "$W/token")"
  http-request set-header Host localhost
  default_backend b
backend b
  server up 127.0.0.1:$UP ssl verify required ca-file $W/ca.pem sni str(localhost) pool-max-conn 128
HP
  echo "callgrind: HAProxy, $REQ requests" >&2
  valgrind --tool=callgrind --callgrind-out-file="$W/hap.cg" haproxy -db -f "$W/hap.cfg" \
    >"$W/hap.log" 2>&1 &
  hpid=$!
  echo $hpid >"$W/hapcg.pid"
  python3 - $HP <<'PY'
import socket, sys, time
for _ in range(600):
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit("HAProxy is not listening")
PY
  count_window $hpid "$REQ" $HP "$W/hapcg.pid"
  hdump=$(find "$W" -name 'hap.cg.*' | sort -V | sed -n 2p)
  echo "HAProxy $(haproxy -v | awk 'NR == 1 {print $3}'), same job, request window: $(($(total_ir "$hdump") / REQ)) instructions per request"
fi

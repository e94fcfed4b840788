#!/usr/bin/env bash
# bench/cpu.sh: CPU time per proxied request, user and kernel, of msiproxy, nginx and HAProxy
# doing the same job (add an Authorization header, forward over TLS to one nginx upstream, one
# worker each) under the same wrk load. Requests/s on a 2-core machine says how the client, the
# proxy and the upstream shared the cores; CPU per request says what the proxy itself costs.
#
# usage: bench/cpu.sh [-n RUNS] [-d SECONDS] [-c CONNECTIONS] [-s RESPONSE_BYTES]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
N=3 D=6 C=32 SIZE=3
while getopts "n:d:c:s:" o; do
  case $o in n) N=$OPTARG ;; d) D=$OPTARG ;; c) C=$OPTARG ;; s) SIZE=$OPTARG ;; *) exit 2 ;; esac
done
PX=19384 AD=19385 IM=19386 UP=19643 NG=19381 HP=19382

bench_need nginx haproxy wrk openssl python3 curl cmake ninja
bench_build
bench_workdir
trap bench_cleanup EXIT
head -c "$SIZE" /dev/zero | tr '\0' x >"$W/body"
TOKEN=$(cat "$W/token")
bench_upstream $UP
bench_imds $IM
bench_config $PX $AD $IM $UP

cat >"$W/px.conf" <<NG
worker_processes 1; daemon on; pid $W/px.pid; error_log $W/px.err;
events { worker_connections 8192; }
http { access_log off;
  upstream up { server 127.0.0.1:$UP; keepalive 128; keepalive_requests 1000000; }
  server { listen 127.0.0.1:$NG; keepalive_requests 1000000;
    location / { proxy_pass https://up; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Host localhost; proxy_set_header Authorization "Bearer $TOKEN";
      proxy_ssl_verify on; proxy_ssl_trusted_certificate $W/ca.pem; proxy_ssl_name localhost;
      proxy_ssl_server_name on; proxy_ssl_session_reuse on; } } }
NG
cat >"$W/hap.cfg" <<HP
global
  maxconn 8192
  nbthread 1
  pidfile $W/hap.pid
  daemon
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend f
  bind 127.0.0.1:$HP
  http-request set-header Authorization "Bearer $TOKEN"
  http-request set-header Host localhost
  default_backend b
backend b
  server up 127.0.0.1:$UP ssl verify required ca-file $W/ca.pem sni str(localhost) pool-max-conn 128
HP
nginx -c "$W/px.conf"
haproxy -f "$W/hap.cfg"
"$BIN" --config "$W/msiproxy.toml" >"$W/daemon.log" 2>&1 &
echo $! >"$W/daemon.pid"
bench_wait_ready $AD 100
sleep 0.5

ticks() { awk '{print $14, $15}' "/proc/$1/stat"; }  # utime stime, in clock ticks
HZ=$(getconf CLK_TCK)
# One wrk run against a proxy; prints "rps user_us_per_request sys_us_per_request".
measure() { # pid port
  local u0 s0 u1 s1 out reqs rps
  read -r u0 s0 < <(ticks "$1")
  out=$(wrk -t1 -c"$C" -d"${D}s" "http://127.0.0.1:$2/" 2>&1)
  read -r u1 s1 < <(ticks "$1")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  if grep -q "Non-2xx" <<<"$out"; then echo "non-2xx answers from port $2" >&2; exit 1; fi
  awk -v r="$reqs" -v rps="$rps" -v du=$((u1 - u0)) -v ds=$((s1 - s0)) -v hz="$HZ" \
    'BEGIN { printf "%s %.2f %.2f\n", rps, du * 1e6 / hz / r, ds * 1e6 / hz / r }'
}

# Warm-up: each proxy opens its upstream connections (and msiproxy has its token) before any
# run is measured.
for port in $PX $NG $HP; do wrk -t1 -c"$C" -d1s "http://127.0.0.1:$port/" >/dev/null 2>&1; done
RAW=$(mktemp /tmp/msiproxy-cpu.XXXX)
nginx_worker=$(pgrep -P "$(cat "$W/px.pid")" | head -1)
for i in $(seq "$N"); do
  echo "== run $i/$N: wrk -t1 -c$C -d${D}s, $SIZE-byte responses" >&2
  echo "msiproxy $(measure "$(cat "$W/daemon.pid")" $PX)" >>"$RAW"
  echo "nginx $(measure "$nginx_worker" $NG)" >>"$RAW"
  echo "haproxy $(measure "$(cat "$W/hap.pid")" $HP)" >>"$RAW"
done
python3 - "$RAW" "$N" "$SIZE" <<'PY'
import collections, statistics, sys
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    name, rps, usr, sys_ = line.split()
    rows[name].append((float(rps), float(usr), float(sys_)))
med = {n: [statistics.median(c) for c in zip(*v)] for n, v in rows.items()}
print(f"# CPU per request, median of {sys.argv[2]} runs, {sys.argv[3]}-byte responses, one worker each")
print(f"{'proxy':10} {'rps':>9} {'user us':>8} {'kernel us':>9} {'total us':>8} {'user vs HAProxy':>15}")
for n in ("msiproxy", "nginx", "haproxy"):
    rps, usr, ker = med[n]
    print(f"{n:10} {rps:9.0f} {usr:8.2f} {ker:9.2f} {usr + ker:8.2f} {usr / med['haproxy'][1]:14.2f}x")
PY
rm -f "$RAW"

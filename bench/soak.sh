#!/usr/bin/env bash
# Soak test: the Release daemon under sustained load for DURATION against a local TLS upstream
# (nginx) and a fake IMDS issuing 30-second tokens and failing 10 % of requests with 500.
# Reports requests, failures, tokens used with under 1 s of life left, and the daemon's RSS and
# open fds over time (expected: no failures, no late tokens, flat memory and fds).
#
# usage: bench/soak.sh [-d SECONDS (600)] [-c CONNECTIONS (16)] [-b PATH_TO_MSIPROXY]
# needs: nginx (nginx-light), wrk, openssl, curl, python3. Everything on 127.0.0.1.
set -euo pipefail
D=600 C=16 BIN=""
while getopts "d:c:b:" o; do case $o in d) D=$OPTARG ;; c) C=$OPTARG ;; b) BIN=$OPTARG ;; *) exit 2 ;; esac; done
for t in nginx wrk openssl curl python3; do
  command -v $t >/dev/null || { echo "missing $t (apt-get install nginx-light wrk)"; exit 2; }
done
root=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "$BIN" ]; then
  BIN="$root/build-release/daemon/msiproxy"
  if [ ! -x "$BIN" ]; then
    cmake -S "$root" -B "$root/build-release" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMSIPROXY_BUILD_TESTS=OFF >/dev/null
    ninja -C "$root/build-release" msiproxy
  fi
fi
BIN=$(realpath "$BIN")
# Ports of our own, away from the benchmarks' 1808x.
P_UP=28443 P_PX=28484 P_ADM=28485 P_IMDS=28486

W=$(mktemp -d /tmp/soak.XXXX)
cleanup() {
  for f in "$W"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
  sleep 0.3
  rm -rf "$W"
}
trap cleanup EXIT
chmod 755 "$W"
cd "$W"

openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=soak-ca 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout leaf.key -out leaf.csr -subj /CN=localhost 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >ext
openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out leaf.pem -days 2 -extfile ext 2>/dev/null
printf 'ok\n' >body

# The upstream logs when (msec) each Authorization value arrived; buffered to keep it cheap.
cat >up.conf <<NG
worker_processes 1; daemon on; pid $W/up.pid; error_log $W/up.err;
events { worker_connections 4096; }
http {
  log_format tok '\$msec \$http_authorization';
  access_log $W/up.log tok buffer=256k flush=1s;
  server { listen 127.0.0.1:$P_UP ssl; ssl_certificate $W/leaf.pem; ssl_certificate_key $W/leaf.key;
           keepalive_requests 1000000; location / { root $W; try_files /body =404; } } }
NG

# Fake IMDS: 30-second tokens, each unique, logged with its expiry; 10 % of requests get a 500.
cat >imds.py <<'PY'
import http.server, json, random, sys, threading, time
lock = threading.Lock()
seq = [0]
issued = open("issued.log", "a", buffering=1)
stats = {"ok": 0, "fail": 0}
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def reply(self, code, obj):
        b = json.dumps(obj).encode()
        self.send_response(code); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b))); self.end_headers(); self.wfile.write(b)
    def do_GET(self):
        if random.random() < 0.10:
            with lock: stats["fail"] += 1
            return self.reply(500, {"error": "unknown", "error_description": "soak: injected failure"})
        now = time.time()
        exp = int(now) + 30
        with lock:
            seq[0] += 1
            tok = "soak-%d-%d" % (seq[0], exp)
            stats["ok"] += 1
            issued.write("%s %d\n" % (tok, exp))
        self.reply(200, {"access_token": tok, "expires_in": str(exp - int(now)), "expires_on": str(exp),
                         "not_before": str(int(now)), "resource": "api://soak", "token_type": "Bearer"})
    def do_POST(self):
        self.reply(200, stats)
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
python3 imds.py $P_IMDS &
echo $! >imds.pid

cat >msiproxy.toml <<TOML
[proxy]
listen = "127.0.0.1:$P_PX"
[admin]
listen = "127.0.0.1:$P_ADM"
[log]
level = "warn"
access = false
[identity]
source = "imds"
endpoint = "http://127.0.0.1:$P_IMDS/metadata/identity/oauth2/token"
[upstream]
ca_file = "$W/ca.pem"
[[route]]
name = "soak"
path_prefix = "/"
upstream = "https://localhost:$P_UP"
resource = "api://soak"
TOML
nginx -c "$W/up.conf"
"$BIN" --config msiproxy.toml >msiproxy.log 2>&1 &
echo $! >msiproxy.pid
pid=$(cat msiproxy.pid)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$P_ADM/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$P_PX/" >/dev/null || { echo "proxy not answering"; cat msiproxy.log; exit 1; }

sample() { # label
  printf '%-8s rss=%s kB  fds=%s\n' "$1" "$(awk '/VmRSS/ {print $2}' /proc/"$pid"/status)" \
    "$(ls /proc/"$pid"/fd | wc -l)"
}
echo "# soak: ${D}s, wrk -t1 -c$C through msiproxy to nginx over TLS; IMDS: 30 s tokens, 10 % 500s"
sample start | tee samples
# A sample every 30 s while wrk runs, to show the trend rather than two points.
( i=0; while sleep 30; do i=$((i + 30)); sample "${i}s" >>samples; done ) &
echo $! >sampler.pid
wrk -t1 -c"$C" -d"${D}s" "http://127.0.0.1:$P_PX/" >wrk.out 2>&1 || true
kill "$(cat sampler.pid)" 2>/dev/null || true
rm -f sampler.pid
sample end >>samples
tail -n +2 samples
sleep 1.5 # nginx flushes its log buffer every second
kill -USR1 "$(cat up.pid)" 2>/dev/null || true
sleep 0.5

requests=$(awk '/requests in/ {print $1}' wrk.out)
non2xx=$(awk '/Non-2xx/ {print $NF}' wrk.out)
sockerr=$(grep 'Socket errors' wrk.out || true)
imds=$(curl -sf -X POST "http://127.0.0.1:$P_IMDS/" || echo '{}')
echo "requests: ${requests:-?}  rps: $(awk '/Requests\/sec/ {print $2}' wrk.out)  failures (non-2xx): ${non2xx:-0}${sockerr:+  $sockerr}"
echo "imds: $imds"
python3 - issued.log up.log <<'PY'
import sys
expiry = {}
for line in open(sys.argv[1]):
    tok, exp = line.split()
    expiry[tok] = int(exp)
uses = late = expired = unknown = 0
min_left = None
tokens = set()
for line in open(sys.argv[2]):
    parts = line.split()
    if len(parts) != 3 or parts[1] != "Bearer":
        unknown += 1
        continue
    t, tok = float(parts[0]), parts[2]
    if tok not in expiry:
        unknown += 1
        continue
    uses += 1
    tokens.add(tok)
    left = expiry[tok] - t
    min_left = left if min_left is None else min(min_left, left)
    if left < 1: late += 1
    if left <= 0: expired += 1
print("upstream saw %d requests with %d distinct tokens; with < 1 s left: %d; expired: %d; "
      "without a known token: %d; least life left: %.2f s" % (uses, len(tokens), late, expired, unknown,
                                                                min_left if min_left is not None else -1))
PY
if grep -qiE 'error|critical' msiproxy.log; then
  echo "daemon log (errors):"
  grep -iE 'error|critical' msiproxy.log | sort | uniq -c | sort -rn | head -5
fi

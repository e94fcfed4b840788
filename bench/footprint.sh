#!/usr/bin/env bash
# bench/footprint.sh: memory and start-up of the Release daemon against the performance goals.
# Idle RSS after the token fetch, RSS holding 10,000 idle keep-alive clients, start to READY=1.
#
# usage: bench/footprint.sh [-k CLIENTS]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
K=10000
while getopts "k:" o; do case $o in k) K=$OPTARG ;; *) exit 2 ;; esac; done
PX=19284 AD=19285 IM=19286 UP=19543 CLOSED=19287

# The daemon, the upstream and the client each hold about K sockets.
ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -gt $((K + 1000)) ] || { echo "ulimit -n $(ulimit -n) is too low for $K clients" >&2; exit 2; }

bench_need nginx openssl python3 curl cmake ninja
bench_build
bench_workdir
trap bench_cleanup EXIT
bench_upstream $UP
bench_imds $IM
bench_config $PX $AD $IM $UP $((K + 1000))

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
anon_kib() { awk '/^Anonymous:/ {print $2}' "/proc/$1/smaps_rollup"; }

# The daemon runs with the environment a systemd unit gives it: none of the shell's
# SSL_CERT_FILE / SSL_CERT_DIR. (Some build machines set SSL_CERT_FILE to the CA bundle, which
# makes OpenSSL parse all ~140 certificates at start instead of reading the hashed directory
# lazily; the start-up figure with it is printed too.)
SVC_ENV=(env -u SSL_CERT_FILE -u SSL_CERT_DIR)

"${SVC_ENV[@]}" "$BIN" --config "$W/msiproxy.toml" >"$W/daemon.log" 2>&1 &
pid=$!
echo $pid >"$W/daemon.pid"
bench_wait_ready $AD 100
sleep 1
idle=$(rss_kib $pid)
idle_anon=$(anon_kib $pid)

# K clients: connect, one request each on keep-alive, read the answer, then hold the sockets.
cat >"$W/clients.py" <<'PY'
import resource, socket, sys, time
k, port, hold_file, done_file = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
req = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
socks, ok = [], 0
for start in range(0, k, 500):  # batches keep the listen backlog from overflowing
    batch = []
    for _ in range(min(500, k - start)):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.sendall(req)
        batch.append(s)
    for s in batch:
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
        head, _, body = buf.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            chunk = s.recv(4096)
            if not chunk:
                break
            body += chunk
        ok += head.startswith(b"HTTP/1.1 200")
    socks += batch
open(hold_file, "w").write(f"{ok}\n")
for _ in range(600):  # hold (bounded) until the parent has measured
    try:
        open(done_file)
        break
    except FileNotFoundError:
        time.sleep(0.1)
PY
python3 "$W/clients.py" "$K" $PX "$W/held" "$W/measured" &
echo $! >"$W/clients.pid"
for _ in $(seq 1200); do [ -f "$W/held" ] && break; sleep 0.1; done
[ -f "$W/held" ] || { echo "clients did not get their answers in time" >&2; exit 1; }
sleep 1
loaded=$(rss_kib $pid)
answered=$(cat "$W/held")
touch "$W/measured"
wait "$(cat "$W/clients.pid")" || true
rm -f "$W/clients.pid"
kill -TERM $pid
wait $pid || true
rm -f "$W/daemon.pid"

# Start to READY=1: a notify socket listener spawns the daemon itself and times the datagram.
# The identity endpoint is a closed port: READY does not wait for tokens, and no fetch slows it.
sed -i "s#^endpoint = .*#endpoint = \"http://127.0.0.1:$CLOSED/metadata/identity/oauth2/token\"#" "$W/msiproxy.toml"
cat >"$W/ready.py" <<'PY'
import os, signal, socket, statistics, subprocess, sys, time
binary, config, path, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
times = []
for _ in range(runs):
    if os.path.exists(path):
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(10)
    env = dict(os.environ, NOTIFY_SOCKET=path)
    t0 = time.monotonic()
    p = subprocess.Popen([binary, "--config", config], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            msg = sock.recv(4096)
            if b"READY=1" in msg.split(b"\n"):
                times.append((time.monotonic() - t0) * 1000)
                break
    except socket.timeout:
        print("no READY=1 within 10 s", file=sys.stderr)
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=15)
    sock.close()
print(f"{statistics.median(times):.1f} {min(times):.1f} {max(times):.1f}")
PY
read -r ready_med ready_min ready_max < <("${SVC_ENV[@]}" python3 "$W/ready.py" "$BIN" "$W/msiproxy.toml" "$W/notify.sock" 7)
shell_ready=""
if [ -n "${SSL_CERT_FILE:-}" ]; then
  shell_ready=$(python3 "$W/ready.py" "$BIN" "$W/msiproxy.toml" "$W/notify.sock" 7)
fi

mib() { awk -v k="$1" 'BEGIN {printf "%.1f MiB", k / 1024}'; }
verdict() { awk -v v="$1" -v g="$2" 'BEGIN {print (v <= g) ? "met" : "NOT met"}'; }
echo
printf '%-60s %-12s %-10s %s\n' "figure" "value" "goal" ""
printf '%-60s %-12s %-10s %s\n' "idle RSS (after token fetch)" "$(mib "$idle")" "<= 10 MiB" "$(verdict "$idle" 10240)"
printf '%-60s %-12s\n' "  of which anonymous (the process's own; the rest is code)" "$(mib "$idle_anon")"
printf '%-60s %-12s %-10s %s\n' "RSS with $K idle keep-alive clients" "$(mib "$loaded")" "<= 100 MiB" "$(verdict "$loaded" 102400)"
printf '%-60s %-12s %-10s %s\n' "start to READY=1 (median of 7; min $ready_min, max $ready_max)" "$ready_med ms" "<= 50 ms" "$(verdict "$ready_med" 50)"
if [ -n "$shell_ready" ]; then
  read -r m lo hi <<<"$shell_ready"
  printf '%-60s %-12s\n' "  with this shell's SSL_CERT_FILE (min $lo, max $hi)" "$m ms"
fi
echo "($answered of $K clients got a 200; per idle client: $(awk -v a="$loaded" -v b="$idle" -v k="$K" 'BEGIN {printf "%.2f KiB", (a - b) / k}'))"

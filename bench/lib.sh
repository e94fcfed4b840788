# shellcheck shell=bash
# bench/lib.sh: shared set-up for callgrind.sh and footprint.sh (sourced, not run).
# Owns the loopback fixtures: a throwaway CA and leaf, a TLS nginx upstream, a fake IMDS, a config.

# Tools the benchmark scripts need; installed through packaging/install-deps.sh when missing.
bench_need() { # tool...
  local t missing=""
  for t in "$@"; do command -v "$t" >/dev/null || missing="$missing $t"; done
  [ -z "$missing" ] && return 0
  echo "installing benchmark tools (missing:$missing)" >&2
  MSIPROXY_EXTRA_PACKAGES="nginx-light haproxy wrk gnuplot-nox valgrind" sh "$ROOT/packaging/install-deps.sh"
}

# Release build; tests off so only the daemon is compiled.
bench_build() {
  mkdir -p "$ROOT/build-release"
  cmake -S "$ROOT" -B "$ROOT/build-release" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMSIPROXY_BUILD_TESTS=OFF >"$ROOT/build-release/bench-build.log" 2>&1 ||
    { cat "$ROOT/build-release/bench-build.log" >&2; return 1; }
  ninja -C "$ROOT/build-release" msiproxy >>"$ROOT/build-release/bench-build.log" 2>&1 ||
    { cat "$ROOT/build-release/bench-build.log" >&2; return 1; }
  BIN="$ROOT/build-release/daemon/msiproxy"
  export BIN
}

# Work dir with certificates, a 3-byte body and a token the size of an Entra ID JWT.
bench_workdir() {
  W=$(mktemp -d /tmp/msiproxy-bench.XXXX)
  chmod 755 "$W"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$W/ca.key" -out "$W/ca.pem" -days 2 -subj /CN=bench-ca 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout "$W/leaf.key" -out "$W/leaf.csr" -subj /CN=localhost 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$W/ext"
  openssl x509 -req -in "$W/leaf.csr" -CA "$W/ca.pem" -CAkey "$W/ca.key" -CAcreateserial -out "$W/leaf.pem" \
    -days 2 -extfile "$W/ext" 2>/dev/null
  head -c 1200 /dev/urandom | base64 -w0 | tr '+/' '-_' >"$W/token"
  printf 'xxx' >"$W/body"
}

# Stops everything recorded in $W/*.pid, then removes $W.
bench_cleanup() {
  local f
  [ -n "${W:-}" ] && [ -d "$W" ] || return 0
  for f in "$W"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done
  sleep 0.3
  rm -rf "$W"
}

bench_upstream() { # port
  cat >"$W/up.conf" <<NG
worker_processes 1; daemon on; pid $W/up.pid; error_log $W/up.err;
worker_rlimit_nofile 30000;
events { worker_connections 16384; }
http { access_log off;
  server { listen 127.0.0.1:$1 ssl; ssl_certificate $W/leaf.pem; ssl_certificate_key $W/leaf.key;
           keepalive_requests 1000000; keepalive_timeout 300s; location / { root $W; try_files /body =404; } } }
NG
  nginx -c "$W/up.conf"
}

# Fake IMDS; touches $W/imds-served after each token it hands out.
bench_imds() { # port
  cat >"$W/imds.py" <<'PY'
import http.server, json, os, sys, time
D = sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        now = int(time.time())
        b = json.dumps({"access_token": open(os.path.join(D, "token")).read().strip(), "expires_in": "86399",
                        "expires_on": str(now + 86399), "not_before": str(now), "resource": "api://bench",
                        "token_type": "Bearer"}).encode()
        self.send_response(200); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b))); self.end_headers(); self.wfile.write(b)
        open(os.path.join(D, "imds-served"), "w").close()
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
  python3 "$W/imds.py" "$1" "$W" &
  echo $! >"$W/imds.pid"
}

bench_config() { # proxy_port admin_port imds_port upstream_port [max_connections]
  cat >"$W/msiproxy.toml" <<TOML
[proxy]
listen = "127.0.0.1:$1"
max_connections = ${5:-4096}
idle_timeout = "300s"
[admin]
listen = "127.0.0.1:$2"
[log]
level = "warn"
access = false
[identity]
source = "imds"
endpoint = "http://127.0.0.1:$3/metadata/identity/oauth2/token"
[upstream]
ca_file = "$W/ca.pem"
[[route]]
name = "bench-base-url"
path_prefix = "/"
upstream = "https://localhost:$4"
resource = "api://bench"
TOML
}

# Waits (bounded) until the admin listener reports ready.
bench_wait_ready() { # admin_port tries
  local _
  for _ in $(seq "$2"); do
    curl -sf "http://127.0.0.1:$1/readyz" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "msiproxy not ready on admin port $1" >&2
  return 1
}

#!/usr/bin/env bash
# bench/run.sh: throughput of msiproxy next to nginx and HAProxy on the shared side-by-side rig.
# Builds Release, runs ../shared/bench/anchors.sh N times per response size, prints medians and
# ratios, writes docs/bench/results.tsv and renders docs/bench/rps.svg.
#
# usage: bench/run.sh [-n RUNS] [-d SECONDS] [-c CONNECTIONS] [-s "SIZES"]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
N=3 D=8 C=32 SIZES="3 16384 1048576"
while getopts "n:d:c:s:" o; do
  case $o in n) N=$OPTARG ;; d) D=$OPTARG ;; c) C=$OPTARG ;; s) SIZES=$OPTARG ;; *) exit 2 ;; esac
done
ANCHORS="$ROOT/../shared/bench/anchors.sh"
[ -f "$ANCHORS" ] || { echo "rig not found: $ANCHORS (expected next to the repo at ../shared/bench)" >&2; exit 2; }

bench_need nginx haproxy wrk gnuplot openssl python3 curl cmake ninja
bench_build
OUT="$ROOT/docs/bench"
mkdir -p "$OUT"
RAW=$(mktemp /tmp/msiproxy-bench-raw.XXXX)
trap 'rm -f "$RAW"' EXIT

# The rig listens on fixed ports (18080-18086): where possible run it in a private network
# namespace with its own loopback, so leftovers or a parallel run of it on this machine can't clash.
rig() {
  if unshare --net true 2>/dev/null; then
    # shellcheck disable=SC2016 # expanded by the inner shell
    unshare --net bash -c 'ip link set lo up && exec bash "$0" "$@"' "$ANCHORS" "$@"
  else
    bash "$ANCHORS" "$@"
  fi
}

# One line per proxy per run: size, label, rps, p99 (as wrk prints it), error note.
for size in $SIZES; do
  for i in $(seq "$N"); do
    echo "== ${size}-byte responses, run $i/$N" >&2
    rig -d "$D" -c "$C" -s "$size" -b "$BIN" | tee -a /dev/stderr |
      awk -v size="$size" '/ rps=/ {
        label = substr($0, 1, index($0, " rps=") - 1); sub(/ +$/, "", label)
        rest = substr($0, index($0, " rps="))
        match(rest, /rps=[^ ]*/); rps = substr(rest, RSTART + 4, RLENGTH - 4)
        match(rest, /p99=[^ ]*/); p99 = substr(rest, RSTART + 4, RLENGTH - 4)
        err = rest; sub(/.*p99=[^ ]* */, "", err)
        printf "%s\t%s\t%s\t%s\t%s\n", size, label, rps, p99, err }' >>"$RAW"
  done
done

# Medians per size and proxy, the table, and the chart data.
python3 - "$RAW" "$OUT/results.tsv" "$N" "$D" "$C" <<'PY'
import collections, statistics, sys
raw, tsv, runs, dur, conns = sys.argv[1:]
def ms(v):  # wrk latency "812.00us" / "1.20ms" / "1.01s" -> milliseconds
    for unit, f in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if v.endswith(unit):
            return float(v[: -len(unit)]) * f
    return float("nan")
keys = {"msiproxy -> https (base URL)": "msi_base", "msiproxy -> https (HTTP_PROXY)": "msi_proxy",
        "nginx -> https": "nginx", "haproxy -> https": "haproxy",
        "direct https (client does TLS)": "direct_https"}
vals = collections.defaultdict(lambda: ([], []))
errors = []
for line in open(raw):
    size, label, rps, p99, err = line.rstrip("\n").split("\t")
    if label not in keys or not rps:
        continue
    vals[(int(size), keys[label])][0].append(float(rps))
    vals[(int(size), keys[label])][1].append(ms(p99))
    if err.strip():
        errors.append(f"{size} B {label}: {err.strip()}")
sizes = sorted({s for s, _ in vals})
med = {k: (statistics.median(r), statistics.median(p)) for k, (r, p) in vals.items()}
cols = ["msi_base", "msi_proxy", "nginx", "haproxy", "direct_https"]
with open(tsv, "w") as f:
    f.write(f"# medians of {runs} runs of anchors.sh (wrk -t1 -c{conns} -d{dur}s), one worker per proxy; p99 in ms\n")
    f.write("size\t" + "\t".join(f"{c}_rps\t{c}_p99" for c in cols)
            + "\tbase_vs_haproxy\tproxy_vs_haproxy\tbase_vs_nginx\tproxy_vs_nginx\n")
    for s in sizes:
        row = [str(s)]
        for c in cols:
            r, p = med.get((s, c), (float("nan"), float("nan")))
            row += [f"{r:.0f}", f"{p:.3f}"]
        h, n = med[(s, "haproxy")][0], med[(s, "nginx")][0]
        b, x = med[(s, "msi_base")][0], med[(s, "msi_proxy")][0]
        row += [f"{b / h:.3f}", f"{x / h:.3f}", f"{b / n:.3f}", f"{x / n:.3f}"]
        f.write("\t".join(row) + "\n")
print(f"\nmedians of {runs} runs, wrk -t1 -c{conns} -d{dur}s (rps; p99 ms)")
print(f"{'size':>8} {'mode':<11} {'msiproxy':>16} {'HAProxy':>16} {'nginx':>16} {'x HAProxy':>10} {'x nginx':>8}  goal")
for s in sizes:
    h, n = med[(s, "haproxy")], med[(s, "nginx")]
    for c, mode in (("msi_base", "base-URL"), ("msi_proxy", "HTTP_PROXY")):
        m = med[(s, c)]
        goal = 1.2 if s <= 3 else 1.0
        ok = m[0] / h[0] >= goal and (s > 3 or m[1] <= h[1])
        print(f"{s:>8} {mode:<11} {m[0]:>8.0f} {m[1]:>6.2f}ms {h[0]:>8.0f} {h[1]:>6.2f}ms {n[0]:>8.0f} {n[1]:>6.2f}ms "
              f"{m[0] / h[0]:>10.2f} {m[0] / n[0]:>8.2f}  >={goal}x{' p99<=HAProxy' if s <= 3 else ''}: {'met' if ok else 'NOT met'}")
if errors:
    print("\nerrors reported by wrk:\n  " + "\n  ".join(errors))
PY

# Bars relative to HAProxy (= 1.0): ratios carry across machines, absolute numbers do not.
gnuplot <<GP
set terminal svg size 860,500 dynamic font "sans,12"
set output "$OUT/rps.svg"
set title "Requests/s relative to HAProxy (median of $N runs, wrk -t1 -c$C, one worker each, TLS upstream)"
set ylabel "requests/s relative to HAProxy (HAProxy = 1.0)"
set xlabel "response body size"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set yrange [0:1.3<*]
set offsets 0, 0, graph 0.12, 0
set ytics 0.2
set grid ytics
set key below horizontal maxrows 1 width 1
# The 1.2x goal applies to 3-byte responses (the first cluster); larger ones aim at parity (1.0).
set arrow from -0.45, 1.2 to 0.45, 1.2 nohead dashtype 2 lw 2 lc rgb "black" front
set label "goal 1.2x" at 0.47, 1.2 left font ",10" front
set datafile separator "\t"
lbl(s) = s == 3 ? "3 B" : s == 16384 ? "16 KiB" : s == 1048576 ? "1 MiB" : sprintf("%d B", s)
plot "$OUT/results.tsv" skip 2 using (\$2/\$8):xtic(lbl(\$1)) title "msiproxy (base URL)", \
     "" skip 2 using (\$4/\$8) title "msiproxy (HTTP\\\\_PROXY)", \
     "" skip 2 using (\$6/\$8) title "nginx", \
     "" skip 2 using (\$8/\$8) title "HAProxy"
GP
echo "wrote $OUT/results.tsv and $OUT/rps.svg"

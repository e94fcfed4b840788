#!/bin/sh
# Builds the libFuzzer targets with clang in build-fuzz and runs each for SECONDS (default 10,
# the CI smoke run) over its seed corpus; fails when a target crashes. Findings: build-fuzz/findings.
set -eu
seconds="${1:-10}"
cd "$(dirname "$0")/../.."
src=tests/fuzz
out=build-fuzz
jobs="${MSIPROXY_FUZZ_JOBS:-$(nproc)}"

mkdir -p "$out"
if ! CC=clang CXX=clang++ cmake -S . -B "$out" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DMSIPROXY_FUZZ=ON -DMSIPROXY_BUILD_TESTS=OFF >"$out/configure.log" 2>&1; then
  cat "$out/configure.log"
  exit 1
fi
cmake --build "$out" --target msiproxy_fuzz_targets -j "$jobs"

# Inputs larger than these teach nothing new about the format (a head is capped at 8 KiB).
max_len() {
  case "$1" in
    config_fuzz) echo 8192 ;;
    request_head_fuzz) echo 8192 ;;
    route_fuzz) echo 1024 ;;
    *) echo 4096 ;;
  esac
}

status=0
mkdir -p "$out/findings"
for f in "$src"/*_fuzz.cpp; do
  name=$(basename "$f" .cpp)
  target=${name%_fuzz}
  work="$out/corpus/$target"  # new inputs go here; the seeds in the tree are only read
  mkdir -p "$work"
  log="$out/findings/$name.log"
  if ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$out/tests/fuzz/$name" -max_total_time="$seconds" -max_len="$(max_len "$name")" \
      -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$out/findings/$name-" "$work" "$src/corpus/$target" >"$log" 2>&1; then
    runs=$(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "$log" | tail -n 1)
    printf '%-20s ok    %s\n' "$name" "$runs"
  else
    printf '%-20s FAIL  see %s\n' "$name" "$log"
    tail -n 30 "$log"
    status=1
  fi
done
exit "$status"

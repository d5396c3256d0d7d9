#!/usr/bin/env bash
# The end-to-end benchmark: secmail against the real Postfix and Dovecot of
# tests/harness/servers.sh, each figure beside what the mail servers alone do
# in the same run (ceiling, drain, latency, memory), plus the timer wake-up at
# 100,000 cases. Prints one table and appends a dated row to BENCHMARKS.md.
#
#   bash bench/run.sh [N]     N reports for the ceiling and the drain (default
#                             2000; 200 is a quick run)
#
# Needs root (the harness starts its own Postfix and Dovecot on 127.0.0.1, see
# tests/harness/servers.sh) and takes a few minutes. Figures depend on the
# machine and on what else runs on it: compare ratios of the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-2000}"
case "$n" in ''|*[!0-9]*) echo "usage: bash bench/run.sh [N]" >&2; exit 2 ;; esac

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! bash tests/harness/servers.sh start >"$log" 2>&1; then
    cat "$log" >&2
    echo "bench/run.sh: the test servers did not start" >&2
    exit 1
fi

echo "building (release) ..." >&2
cargo build --release --locked --bin secmail
cargo bench --locked --bench timers --bench e2e --no-run

echo "timers: 100,000 open cases ..." >&2
cargo bench --locked --bench timers -- --bench | tee "$log" >&2
# "[bench] timers: wake-up, nothing due, 100000 open cases (...): 200 calls p50 20µs p99 40µs max ..."
timer="$(awk '/wake-up, nothing due, [0-9]+ open cases/ {
    for (i = 1; i <= NF; i++) { if ($i == "p50") p50 = $(i + 1); if ($i == "p99") p99 = $(i + 1) }
    print "p50 " p50 ", p99 " p99 " (target ≤ 5 ms)"; exit }' "$log")"

echo "end to end: $n reports ..." >&2
cargo bench --locked --bench e2e -- --bench "$n" --timer "${timer:-not measured}" \
    --record BENCHMARKS.md --command "bash bench/run.sh $n"

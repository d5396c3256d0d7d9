#!/usr/bin/env bash
# Flood drain, end to end through the real daemon on its built-in default
# (Maildir in, .eml files out): drops N reports into maildir/new at once and
# measures how long until every report has its ack in outbox/, plus the
# daemon's peak memory (VmHWM). Usage: bash bench/flood.sh [N]   (default 2000)
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-2000}"
cargo build --release --locked --bin secmail >/dev/null 2>&1 || cargo build --release --locked --bin secmail
dir="$(mktemp -d)"
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT

# Prepare the messages first (in tmp/), so the flood lands at once.
mkdir -p "$dir/maildir/tmp" "$dir/maildir/new" "$dir/maildir/cur"
for i in $(seq 1 "$n"); do
    printf 'From: Reporter %d <reporter%d@example.org>\r\nTo: security@localhost\r\nSubject: Flood report %d: XSS in search\r\nMessage-ID: <flood-%d@example.org>\r\n\r\nSteps to reproduce %d.\r\n' \
        "$i" "$i" "$i" "$i" "$i" > "$dir/maildir/tmp/$i.eml"
done
target/release/secmail --builtin "$dir" run 2>"$dir/log" &
pid=$!
while ! grep -q "secmail running" "$dir/log" 2>/dev/null; do sleep 0.05; done

start=$(date +%s.%N)
mv "$dir/maildir/tmp/"*.eml "$dir/maildir/new/"
peak=0
while :; do
    acks=$( (grep -l '^Auto-Submitted: auto-replied' "$dir"/outbox/*.eml 2>/dev/null || true) | wc -l)
    hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
    [ "$hwm" -gt "$peak" ] && peak=$hwm
    [ "$acks" -ge "$n" ] && break
    sleep 0.2
done
end=$(date +%s.%N)
awk -v n="$n" -v a="$acks" -v s="$start" -v e="$end" -v p="$peak" \
    'BEGIN { printf "[bench] flood: %d reports -> %d acks in %.2f s = %.0f reports/s; daemon peak RSS %d KiB\n", n, a, e - s, n / (e - s), p }'

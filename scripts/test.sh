#!/usr/bin/env bash
# Runs secmail's whole test suite: unit tests, and integration tests against a
# real Dovecot and Postfix that the harness starts on 127.0.0.1. Installs the
# Debian packages it needs first (as root), and stops the servers it started.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
trap 'bash tests/harness/servers.sh stop >/dev/null 2>&1 || true' EXIT
bash tests/harness/servers.sh start
cargo build --locked --all-targets
# Into a file, not a pipe: a process a failed test left behind could hold a
# pipe open, and the run would wait for it for ever.
cargo test --locked --all-targets --no-fail-fast -- --nocapture > target/test-output.log 2>&1 || true
grep -vE '^\s*$' target/test-output.log | grep -E '^(test |running|\[measure\]|\[bench\]|SKIPPED|failures|---- |thread|test result|error)' || true
# The pipeline above hides cargo's exit status; take it from the log.
if grep -qE '^test result: FAILED|^error(\[|:)' target/test-output.log; then
    echo "tests FAILED; full output in target/test-output.log" >&2
    grep -E -A30 '^failures:' target/test-output.log | head -200 >&2 || true
    exit 1
fi
grep -E '^test result:' target/test-output.log | awk '{p+=$4; f+=$6} END {printf "%d passed, %d failed\n", p, f}'

#!/usr/bin/env bash
# Fuzz secmail's mail-facing code with cargo-fuzz (libFuzzer + ASan, nightly).
#
# Usage:
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
#   SECONDS_PER_TARGET  how long each target runs (default 600)
#   TARGET...           any of: parse decide decrypt compose (default: all)
#
# Examples:
#   scripts/fuzz.sh                 # every target, 10 minutes each, one after another
#   scripts/fuzz.sh 60 parse        # one minute of `parse`
#   FUZZ_PARALLEL=2 scripts/fuzz.sh # two targets at a time (the machine has 2 cores)
#
# Environment:
#   FUZZ_PARALLEL   targets run at once (default 1; at most 2 is considerate here)
#   FUZZ_SANITIZER  cargo-fuzz --sanitizer (default: address; `none` if ASan breaks)
#   FUZZ_ARGS       extra libFuzzer flags, appended (e.g. -len_control=0 to try
#                   large inputs at once)
#   SECMAIL_FUZZ_SKIP_KNOWN=1  let `parse` pass the known, still open finding
#                   fuzz/regressions/parse-over-limit-flag-lost-* (see parse.rs)
#
# Builds use `-O` with the debug assertions and overflow checks that
# fuzz/Cargo.toml's release profile turns on (all crates but mail-parser, whose
# debug_assert fires on ordinary nested mail: see fuzz/Cargo.toml).
#
# What it does: installs cargo-fuzz and the nightly toolchain if missing, copies
# the committed seeds (fuzz/seeds/) into each target's corpus (fuzz/corpus/T/,
# git-ignored, kept between runs), runs
#   cargo +nightly fuzz run -O T fuzz/corpus/T -- -max_total_time=N -rss_limit_mb=2048
#       -max_len=1048576 -timeout=20
# (one process per target: no -jobs=1, which makes libFuzzer fork a worker that
# logs to ./fuzz-0.log, the same file for every target)
# and prints per target the runs executed and whether it found anything. A
# crash, timeout or OOM leaves its input in fuzz/artifacts/T/; reproduce with
#   cargo +nightly fuzz run -O T fuzz/artifacts/T/<file>
# Known reproducers live in fuzz/regressions/ (`<target>-<name>`); replay them
# all with `scripts/fuzz.sh --regressions`. Logs: fuzz/logs/T.log (git-ignored).
# Exit status: 0 when nothing was found, 1 otherwise.
set -uo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
all_targets=(parse decide decrypt compose)
sanitizer="${FUZZ_SANITIZER:-address}"
parallel="${FUZZ_PARALLEL:-1}"

if ! rustup toolchain list | grep -q '^nightly'; then
    rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

if [[ "${1:-}" == "--regressions" ]]; then
    status=0
    for f in fuzz/regressions/*; do
        [[ -f "$f" && "$f" != *.md ]] || continue
        t="$(basename "$f")"; t="${t%%-*}"
        if cargo +nightly fuzz run -O --sanitizer "$sanitizer" "$t" "$f" -- -runs=1 >/dev/null 2>&1; then
            echo "$f: passes"
        else
            echo "$f: STILL FAILS"; status=1
        fi
    done
    exit $status
fi

seconds="${1:-600}"
[[ $# -gt 0 ]] && shift
targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=("${all_targets[@]}")

echo "building: ${targets[*]} (sanitizer $sanitizer)"
for t in "${targets[@]}"; do
    cargo +nightly fuzz build -O --sanitizer "$sanitizer" "$t" || exit 2
done

mkdir -p fuzz/logs
run_one() {
    local t="$1"
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    cp -n fuzz/seeds/* "fuzz/corpus/$t/" 2>/dev/null || true
    # shellcheck disable=SC2086
    cargo +nightly fuzz run -O --sanitizer "$sanitizer" "$t" "fuzz/corpus/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=1048576 -timeout=20 \
        -print_final_stats=1 ${FUZZ_ARGS:-} >"fuzz/logs/$t.log" 2>&1
    echo $? >"fuzz/logs/$t.rc"
}

running=0
for t in "${targets[@]}"; do
    echo "fuzzing $t for ${seconds}s (log: fuzz/logs/$t.log)"
    run_one "$t" &
    running=$((running + 1))
    if [[ $running -ge $parallel ]]; then
        wait -n
        running=$((running - 1))
    fi
done
wait

status=0
printf '\n%-10s %14s %10s  %s\n' target runs exec/s result
for t in "${targets[@]}"; do
    log="fuzz/logs/$t.log"
    runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)"
    [[ -z "$runs" ]] && runs="$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')"
    speed="$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)"
    rc="$(cat "fuzz/logs/$t.rc" 2>/dev/null || echo '?')"
    if [[ "$rc" == 0 ]]; then
        result="nothing found"
    else
        status=1
        kind="$(grep -oE 'ERROR: libFuzzer: [a-z-]+|ERROR: AddressSanitizer: [a-z-]+|panicked at [^ ]+' "$log" | head -1)"
        artifact="$(grep -oE 'Test unit written to [^ ]+' "$log" | head -1 | sed 's/Test unit written to //')"
        result="FOUND (rc $rc): ${kind:-see log} ${artifact:+-> $artifact}"
    fi
    printf '%-10s %14s %10s  %s\n' "$t" "${runs:-?}" "${speed:-?}" "$result"
done
exit $status

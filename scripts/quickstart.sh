#!/usr/bin/env bash
# Quick start: builds secmail and runs the daemon on its built-in default, which
# needs no mail server: reports are read from a local Maildir and outgoing mail
# is written as .eml files, all under ./secmail-local (or the directory given).
#
#   drop a report:   put an RFC 5322 message into secmail-local/maildir/new/
#   see the ack:     secmail-local/outbox/*.eml
#   see the case:    target/debug/secmail --builtin secmail-local cases
#
# Installs the Debian build dependencies (as root) when missing. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-secmail-local}"

# gcc and libc6-dev build the bundled SQLite; pkg-config and libssl-dev the
# OpenSSL backend of sequoia; libclang-dev its bindgen step.
need=()
for pkg in gcc libc6-dev pkg-config libssl-dev libclang-dev; do
    dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null | grep -qx installed || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "quickstart: missing packages: ${need[*]} (re-run as root)" >&2
        exit 1
    fi
    echo "quickstart: installing ${need[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

cargo build --locked --bin secmail
mkdir -p "$dir/maildir/new" "$dir/maildir/cur" "$dir/maildir/tmp"
if [ -z "$(ls -A "$dir/maildir/new")" ] && [ -z "$(ls -A "$dir/maildir/cur")" ]; then
    # A first report so there is something to see at once.
    cat > "$dir/maildir/new/example-report.eml" <<'MAIL'
From: Rita Reporter <rita@example.org>
To: security@localhost
Subject: Stored XSS in the comment form
Message-ID: <quickstart-1@example.org>
Date: Wed, 25 Nov 2026 10:00:00 +0000

The comment form does not escape <script> tags.
MAIL
fi
echo "quickstart: drop reports into $dir/maildir/new/ ; acks appear in $dir/outbox/ ; Ctrl-C stops" >&2
exec target/debug/secmail --builtin "$dir" run

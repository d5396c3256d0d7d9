#!/usr/bin/env bash
# Regenerates the team members' OpenPGP keys under fixtures/team/ with a real
# client (GnuPG 2.2, batch mode, no passphrases, throwaway GNUPGHOME under /tmp).
# Only keys are committed: the team mail itself is signed at test run time by
# tests/team/mod.rs (fresh signatures over Message-IDs that exist only then).
# See fixtures/team/README.md for what each file is.
#
# Keys are created with --faked-system-time 2026-01-01 so they predate every
# faked signing time the tests use (2026-01-15); `dave` expires 2026-06-01.
# Idempotent: every run deletes and regenerates all files (new fingerprints).
#
# Usage: scripts/make-team-fixtures.sh   (from anywhere; needs gpg 2.2)
set -euo pipefail

cd "$(dirname "$0")/.."
OUT=fixtures/team
mkdir -p "$OUT"
rm -f "$OUT"/*.asc "$OUT"/fingerprints.txt

export GNUPGHOME
GNUPGHOME=$(mktemp -d /tmp/secmail-team.XXXXXX)
trap 'gpgconf --homedir "$GNUPGHOME" --kill all >/dev/null 2>&1 || true; rm -rf "$GNUPGHOME"' EXIT
chmod 700 "$GNUPGHOME"

KEYTIME='20260101T000000!'   # key creation
REVTIME='20260201T000000!'   # carol's key is revoked (compromised) on this date

g() { gpg --batch --yes --quiet --no-tty --pinentry-mode loopback --passphrase '' --trust-model always "$@"; }

# The fingerprint of the key just created: read from the KEY_CREATED status line,
# because two keys share the user id "Alice Member <alice@example.test>".
created_fpr() { awk '$2 == "KEY_CREATED" {print $4}' "$1"; }

# newkey NAME UID PRIMARY-ALGO SUBKEY-ALGO|- EXPIRE [KEYTIME]
newkey() {
    local name=$1 uid=$2 palgo=$3 salgo=$4 expire=$5 ktime=${6:-$KEYTIME}
    local st; st=$(mktemp "$GNUPGHOME/status.XXXXXX")
    g --faked-system-time "$ktime" --status-file "$st" --quick-gen-key "$uid" "$palgo" sign,cert "$expire"
    local f; f=$(created_fpr "$st")
    [ -n "$f" ] || { echo "no KEY_CREATED for $name" >&2; exit 1; }
    if [ "$salgo" != - ]; then
        g --faked-system-time "$ktime" --quick-add-key "$f" "$salgo" encr "$expire"
    fi
    g --armor --export "$f" > "$OUT/$name.pub.asc"
    g --armor --export-secret-keys "$f" > "$OUT/$name.sec.asc"
    chmod 0644 "$OUT/$name.pub.asc" "$OUT/$name.sec.asc"
    echo "$name $f" >> "$OUT/fingerprints.txt"
    eval "FPR_${name//-/_}=$f"
}

: > "$OUT/fingerprints.txt"
newkey alice            'Alice Member <alice@example.test>' ed25519 cv25519 never
newkey bob              'Bob Member <bob@example.test>'     rsa3072 rsa3072 never
newkey mallory          'Mallory <mallory@example.test>'    ed25519 cv25519 never
newkey mallory-as-alice 'Alice Member <alice@example.test>' ed25519 cv25519 never
newkey carol            'Carol Member <carol@example.test>' ed25519 -       never
newkey dave             'Dave Member <dave@example.test>'   ed25519 cv25519 2026-06-01

# carol: carol.{pub,sec}.asc above are the unrevoked key. Revoke it ("key has been
# compromised", reason 1) in this home and export the public cert again.
# --gen-revoke refuses --batch ("can't do this in batch mode"), so it runs with
# --no-tty and answers on --command-fd: create? / reason (1 = compromised) / text
# lines ended by an empty line / okay?
printf 'y\n1\nThe secret key leaked.\n\ny\n' \
    | gpg --no-tty --yes --quiet --pinentry-mode loopback --passphrase '' --faked-system-time "$REVTIME" \
          --command-fd 0 --armor --output "$GNUPGHOME/carol.rev" --gen-revoke "$FPR_carol"
g --import "$GNUPGHOME/carol.rev"
g --armor --export "$FPR_carol" > "$OUT/carol-revoked.pub.asc"
chmod 0644 "$OUT/carol-revoked.pub.asc"
gpg --batch --with-colons --list-keys "$FPR_carol" | grep -q '^pub:r:' \
    || { echo "carol-revoked.pub.asc is not revoked" >&2; exit 1; }
# reason 0x02 = "Key material has been compromised" (RFC 4880 5.2.3.23)
gpg --batch --list-packets "$OUT/carol-revoked.pub.asc" 2>/dev/null | grep -q 'revocation reason 0x02' \
    || { echo "carol's revocation is not 'key compromised'" >&2; exit 1; }

# dave: valid when created, expired at any run after 2026-06-01.
gpg --batch --with-colons --list-keys "$FPR_dave" | awk -F: '/^pub/ {print $7}' | grep -q . \
    || { echo "dave has no expiry" >&2; exit 1; }

echo "team fixtures written to $OUT:"
cat "$OUT/fingerprints.txt"

#!/usr/bin/env bash
# Regenerates the OpenPGP fixtures under fixtures/pgp/ with a real client (GnuPG 2.2,
# batch mode, throwaway GNUPGHOME under /tmp). The outputs are committed so tests
# never need gpg at run time; see fixtures/pgp/README.md for what each file is.
#
# Time is faked (--faked-system-time) so every key and signature is dated early
# 2026 and tests can pick a fixed `now` (2026-03-01) that keeps them valid, except
# the deliberately expired and soon-expiring keys.
#
# Usage: scripts/make-pgp-fixtures.sh   (from the crate root; needs gpg and python3)
set -euo pipefail

cd "$(dirname "$0")/.."
OUT=fixtures/pgp
mkdir -p "$OUT"
rm -f "$OUT"/*.asc "$OUT"/*.eml "$OUT"/*.pgp

export GNUPGHOME
GNUPGHOME=$(mktemp -d /tmp/secmail-fixtures.XXXXXX)
trap 'gpgconf --kill all >/dev/null 2>&1 || true; rm -rf "$GNUPGHOME"' EXIT
chmod 700 "$GNUPGHOME"

KEYTIME='20260101T000000!'   # key creation
MSGTIME='20260102T100000!'   # encryption and signatures
TEAM_RSA_PASSPHRASE='fixture passphrase'

g() { gpg --batch --yes --quiet --no-tty --pinentry-mode loopback --trust-model always "$@"; }
fpr() { gpg --list-keys --with-colons "$1" | awk -F: '/^fpr/ {print $10; exit}'; }

# newkey NAME UID PRIMARY-ALGO SUBKEY-ALGO EXPIRE [PASSPHRASE] [KEYTIME]
newkey() {
    local name=$1 uid=$2 palgo=$3 salgo=$4 expire=$5 pass=${6:-} ktime=${7:-$KEYTIME}
    g --faked-system-time "$ktime" --passphrase "$pass" --quick-gen-key "$uid" "$palgo" sign,cert "$expire"
    local f; f=$(fpr "$uid")
    g --faked-system-time "$ktime" --passphrase "$pass" --quick-add-key "$f" "$salgo" encr "$expire"
    g --armor --export "$f" > "$OUT/$name.pub.asc"
    g --passphrase "$pass" --armor --export-secret-keys "$f" > "$OUT/$name.sec.asc"
    echo "$name $f" >> "$OUT/fingerprints.txt"
}

: > "$OUT/fingerprints.txt"
newkey team-rsa      'secmail team (2025 key) <security@example.test>' rsa3072 rsa3072 never "$TEAM_RSA_PASSPHRASE"
newkey team-cv25519  'secmail team <security@example.test>'            ed25519 cv25519 never
newkey team-weak     'secmail weak team key <weak@example.test>'       rsa2048 rsa2048 2026-03-15
newkey reporter      'Rita Reporter <reporter@example.test>'           ed25519 cv25519 never
newkey reporter2     'Rob Reporter <Reporter2@Example.Test>'           rsa3072 rsa3072 never
newkey stranger      'Stan Stranger <stranger@example.test>'           ed25519 cv25519 never
newkey expired       'Eve Expired <expired@example.test>'              ed25519 cv25519 2026-02-01
g --export reporter@example.test reporter2@example.test expired@example.test > "$OUT/reporters.pgp"

TEAM=$(fpr 'secmail team <security@example.test>')
OLD=$(fpr 'secmail team (2025 key) <security@example.test>')
REP=$(fpr reporter@example.test)
REP2=$(fpr reporter2@example.test)
STRANGER=$(fpr stranger@example.test)

enc()      { g --faked-system-time "$MSGTIME" --armor --encrypt -r "$1"; }             # stdin -> armored
enc_bin()  { g --faked-system-time "$MSGTIME" --encrypt -r "$1"; }                     # stdin -> binary
sign_enc() { g --faked-system-time "$MSGTIME" --passphrase '' --armor --local-user "$2" --sign --encrypt -r "$1"; }
crlf()     { sed 's/\r*$/\r/'; }

# hdr FROM TO SUBJECT ID : common outer headers
hdr() {
    printf 'From: %s\nTo: %s\nSubject: %s\nDate: Fri, 02 Jan 2026 10:00:00 +0000\nMessage-ID: <%s@example.test>\nMIME-Version: 1.0\n' "$1" "$2" "$3" "$4"
}

# pgpmime ARMORED-FILE : the multipart/encrypted body (RFC 3156 section 4), boundary "enc"
pgpmime_body() {
    printf 'This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)\n--enc\nContent-Type: application/pgp-encrypted\nContent-Description: PGP/MIME version identification\n\nVersion: 1\n\n--enc\nContent-Type: application/octet-stream; name="encrypted.asc"\nContent-Description: OpenPGP encrypted message\nContent-Disposition: inline; filename="encrypted.asc"\n\n'
    cat "$1"
    printf '\n--enc--\n'
}
PGPMIME_CT='Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary="enc"'

# inner_text MARKER : a simple inner MIME entity
inner_text() {
    printf 'Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nHello security team,\n\n%s: the parser overflows on a 70000-byte header. Proof of concept below.\n-- \nRita\n' "$1" | crlf
}

T=$(mktemp -d /tmp/secmail-fixtures-work.XXXXXX)
trap 'gpgconf --kill all >/dev/null 2>&1 || true; rm -rf "$GNUPGHOME" "$T"' EXIT

# --- plain (no OpenPGP at all)
{ hdr 'Rita Reporter <reporter@example.test>' security@example.test 'Plain report' plain
  printf 'Content-Type: text/plain; charset=utf-8\n\nMARKER-PLAIN: nothing encrypted here.\n'; } | crlf > "$OUT/plain.eml"

# --- PGP/MIME to the current team key
inner_text MARKER-PGPMIME | enc "$TEAM" > "$T/a.asc"
{ hdr 'Rita Reporter <reporter@example.test>' security@example.test 'Encrypted report' pgpmime-encrypted
  echo "$PGPMIME_CT"; echo; pgpmime_body "$T/a.asc"; } | crlf > "$OUT/pgpmime-encrypted.eml"

# --- PGP/MIME, signed then encrypted by the reporter (RFC 3156 section 6.2, combined)
inner_text MARKER-SIGNED | sign_enc "$TEAM" "$REP" > "$T/a.asc"
{ hdr 'Rita Reporter <reporter@example.test>' security@example.test 'Signed and encrypted report' pgpmime-signed-encrypted
  echo "$PGPMIME_CT"; echo; pgpmime_body "$T/a.asc"; } | crlf > "$OUT/pgpmime-signed-encrypted.eml"

# --- PGP/MIME whose decrypted entity is multipart/signed (RFC 3156 section 6.1, nested)
printf 'Content-Type: text/plain; charset=utf-8\n\nMARKER-NESTED-SIGNED: signed first, then encrypted as a whole.\n' | crlf > "$T/signed-part"
g --faked-system-time "$MSGTIME" --passphrase '' --armor --local-user "$REP" --detach-sign -o "$T/signed-part.sig" "$T/signed-part"
{ printf 'Content-Type: multipart/signed; micalg=pgp-sha512; protocol="application/pgp-signature"; boundary="sig"\n\n--sig\n' | crlf
  cat "$T/signed-part"
  printf '\n--sig\nContent-Type: application/pgp-signature; name="signature.asc"\n\n' | crlf
  crlf < "$T/signed-part.sig"
  printf '\n--sig--\n' | crlf; } | enc "$TEAM" > "$T/a.asc"
{ hdr 'Rita Reporter <reporter@example.test>' security@example.test 'Nested signed report' pgpmime-nested-signed
  echo "$PGPMIME_CT"; echo; pgpmime_body "$T/a.asc"; } | crlf > "$OUT/pgpmime-nested-signed.eml"

# --- cleartext multipart/signed (RFC 3156 section 5), and a tampered copy
printf 'Content-Type: text/plain; charset=utf-8\n\n#severity important\nMARKER-SIGNED-ONLY: looks real.\n' | crlf > "$T/signed-part"
g --faked-system-time "$MSGTIME" --passphrase '' --armor --local-user "$REP" --detach-sign -o "$T/signed-part.sig" "$T/signed-part"
{ hdr 'Rita Reporter <reporter@example.test>' security@example.test '[SEC-1] Signed only' signed-only | crlf
  printf 'Content-Type: multipart/signed; micalg=pgp-sha512; protocol="application/pgp-signature"; boundary="sig"\n\nThis is an OpenPGP/MIME signed message\n--sig\n' | crlf
  cat "$T/signed-part"
  printf '\n--sig\nContent-Type: application/pgp-signature; name="signature.asc"\n\n' | crlf
  crlf < "$T/signed-part.sig"
  printf '\n--sig--\n' | crlf; } > "$OUT/signed-only.eml"
sed 's/#severity important/#severity critical/' "$OUT/signed-only.eml" > "$OUT/signed-only-tampered.eml"

# --- inline ASCII armor in a text/plain body
printf 'MARKER-INLINE: inline armored report text.\n' | enc "$TEAM" > "$T/a.asc"
{ hdr 'Rita Reporter <reporter@example.test>' security@example.test 'Inline report' inline-armored
  printf 'Content-Type: text/plain; charset=us-ascii\nContent-Transfer-Encoding: 7bit\n\nSome cleartext before the block.\n\n'
  cat "$T/a.asc"; printf '\nAnd a cleartext signature line after it.\n'; } | crlf > "$OUT/inline-armored.eml"

# --- inline ASCII armor, quoted-printable transfer encoding (= in base64 becomes =3D)
printf 'MARKER-INLINE-QP: quoted-printable armored report.\n' | enc "$TEAM" > "$T/a.asc"
{ hdr 'Rita Reporter <reporter@example.test>' security@example.test 'Inline QP report' inline-armored-qp
  printf 'Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n'
  python3 -c 'import quopri,sys; sys.stdout.buffer.write(quopri.encodestring(sys.stdin.buffer.read()))' < "$T/a.asc"; } | crlf > "$OUT/inline-armored-qp.eml"
grep -c '=3D' "$OUT/inline-armored-qp.eml" >/dev/null || { echo "QP fixture has no =3D; regenerate" >&2; exit 1; }

# --- encrypted attachments: armored .asc and binary .gpg
printf 'MARKER-ATTACH-ASC: poc.txt contents\n' | enc "$TEAM" > "$T/a.asc"
printf 'MARKER-ATTACH-GPG: poc.bin contents\n' | enc_bin "$TEAM" > "$T/a.gpg"
attach_msg() { # ID SUBJECT FILE NAME CT
    hdr 'Rita Reporter <reporter@example.test>' security@example.test "$2" "$1"
    printf 'Content-Type: multipart/mixed; boundary="mix"\n\n--mix\nContent-Type: text/plain; charset=utf-8\n\nDetails in the encrypted attachment.\n\n--mix\nContent-Type: %s; name="%s"\nContent-Disposition: attachment; filename="%s"\nContent-Transfer-Encoding: base64\n\n' "$5" "$4" "$4"
    base64 -w 76 < "$3"
    printf '\n--mix--\n'
}
attach_msg attachment-asc 'Report with .asc attachment' "$T/a.asc" poc.txt.asc 'application/octet-stream' | crlf > "$OUT/attachment-asc.eml"
attach_msg attachment-gpg 'Report with .gpg attachment' "$T/a.gpg" poc.bin.gpg 'application/octet-stream' | crlf > "$OUT/attachment-gpg.eml"

# --- HTML mail: multipart/alternative, the same armored block in text/plain and text/html
printf 'MARKER-HTML-ALT: armored in both alternatives.\n' | enc "$TEAM" > "$T/a.asc"
{ hdr 'Rita Reporter <reporter@example.test>' security@example.test 'HTML inline report' html-alternative
  printf 'Content-Type: multipart/alternative; boundary="alt"\n\n--alt\nContent-Type: text/plain; charset=utf-8\n\n'
  cat "$T/a.asc"
  printf '\n--alt\nContent-Type: text/html; charset=utf-8\n\n<html><body><pre>\n'
  sed 's/$/<br>/' "$T/a.asc"
  printf '</pre></body></html>\n\n--alt--\n'; } | crlf > "$OUT/html-alternative.eml"

# --- PGP/MIME nested inside multipart/alternative (HTML client) and multipart/mixed (list footer)
inner_text MARKER-PGPMIME-ALT | enc "$TEAM" > "$T/a.asc"
{ hdr 'Rita Reporter <reporter@example.test>' security@example.test 'Encrypted (HTML client)' pgpmime-in-alternative
  printf 'Content-Type: multipart/alternative; boundary="alt"\n\n--alt\nContent-Type: text/html; charset=utf-8\n\n<p>This message is encrypted.</p>\n--alt\n'
  echo "$PGPMIME_CT"; echo; pgpmime_body "$T/a.asc"; printf '\n--alt--\n'; } | crlf > "$OUT/pgpmime-in-alternative.eml"
inner_text MARKER-PGPMIME-MIXED | enc "$TEAM" > "$T/a.asc"
{ hdr 'Rita Reporter <reporter@example.test>' security@example.test 'Encrypted (footer added)' pgpmime-in-mixed
  printf 'Content-Type: multipart/mixed; boundary="mix"\n\n--mix\n'
  echo "$PGPMIME_CT"; echo; pgpmime_body "$T/a.asc"
  printf '\n--mix\nContent-Type: text/plain; charset=utf-8\n\n-- \nSent through a relay that appends footers.\n\n--mix--\n'; } | crlf > "$OUT/pgpmime-in-mixed.eml"

# --- Bcc delivery: security@ appears in no header
inner_text MARKER-BCC | enc "$TEAM" > "$T/a.asc"
{ hdr 'Rita Reporter <reporter@example.test>' 'Vendor <vendor@example.test>' 'Encrypted, Bcc to security' bcc-delivery
  echo "$PGPMIME_CT"; echo; pgpmime_body "$T/a.asc"; } | crlf > "$OUT/bcc-delivery.eml"

# --- Autocrypt header with the reporter key (minimal export), signed+encrypted
inner_text MARKER-AUTOCRYPT | sign_enc "$TEAM" "$REP" > "$T/a.asc"
KEYDATA=$(g --export-options export-minimal --export "$REP" | base64 -w 0 | fold -w 72 | sed '1!s/^/ /')
{ hdr 'Rita Reporter <reporter@example.test>' security@example.test 'Report with Autocrypt' autocrypt
  printf 'Autocrypt: addr=reporter@example.test; prefer-encrypt=mutual; keydata=\n %s\n' "$KEYDATA"
  echo "$PGPMIME_CT"; echo; pgpmime_body "$T/a.asc"; } | crlf > "$OUT/autocrypt.eml"

# --- attached public key (application/pgp-keys) next to inline signed+encrypted text, by reporter2
printf 'MARKER-ATTACHED-KEY: my key is attached.\n' | sign_enc "$TEAM" "$REP2" > "$T/a.asc"
{ hdr 'Rob Reporter <reporter2@example.test>' security@example.test 'Report with my key' attached-key
  printf 'Content-Type: multipart/mixed; boundary="mix"\n\n--mix\nContent-Type: text/plain; charset=us-ascii\n\n'
  cat "$T/a.asc"
  printf '\n--mix\nContent-Type: application/pgp-keys; name="OpenPGP_0x%s.asc"\nContent-Disposition: attachment; filename="OpenPGP_0x%s.asc"\n\n' "${REP2: -16}" "${REP2: -16}"
  cat "$OUT/reporter2.pub.asc"
  printf '\n--mix--\n'; } | crlf > "$OUT/attached-key.eml"

# --- encrypted to the OLD team key only (rotation)
inner_text MARKER-OLD-KEY | enc "$OLD" > "$T/a.asc"
{ hdr 'Rita Reporter <reporter@example.test>' security@example.test 'Encrypted to the old key' old-team-key
  echo "$PGPMIME_CT"; echo; pgpmime_body "$T/a.asc"; } | crlf > "$OUT/old-team-key.eml"

# --- no integrity protection: GnuPG 2.2 still writes a SED packet (tag 9, no MDC)
#     under --rfc2440 (it warns "encrypting without integrity protection").
inner_text MARKER-NO-MDC | g --faked-system-time "$MSGTIME" --rfc2440 --cipher-algo AES256 --armor --encrypt -r "$TEAM" > "$T/a.asc" 2>/dev/null
PACKETS=$(g --list-packets < "$T/a.asc" 2>/dev/null || true)
# --list-packets prints ":encrypted data packet:" for SEIPD too; the tag tells them apart.
case $PACKETS in *' tag=9 '*) ;; *) echo "no SED packet (tag 9) produced" >&2; exit 1 ;; esac
{ hdr 'Mallory <reporter@example.test>' security@example.test 'Legacy encrypted' no-mdc
  echo "$PGPMIME_CT"; echo; pgpmime_body "$T/a.asc"; } | crlf > "$OUT/no-mdc.eml"

# --- corrupt: flip bytes inside the SEIPD packet of a binary message, re-armor (valid CRC)
inner_text MARKER-CORRUPT | enc_bin "$TEAM" > "$T/a.gpg"
python3 - "$T/a.gpg" "$T/a.asc" <<'PY'
import base64, sys
data = bytearray(open(sys.argv[1], 'rb').read())
for off in (len(data) - 40, len(data) - 41, len(data) - 60):   # well inside the SEIPD body
    data[off] ^= 0xFF
def crc24(b):
    crc = 0xB704CE
    for x in b:
        crc ^= x << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF
b64 = base64.b64encode(bytes(data)).decode()
lines = [b64[i:i+64] for i in range(0, len(b64), 64)]
crc = base64.b64encode(crc24(data).to_bytes(3, 'big')).decode()
open(sys.argv[2], 'w').write('-----BEGIN PGP MESSAGE-----\n\n' + '\n'.join(lines) + '\n=' + crc + '\n-----END PGP MESSAGE-----\n')
PY
{ hdr 'Rita Reporter <reporter@example.test>' security@example.test 'Corrupted in transit' corrupt
  echo "$PGPMIME_CT"; echo; pgpmime_body "$T/a.asc"; } | crlf > "$OUT/corrupt.eml"

# --- encrypted to a stranger's key only
inner_text MARKER-STRANGER | enc "$STRANGER" > "$T/a.asc"
{ hdr 'Rita Reporter <reporter@example.test>' security@example.test 'Encrypted to the wrong key' stranger-only
  echo "$PGPMIME_CT"; echo; pgpmime_body "$T/a.asc"; } | crlf > "$OUT/stranger-only.eml"

# --- protected headers: the real Subject only inside the encrypted entity
printf 'Content-Type: text/plain; charset=utf-8; protected-headers="v1"\nSubject: MARKER-PROTECTED-SUBJECT RCE in the config parser\nFrom: Rita Reporter <reporter@example.test>\nTo: security@example.test\nMessage-ID: <protected-subject@example.test>\n\nMARKER-PROTECTED-BODY: the subject above is the real one.\n' | crlf | enc "$TEAM" > "$T/a.asc"
{ hdr 'Rita Reporter <reporter@example.test>' security@example.test '...' protected-subject
  echo "$PGPMIME_CT"; echo; pgpmime_body "$T/a.asc"; } | crlf > "$OUT/protected-subject.eml"

echo "fixtures written to $OUT"

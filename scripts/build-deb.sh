#!/usr/bin/env bash
# Builds the Debian package target/debian/secmail_<version>-1_<arch>.deb with
# cargo-deb (Cargo.toml [package.metadata.deb]). Works on a fresh Debian 12
# with the Rust toolchain, as root: installs what is missing of the build
# packages (dpkg-dev for dpkg-shlibdeps and the Depends line, pkg-config,
# libssl-dev, clang) and cargo-deb (into ~/.cargo/bin, once).
#
# Steps: `cargo build --release --locked`; render what the package needs from
# the repository and the fresh binary into target/deb-assets/ (the unit with
# ExecStart=/usr/bin/secmail, the packaged conffile) and target/completions/
# (bash, zsh, fish, from `secmail completions SHELL`); check the conffile with
# `secmail check-config --offline`; then `cargo deb --no-build`.
# Prints the path of the .deb as its last line.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DEB_VERSION=3.8.0   # builds with Rust 1.85 and later
export PATH="$HOME/.cargo/bin:$PATH"
target=${CARGO_TARGET_DIR:-target}
assets=target/deb-assets
completions=target/completions

# What the release build (openssl-sys runs bindgen) and cargo-deb need.
missing=()
for pkg in dpkg-dev pkg-config libssl-dev clang libclang-dev; do
    dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null | grep -qx installed || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "build-deb: missing packages: ${missing[*]} (re-run as root)" >&2
        exit 1
    fi
    echo "build-deb: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! cargo deb --version 2>/dev/null | grep -qxF "cargo-deb $CARGO_DEB_VERSION"; then
    echo "build-deb: installing cargo-deb $CARGO_DEB_VERSION" >&2
    cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked --quiet
fi

cargo build --release --locked
bin="$target/release/secmail"

rm -rf "$assets" "$completions"
mkdir -p "$assets" "$completions"

# The unit: the repository's, with the binary where the package puts it and
# the manual install steps of its header replaced by what the package did.
# Nothing else changes (tests/debian_package.rs compares the two).
awk '
    /^# Install:$/ { skip = 1; next }
    skip && /^# The database lives/ {
        skip = 0
        print "# Installed by the secmail Debian package: the binary is /usr/bin/secmail,"
        print "# the user `secmail` and /var/lib/secmail were created by its postinst,"
        print "# /etc/secmail/secmail.toml is a conffile (root:secmail 0640). Password"
        print "# files and secret keys: 0600, owned by secmail (see secmail.toml(5))."
        print "# Then: systemctl enable --now secmail"
        print "#"
    }
    skip { next }
    { print }
' systemd/secmail.service | sed 's|/usr/local/bin/secmail|/usr/bin/secmail|g' >"$assets/secmail.service"
grep -qx 'ExecStart=/usr/bin/secmail --config /etc/secmail/secmail.toml run' "$assets/secmail.service" || {
    echo "build-deb: systemd/secmail.service has no ExecStart=/usr/local/bin/secmail ... line to rewrite" >&2
    exit 1
}

# The conffile: config.example.toml turned into a dry run that passes
# `check-config --offline` with no secrets on the machine: [imap] and [smtp]
# commented out, [maildir] and [outbox_dir] (under /var/lib/secmail, the only
# place the unit may write) switched on. Every other line stays as it is.
{
    cat <<'HEADER'
# /etc/secmail/secmail.toml as shipped by the secmail Debian package.
#
# This is config.example.toml (also in /usr/share/doc/secmail/examples/) made
# into a DRY RUN that works with no password or key on the machine:
#   - source: [maildir] /var/lib/secmail/maildir instead of [imap];
#   - transport: [outbox_dir] /var/lib/secmail/outbox instead of [smtp]: every
#     outgoing mail becomes an .eml file there, nothing is sent.
# Try it: systemctl start secmail, drop a message (RFC 5322) into
# /var/lib/secmail/maildir/new/ and find the ack in /var/lib/secmail/outbox/.
#
# For production: set [mailbox] and [team]; replace [maildir] and
# [outbox_dir] by [imap] and [smtp] (below, commented out: uncomment their
# settings); set [openpgp]; write the password files (mode 0600, owned by
# secmail); then
#     sudo -u secmail secmail check-config
#     systemctl enable --now secmail
# All keys: secmail.toml(5).

HEADER
    awk '
        # comment out the [imap] and [smtp] blocks (up to the next header)
        /^\[imap\]$/ || /^\[smtp\]$/ { off = 1; n_off++ }
        /^# \[maildir\]/ || /^# \[outbox_dir\]/ || /^# ---/ { if (!/^\[/) off = 0 }
        /^# \[maildir\]/ { on = "maildir"; n_on++ }
        /^# \[outbox_dir\]/ { on = "outbox_dir"; n_on++ }
        on && /^$/ { on = "" }
        off && !/^#/ && !/^$/ { print "# " $0; next }
        on == "maildir" && /^# \[maildir\]/ { sub(/^# /, ""); print; next }
        on == "maildir" && /^# path = / { sub(/^# path = "[^"]*"/, "path = \"/var/lib/secmail/maildir\""); print; next }
        on == "maildir" && /^# poll_interval = / { sub(/^# /, ""); print; next }
        on == "outbox_dir" && /^# \[outbox_dir\]/ { sub(/^# /, ""); print; next }
        on == "outbox_dir" && /^# path = / { sub(/^# path = "[^"]*"/, "path = \"/var/lib/secmail/outbox\""); print; next }
        { print }
        END { if (n_off != 2 || n_on != 2) exit 3 }
    ' config.example.toml || {
        echo "build-deb: config.example.toml no longer has the [imap]/[smtp] and # [maildir]/# [outbox_dir] blocks this script rewrites" >&2
        exit 1
    }
} >"$assets/secmail.toml"
for want in '^\[maildir\]' '^path = "/var/lib/secmail/maildir"' '^\[outbox_dir\]' '^path = "/var/lib/secmail/outbox"'; do
    grep -q "$want" "$assets/secmail.toml" || { echo "build-deb: packaged config lacks $want" >&2; exit 1; }
done
for unwanted in '^\[imap\]' '^\[smtp\]'; do
    if grep -q "$unwanted" "$assets/secmail.toml"; then echo "build-deb: packaged config still has $unwanted" >&2; exit 1; fi
done
"$bin" --config "$assets/secmail.toml" check-config --offline >/dev/null || {
    echo "build-deb: the packaged config $assets/secmail.toml does not pass check-config --offline" >&2
    exit 1
}

"$bin" completions bash >"$completions/secmail.bash"
"$bin" completions zsh >"$completions/_secmail"
"$bin" completions fish >"$completions/secmail.fish"
for f in secmail.bash _secmail secmail.fish; do
    [ -s "$completions/$f" ] || { echo "build-deb: empty completion $f" >&2; exit 1; }
done

cargo deb --no-build --locked --output target/debian/ | tee target/debian-build.log
tail -n 1 target/debian-build.log

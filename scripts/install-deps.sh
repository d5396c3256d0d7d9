#!/usr/bin/env bash
# Installs the Debian packages that building secmail and running its
# real-server integration tests need (Dovecot, Postfix, Cyrus's common files
# and libraries, clang for bindgen, OpenSSL headers, gnupg, systemd-analyze).
# Idempotent and quiet when everything is already there; `apt-get update` runs
# only if something is missing. Must run as root (or via sudo) when it has
# something to install.
#
# Cyrus IMAP: Debian's cyrus-imapd package (imapd, idled) Conflicts with
# dovecot-imapd (both provide imap-server), so only cyrus-common (master,
# lmtpd, the libraries and tools; it creates the system user `cyrus`) is
# installed. tests/harness/servers.sh fetches cyrus-imapd itself, of the same
# version, with `apt-get download` and unpacks it under its own directory;
# nothing of it is installed into the system. The system-wide Cyrus service
# that cyrus-common brings is disabled (never started): the harness runs its
# own `master` with its own configuration.
set -euo pipefail

# package -> a file or command proving it is installed. dpkg status is the
# source of truth; the probe only catches half-removed installs.
wanted=(
    dovecot-imapd
    dovecot-lmtpd
    postfix
    cyrus-common
    libclang-dev
    clang
    pkg-config
    libssl-dev
    gnupg
    openssl
    ca-certificates
    systemd
)

installed() {
    dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null | grep -qx installed
}

missing=()
for pkg in "${wanted[@]}"; do
    installed "$pkg" || missing+=("$pkg")
done
# systemd-analyze is what the unit test needs; a container image can carry
# a systemd package status without the binary.
if ! command -v systemd-analyze >/dev/null 2>&1; then
    case " ${missing[*]-} " in *" systemd "*) ;; *) missing+=(systemd) ;; esac
fi

if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing packages: ${missing[*]} (re-run as root)" >&2
    exit 1
fi

echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Postfix must not ask questions nor write a system mail configuration: the
# test harness runs its own instance with its own config directory.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
echo "postfix postfix/mailname string localhost" | debconf-set-selections

# Keep the packages' maintainer scripts from starting the system-wide
# dovecot/postfix (sysvinit scripts run even without systemd): the harness
# starts its own instances on its own ports. Only if no policy is in place.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
fi

apt-get update -qq
apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${missing[@]}" >/dev/null
case " ${missing[*]} " in
    *" cyrus-common "*)
        # cyrus-common enables its init script and unit (cyrmaster with
        # /etc/cyrus.conf, which would serve lmtp and sieve at boot).
        update-rc.d cyrus-imapd disable >/dev/null 2>&1 || true
        deb-systemd-helper disable cyrus-imapd.service >/dev/null 2>&1 || true
        ;;
esac
echo "install-deps: done" >&2

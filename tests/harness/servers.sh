#!/usr/bin/env bash
# Real mail servers for secmail's integration tests: a private Dovecot
# (IMAP, IMAPS, LMTP, SASL auth), a private Postfix (SMTP, submission,
# SMTPS), and three more IMAP servers with other habits (Cyrus, a
# hosting-panel style Dovecot, a Dovecot without MOVE and UIDPLUS), all on
# 127.0.0.1, each with its own config, state and logs under
# ${SECMAIL_HARNESS_DIR:-<repo>/target/harness}. The system-wide Dovecot,
# Postfix and Cyrus (/etc/dovecot, /etc/postfix, /var/spool/postfix,
# /etc/imapd.conf, /etc/cyrus.conf, /var/lib/cyrus, /var/spool/cyrus) are
# never touched.
#
#   servers.sh start    idempotent; safe when several test binaries call it
#                       at once (flock); starts what is not running, restarts
#                       a server whose configuration changed (and only that
#                       one); waits until every port accepts
#   servers.sh stop     stops exactly the processes it started (pid files)
#   servers.sh status   exit 0 when everything runs and listens
#
# For outage tests (tests/outage.rs), which stop one server while secmail
# runs; all of them hold the same lock as start/stop, and "Dovecot" there is
# the main Dovecot only (14143/14993/14024):
#   servers.sh stop-dovecot    stop Dovecot only; waits until 14143/14993/14024 close
#   servers.sh start-dovecot   start Dovecot only; waits until its ports accept
#   servers.sh stop-postfix    stop Postfix only (its queue is kept); waits until
#                              14025/14587/14465 close
#   servers.sh start-postfix   start Postfix only; waits until its ports accept
#   servers.sh flush-postfix   `postfix flush`: retry deferred mail now
#   servers.sh reload-postfix  `postfix reload`, and end the sessions open on the
#                              policy port (14588), so that the next command of
#                              every client there sees $DIR/postfix/recipient_access
#
# Policy port 14588: submission (STARTTLS + AUTH required) like 14587, plus a
# recipient check against the regexp table $DIR/postfix/recipient_access
# (comment-only when created; never rewritten by start). A test makes the
# server answer 4xx or 5xx for an address of its own by writing a line like
#   /^reporter-x-1@example\.test$/ 450 4.7.1 try later
# then running reload-postfix. A regexp table is read when an smtpd starts,
# and an SMTP client keeps its session (and so its smtpd) between mails: that
# is why reload-postfix ends the sessions on 14588. Only tests that change the
# table use that port, so no other test is disturbed.
#
# Ports (all 127.0.0.1):
#   14143 IMAP (plain + STARTTLS, IDLE)    14993 IMAPS (implicit TLS)
#   14024 LMTP (Postfix -> Dovecot)        14025 SMTP, no auth, mynetworks only
#   14587 submission (STARTTLS + AUTH required)
#   14465 SMTPS (implicit TLS + AUTH required)
#   14588 submission with a runtime recipient policy (see above)
# Users: any <name>@example.test, password "secret"; each address is its own
# mailbox (Maildir under $DIR/mail/<domain>/<name>), created on first use, so
# tests that use fresh addresses never see each other's mail.
# TLS: a CA generated once ($DIR/ca.pem) signs the server certificate
# (SAN DNS:localhost, IP:127.0.0.1) that all TLS ports present.
# Mail to a domain other than example.test and the three below is bounced
# locally: nothing leaves the machine (no relayhost, default_transport = error).
#
# The other IMAP servers. Each has an IMAP port (plain with STARTTLS offered,
# cleartext login allowed, like 14143) and an LMTP port that Postfix delivers
# its domain into (transport_maps: $DIR/postfix/transport), so a reporter
# @example.test can send over 14025 to <name>@<its domain>, and mail sent
# from there to @example.test lands in the main Dovecot. Users are any
# <name>@<its domain>, password "secret"; a user's INBOX is created on first
# login and on first delivery, so fresh addresses need no admin step.
#
#   Cyrus IMAP 3.6 (Debian's build, Debian's namespace defaults:
#   altnamespace: no, unixhierarchysep: no, so NAMESPACE (("INBOX." "."))):
#     14243 IMAP    14224 LMTP    users <name>@cyrus.example.test
#     Folders are INBOX.<name> ("INBOX.secmail.processed"); a top-level
#     folder outside INBOX is refused (NO), so is a name with "/" in it.
#     A local part must not contain "." (the hierarchy separator).
#     Any password is accepted (sasl_pwcheck_method: alwaystrue).
#     virtdomains: userid: the login and the LMTP recipient are the full
#     address; mailboxes are cyrus.example.test!user.<name>.
#     IDLE is pushed by idled (an EXISTS within milliseconds of a delivery).
#     Cyrus suppresses a second delivery of the same Message-ID to the same
#     mailbox (duplicatesuppression, on by default).
#     Config, databases, spool and sockets: $DIR/cyrus (owned by the system
#     user `cyrus` that Debian's cyrus-common creates); log: $DIR/cyrus.log.
#   Dovecot as hosting panels (cPanel, Plesk) ship it: namespace inbox with
#   separator "." and prefix "INBOX.", so NAMESPACE (("INBOX." "."))):
#     14343 IMAP    14324 LMTP    users <name>@hosting.example.test
#     $DIR/dovecot-hosting.conf, $DIR/dovecot-hosting/, $DIR/dovecot-hosting.log
#   Dovecot without MOVE and UIDPLUS in its post-login CAPABILITY (IDLE,
#   LITERAL+, NAMESPACE etc. kept; "/" separator, no prefix, like 14143):
#     14443 IMAP    14424 LMTP    users <name>@nomove.example.test
#     $DIR/dovecot-nomove.conf, $DIR/dovecot-nomove/, $DIR/dovecot-nomove.log
#
# How Cyrus runs: Debian's cyrus-imapd package Conflicts with dovecot-imapd,
# so scripts/install-deps.sh installs only cyrus-common (master, lmtpd, the
# libraries) and this script fetches cyrus-imapd (imapd, idled) of the same
# version with `apt-get download` and unpacks it (dpkg-deb -x) into
# $DIR/cyrus-imapd/<version>/, once; nothing of it is installed. Cyrus's
# master runs with -C $DIR/cyrus/imapd.conf -M $DIR/cyrus/cyrus.conf (every
# service there gets the same -C: master does not pass it on). Cyrus logs only
# through syslog(3); a small preloaded library (built here with cc) writes
# those lines to $DIR/cyrus.log instead, so there is a log with or without a
# system syslog.
#
# Postfix runs as a second instance: `postfix -c $DIR/postfix start`. Run as
# root, Postfix accepts an alternate config directory without it being listed
# in the default instance's alternate_config_directories (that check guards
# unprivileged callers of the set-gid tools postdrop/postqueue, which these
# tests do not use). The harness therefore needs root for Postfix and for the
# dedicated mail user; both tests and CI run as root on this project's hosts.
set -euo pipefail

# The servers started here must not inherit the caller's descriptors: a pipe
# would keep the caller's reader waiting, a lock (`flock FILE cargo test`)
# would be held for as long as the server runs.
for fd in /proc/$$/fd/*; do
    fd="${fd##*/}"
    # (255: bash reads this script from it.)
    [ "$fd" -gt 2 ] 2>/dev/null && [ "$fd" -ne 255 ] && eval "exec $fd>&-" 2>/dev/null || true
done

readonly REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DIR="${SECMAIL_HARNESS_DIR:-$REPO/target/harness}"
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
readonly DIR

readonly VMAIL_USER=secmail-vmail
readonly PASSWORD=secret
readonly DOMAIN=example.test
readonly CYRUS_DOMAIN=cyrus.example.test
readonly HOSTING_DOMAIN=hosting.example.test
readonly NOMOVE_DOMAIN=nomove.example.test
readonly IMAP_PORT=14143 IMAPS_PORT=14993 LMTP_PORT=14024
readonly SMTP_PORT=14025 SUBMISSION_PORT=14587 SMTPS_PORT=14465 POLICY_PORT=14588
readonly CYRUS_IMAP_PORT=14243 CYRUS_LMTP_PORT=14224
readonly HOSTING_IMAP_PORT=14343 HOSTING_LMTP_PORT=14324
readonly NOMOVE_IMAP_PORT=14443 NOMOVE_LMTP_PORT=14424
readonly DOVECOT_PORTS="$IMAP_PORT $IMAPS_PORT $LMTP_PORT"
readonly POSTFIX_PORTS="$SMTP_PORT $SUBMISSION_PORT $SMTPS_PORT $POLICY_PORT"
readonly ALL_PORTS="$DOVECOT_PORTS $POSTFIX_PORTS $CYRUS_IMAP_PORT $CYRUS_LMTP_PORT $HOSTING_IMAP_PORT $HOSTING_LMTP_PORT $NOMOVE_IMAP_PORT $NOMOVE_LMTP_PORT"
# Every server, in start order: Postfix last, it delivers into the others.
# A Dovecot's name is also the stem of its files: $DIR/<name>.conf,
# $DIR/<name>.log, $DIR/<name>/{run,state}.
readonly SERVERS="dovecot dovecot-hosting dovecot-nomove cyrus postfix"
readonly START_DEADLINE_S=30

# Process titles of this harness's Dovecot children read
# "dovecot-<instance>/<service>"; the hash keeps two harness dirs apart, and
# the other instances append their suffix (-hosting, -nomove).
readonly DC_INSTANCE="secmail-harness-$(printf %s "$DIR" | cksum | cut -d' ' -f1)"
readonly DC_CONF="$DIR/dovecot.conf"
readonly DC_PID="$DIR/dovecot/run/master.pid"
readonly AUTH_SOCKET="$DIR/dovecot/run/auth-postfix"
# Dovecot 2.3.19's own post-login CAPABILITY without MOVE and UIDPLUS.
readonly NOMOVE_CAPABILITY="IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY THREAD=REFERENCES THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS BINARY SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW STATUS=SIZE SAVEDATE LITERAL+ NOTIFY"

readonly PF_CONF="$DIR/postfix"
readonly PF_QUEUE="$DIR/postfix-spool"
readonly PF_DATA="$DIR/postfix-data"
readonly PF_LOG="$DIR/postfix.log"
readonly PF_PID="$PF_QUEUE/pid/master.pid"
readonly PF_ACCESS="$PF_CONF/recipient_access"
readonly PF_TRANSPORT="$PF_CONF/transport"

# Cyrus: config files (root's) and state (the cyrus user's) under CY_HOME.
readonly CY_HOME="$DIR/cyrus"
readonly CY_CONF="$CY_HOME/imapd.conf"
readonly CY_MASTER_CONF="$CY_HOME/cyrus.conf"
readonly CY_PID="$CY_HOME/run/master.pid"
readonly CY_KEY="$CY_HOME/server.key"
readonly CY_SHIM="$CY_HOME/syslog-to-file.so"
readonly CY_LOG="$DIR/cyrus.log"
readonly CY_USER=cyrus CY_GROUP=mail
# master, lmtpd and ctl_cyrusdb come from cyrus-common (installed);
# imapd and idled from the unpacked cyrus-imapd, $CY_PKGS/<version>.
readonly CY_SYSBIN=/usr/lib/cyrus/bin
readonly CY_PKGS="$DIR/cyrus-imapd"
CY_BIN="" # set by ensure_cyrus_imapd

log() { echo "servers.sh: $*" >&2; }
die() { log "$*"; exit 1; }

# --- helpers ---------------------------------------------------------------

# A process that exists and is not a zombie (an exited daemon stays a zombie
# until init reaps it).
proc_alive() { # pid
    local state
    [ -n "$1" ] && [ -r "/proc/$1/stat" ] || return 1
    state="$(sed -E 's/^.*\) (.).*$/\1/' "/proc/$1/stat" 2>/dev/null)" || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}

# pid from a pid file, only if that process is alive and is the expected
# program (a stale pid file after a reboot can name an unrelated process).
live_pid() { # file comm
    local pid
    [ -s "$1" ] || return 1
    pid="$(tr -d ' \n' <"$1")"
    proc_alive "$pid" || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] || return 1
    echo "$pid"
}

port_open() { # port
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

all_ports_open() {
    ports_open $ALL_PORTS
}

ports_open() { # ports...
    local p
    for p in "$@"; do port_open "$p" || return 1; done
}

ports_closed() { # ports...
    local p
    for p in "$@"; do port_open "$p" && return 1; done
    return 0
}

server_pid_file() { # server
    case "$1" in
        dovecot*) echo "$DIR/$1/run/master.pid" ;;
        cyrus) echo "$CY_PID" ;;
        postfix) echo "$PF_PID" ;;
    esac
}

server_comm() { # server
    case "$1" in
        dovecot*) echo dovecot ;;
        cyrus | postfix) echo master ;;
    esac
}

server_ports() { # server
    case "$1" in
        dovecot) echo "$DOVECOT_PORTS" ;;
        dovecot-hosting) echo "$HOSTING_IMAP_PORT $HOSTING_LMTP_PORT" ;;
        dovecot-nomove) echo "$NOMOVE_IMAP_PORT $NOMOVE_LMTP_PORT" ;;
        cyrus) echo "$CYRUS_IMAP_PORT $CYRUS_LMTP_PORT" ;;
        postfix) echo "$POSTFIX_PORTS" ;;
    esac
}

server_log() { # server
    case "$1" in
        postfix) echo "$PF_LOG" ;;
        cyrus) echo "$CY_LOG" ;;
        *) echo "$DIR/$1.log" ;;
    esac
}

server_running() { # server
    live_pid "$(server_pid_file "$1")" "$(server_comm "$1")" >/dev/null
}

# Running and listening on all its ports.
server_up() { # server
    server_running "$1" && ports_open $(server_ports "$1")
}

# Where a Dovecot's users' Maildirs are.
dc_mail() { # server
    if [ "$1" = dovecot ]; then echo "$DIR/mail"; else echo "$DIR/$1/mail"; fi
}

ensure_vmail_user() {
    if ! getent passwd "$VMAIL_USER" >/dev/null; then
        useradd --system --user-group --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin "$VMAIL_USER"
    fi
}

# Installs missing Debian packages (quiet and fast when all are there).
# Called under the start lock, so two test binaries never race on apt.
ensure_tools() {
    "$REPO/scripts/install-deps.sh"
    getent passwd "$CY_USER" >/dev/null || die "no user $CY_USER: is cyrus-common installed?"
}

# CA + server certificate, generated once and kept across restarts so that
# a client holding ca.pem keeps trusting the servers.
ensure_certs() {
    [ -s "$DIR/ca.pem" ] && [ -s "$DIR/server.pem" ] && [ -s "$DIR/server.key" ] && return 0
    local tmp
    tmp="$(mktemp -d "$DIR/.certs.XXXXXX")"
    (
        cd "$tmp"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -keyout ca.key -out ca.pem -days 3650 -subj "/CN=secmail test harness CA" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -keyout server.key -out server.csr -subj "/CN=localhost" 2>/dev/null
        cat >server.ext <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1
EOF
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
            -out server.pem -days 3650 -extfile server.ext 2>/dev/null
        chmod 600 ca.key server.key
        chmod 644 ca.pem server.pem
    )
    mv "$tmp/ca.key" "$tmp/server.key" "$tmp/server.pem" "$DIR/"
    mv "$tmp/ca.pem" "$DIR/ca.pem" # last: its presence means "all done"
    rm -rf "$tmp"
}

apt_download() { # dir package=version
    (cd "$1" && apt-get -q -o APT::Sandbox::User=root download "$2") >>"$1/apt.log" 2>&1
}

# Debian's cyrus-imapd (imapd, idled) of the installed cyrus-common's version,
# unpacked once into $CY_PKGS/<version>; sets CY_BIN. Not installed: the
# package Conflicts with dovecot-imapd.
ensure_cyrus_imapd() {
    local version dest tmp
    version="$(dpkg-query -W -f='${Version}' cyrus-common 2>/dev/null)" && [ -n "$version" ] \
        || die "cyrus-common is not installed (scripts/install-deps.sh installs it)"
    dest="$CY_PKGS/$version"
    CY_BIN="$dest/usr/lib/cyrus/bin"
    [ -x "$CY_BIN/imapd" ] && [ -x "$CY_BIN/idled" ] && return 0
    log "fetching cyrus-imapd $version (apt-get download, unpacked into $dest)"
    mkdir -p "$CY_PKGS"
    chmod 755 "$CY_PKGS"
    tmp="$(mktemp -d "$CY_PKGS/.fetch.XXXXXX")"
    if ! apt_download "$tmp" "cyrus-imapd=$version"; then
        # No package lists yet (a fresh container), or stale ones.
        apt-get update -qq >>"$tmp/apt.log" 2>&1 || true
        if ! apt_download "$tmp" "cyrus-imapd=$version"; then
            cat "$tmp/apt.log" >&2
            rm -rf "$tmp"
            die "cannot download cyrus-imapd $version, the version of the installed" \
                "cyrus-common (if the archive has a newer one now:" \
                "apt-get install --only-upgrade cyrus-common)"
        fi
    fi
    dpkg-deb -x "$tmp"/cyrus-imapd_*.deb "$tmp/root" \
        || { rm -rf "$tmp"; die "cannot unpack cyrus-imapd $version"; }
    chmod 755 "$tmp/root"
    [ -x "$tmp/root/usr/lib/cyrus/bin/imapd" ] && [ -x "$tmp/root/usr/lib/cyrus/bin/idled" ] \
        || { rm -rf "$tmp"; die "cyrus-imapd $version has no usr/lib/cyrus/bin/imapd or idled"; }
    rm -rf "$dest"
    mv "$tmp/root" "$dest"
    rm -rf "$tmp"
}

# --- configuration -----------------------------------------------------------

# One Dovecot: `dovecot` is the main one (example.test, 14143/14993/14024,
# Postfix's SASL), the others differ in ports, namespace and capabilities.
render_dovecot() { # server
    local name="$1" vmail_uid imap imaps="" lmtp separator=/ prefix_line="" capability_line=""
    local imaps_listener auth_service=""
    vmail_uid="$(id -u "$VMAIL_USER")"
    case "$name" in
        dovecot) imap=$IMAP_PORT imaps=$IMAPS_PORT lmtp=$LMTP_PORT ;;
        dovecot-hosting)
            imap=$HOSTING_IMAP_PORT lmtp=$HOSTING_LMTP_PORT separator=.
            # cPanel's and Plesk's layout: every folder under INBOX.
            prefix_line=$'\n  prefix = INBOX.'
            ;;
        dovecot-nomove)
            imap=$NOMOVE_IMAP_PORT lmtp=$NOMOVE_LMTP_PORT
            capability_line=$'\n'"# Clients must do without MOVE and UIDPLUS (they still work if used)."$'\n'"imap_capability = $NOMOVE_CAPABILITY"
            ;;
        *) die "no such Dovecot: $name" ;;
    esac
    if [ -n "$imaps" ]; then
        imaps_listener="  inet_listener imaps {
    address = 127.0.0.1
    port = $imaps
    ssl = yes
  }"
        auth_service="
service auth {
  # SASL for Postfix's smtpd (smtpd_sasl_type = dovecot).
  unix_listener auth-postfix { # = $AUTH_SOCKET
    mode = 0660
    user = postfix
    group = postfix
  }
}"
    else
        imaps_listener="  inet_listener imaps {
    port = 0
  }"
    fi
    cat <<EOF
# Generated by tests/harness/servers.sh: edits are overwritten.
instance_name = $DC_INSTANCE${name#dovecot}
base_dir = $DIR/$name/run
state_dir = $DIR/$name/state
log_path = $DIR/$name.log
info_log_path = $DIR/$name.log
protocols = imap lmtp
listen = 127.0.0.1
shutdown_clients = yes

ssl = yes
ssl_cert = <$DIR/server.pem
ssl_key = <$DIR/server.key
ssl_dh = </usr/share/dovecot/dh.pem
ssl_min_protocol = TLSv1.2

# Loopback test servers: cleartext logins are allowed on $imap so that
# tls = "none" can be tested too; STARTTLS is still offered there.
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_username_format = %Lu
auth_verbose = yes
passdb {
  driver = static
  args = password=$PASSWORD allow_nets=127.0.0.0/8
}
userdb {
  driver = static
  args = uid=$VMAIL_USER gid=$VMAIL_USER home=$(dc_mail "$name")/%d/%n
}
first_valid_uid = $vmail_uid
last_valid_uid = $vmail_uid
mail_location = maildir:~/Maildir
mail_max_userip_connections = 200$capability_line
namespace inbox {
  inbox = yes
  separator = $separator$prefix_line
}

service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $imap
  }
$imaps_listener
}
service pop3-login {
  inet_listener pop3 {
    port = 0
  }
  inet_listener pop3s {
    port = 0
  }
}
service submission-login {
  inet_listener submission {
    port = 0
  }
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = $lmtp
  }
}$auth_service
# No authentication penalty: all tests log in from 127.0.0.1, and the tests
# that try a wrong password on purpose would otherwise delay every later login
# (and every SMTP AUTH) from that address by up to 15 s.
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
protocol lmtp {
  lmtp_save_to_detail_mailbox = no
}
EOF
}

render_cyrus_imapd() {
    cat <<EOF
# Generated by tests/harness/servers.sh: edits are overwritten.
# Cyrus as Debian configures it (/etc/imapd.conf), every path under $CY_HOME.
configdirectory: $CY_HOME/lib
defaultpartition: default
partition-default: $CY_HOME/spool
sievedir: $CY_HOME/sieve
proc_path: $CY_HOME/run/proc
mboxname_lockpath: $CY_HOME/run/lock
lmtpsocket: $CY_HOME/run/lmtp
idlesocket: $CY_HOME/run/idle
notifysocket: $CY_HOME/run/notify
syslog_prefix: secmail-harness-cyrus
umask: 077
hashimapspool: true

# Debian's namespace: NAMESPACE (("INBOX." ".")), folders are INBOX.<name>.
altnamespace: no
unixhierarchysep: no

# Users are full addresses (<name>@$CYRUS_DOMAIN), the domain part of the
# mailbox name; Postfix's LMTP recipients are full addresses too.
virtdomains: userid
lmtp_downcase_rcpt: yes
# A user's INBOX is created at the first login (autocreate_quota >= 0; 0 is
# "no quota") and at the first LMTP delivery.
autocreate_quota: 0
autocreate_post: yes

# Loopback test server: cleartext logins allowed on $CYRUS_IMAP_PORT (STARTTLS
# is offered), any password accepted.
allowanonymouslogin: no
allowplaintext: yes
sasl_pwcheck_method: alwaystrue
sasl_mech_list: PLAIN LOGIN
tls_server_cert: $DIR/server.pem
tls_server_key: $CY_KEY
tls_versions: tls1_2 tls1_3
EOF
}

render_cyrus_master() {
    cat <<EOF
# Generated by tests/harness/servers.sh: edits are overwritten.
# master does not pass its -C on: every command names the configuration.
START {
  recover cmd="$CY_SYSBIN/ctl_cyrusdb -C $CY_CONF -r"
}
SERVICES {
  imap cmd="$CY_BIN/imapd -C $CY_CONF" listen="127.0.0.1:$CYRUS_IMAP_PORT" prefork=0 maxchild=200
  # -a: no LMTP AUTH asked of TCP clients (Postfix, on loopback).
  lmtp cmd="$CY_SYSBIN/lmtpd -C $CY_CONF -a" listen="127.0.0.1:$CYRUS_LMTP_PORT" prefork=0 maxchild=50
}
EVENTS {
  checkpoint cmd="$CY_SYSBIN/ctl_cyrusdb -C $CY_CONF -c" period=30
}
DAEMON {
  # Tells IDLEing imapd processes about new mail at once.
  idled cmd="$CY_BIN/idled -C $CY_CONF"
}
EOF
}

# Cyrus logs only through syslog(3). Preloaded into its master (and so into
# every process it starts), this writes those lines to $SECMAIL_SYSLOG_FILE.
render_syslog_shim() {
    cat <<'EOF'
/* Generated by tests/harness/servers.sh: syslog(3) into $SECMAIL_SYSLOG_FILE. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static char log_ident[64] = "syslog";
static int log_mask = 0xff;
static int log_fd = -1;

void openlog(const char *ident, int option, int facility) {
    (void)option;
    (void)facility;
    if (ident) snprintf(log_ident, sizeof log_ident, "%s", ident);
}

void closelog(void) {}

int setlogmask(int mask) {
    int old = log_mask;
    if (mask) log_mask = mask;
    return old;
}

void vsyslog(int pri, const char *fmt, va_list ap) {
    int saved = errno;
    char buf[8192];
    struct timespec ts;
    struct tm tm;
    size_t n;
    int m;

    if (!(LOG_MASK(LOG_PRI(pri)) & log_mask)) return;
    if (log_fd < 0) {
        const char *path = getenv("SECMAIL_SYSLOG_FILE");
        if (!path) return;
        log_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (log_fd < 0) return;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    n = strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
    n += snprintf(buf + n, sizeof buf - n, ".%03ld %s[%d]: ", ts.tv_nsec / 1000000,
                  log_ident, (int)getpid());
    errno = saved; /* for %m */
    m = vsnprintf(buf + n, sizeof buf - n - 1, fmt, ap);
    if (m > 0) n += (size_t)m < sizeof buf - n - 1 ? (size_t)m : sizeof buf - n - 2;
    buf[n++] = '\n';
    if (write(log_fd, buf, n) < 0) { /* nowhere to report it */ }
    errno = saved;
}

void syslog(int pri, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsyslog(pri, fmt, ap);
    va_end(ap);
}

void __vsyslog_chk(int pri, int flag, const char *fmt, va_list ap) {
    (void)flag;
    vsyslog(pri, fmt, ap);
}

void __syslog_chk(int pri, int flag, const char *fmt, ...) {
    va_list ap;
    (void)flag;
    va_start(ap, fmt);
    vsyslog(pri, fmt, ap);
    va_end(ap);
}
EOF
}

render_postfix_main() {
    cat <<EOF
# Generated by tests/harness/servers.sh: edits are overwritten.
compatibility_level = 3.6
queue_directory = $PF_QUEUE
data_directory = $PF_DATA
meta_directory = /etc/postfix
daemon_directory = /usr/lib/postfix/sbin
shlib_directory = /usr/lib/postfix
command_directory = /usr/sbin
mail_owner = postfix
setgid_group = postdrop
syslog_name = secmail-harness/postfix
maillog_file = $PF_LOG
maillog_file_prefixes = $DIR
biff = no

myhostname = localhost
mydomain = localdomain
myorigin = localhost
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
local_recipient_maps =

# Everything for example.test goes to the harness Dovecot over LMTP; every
# user exists there (static userdb), so smtpd does not validate recipients.
# The other IMAP servers' domains go to their own LMTP ports (transport_maps;
# they create a user's INBOX at the first delivery).
virtual_mailbox_domains = $DOMAIN $CYRUS_DOMAIN $HOSTING_DOMAIN $NOMOVE_DOMAIN
virtual_transport = lmtp:inet:127.0.0.1:$LMTP_PORT
transport_maps = texthash:$PF_TRANSPORT
smtpd_reject_unlisted_recipient = no

# Nothing leaves the machine: no relay host, other domains bounce at once.
relayhost =
default_transport = error:secmail test harness delivers only to @$DOMAIN
relay_transport = error:secmail test harness delivers only to @$DOMAIN
local_transport = error:secmail test harness has no local delivery

smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination

smtpd_tls_cert_file = $DIR/server.pem
smtpd_tls_key_file = $DIR/server.key
smtpd_tls_security_level = may
smtpd_tls_loglevel = 1
smtpd_sasl_type = dovecot
smtpd_sasl_path = $AUTH_SOCKET
smtpd_sasl_auth_enable = no
lmtp_tls_security_level = none

# Tests want fast feedback, not politeness.
message_size_limit = 209715200
mailbox_size_limit = 0
smtpd_error_sleep_time = 0
in_flow_delay = 0
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 5s
maximal_queue_lifetime = 1h
bounce_queue_lifetime = 1h
EOF
}

render_postfix_transport() {
    cat <<EOF
# Generated by tests/harness/servers.sh: edits are overwritten.
# texthash: read as is, no postmap.
$CYRUS_DOMAIN lmtp:inet:127.0.0.1:$CYRUS_LMTP_PORT
$HOSTING_DOMAIN lmtp:inet:127.0.0.1:$HOSTING_LMTP_PORT
$NOMOVE_DOMAIN lmtp:inet:127.0.0.1:$NOMOVE_LMTP_PORT
EOF
}

render_postfix_master() {
    local sub_opts="
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject"
    cat <<EOF
# Generated by tests/harness/servers.sh: edits are overwritten.
# No service is chrooted: the instance lives under the harness directory.
# service        type  private unpriv chroot wakeup maxproc command
127.0.0.1:$SMTP_PORT inet n - n - - smtpd
127.0.0.1:$SUBMISSION_PORT inet n - n - - smtpd
  -o syslog_name=secmail-harness/submission
  -o smtpd_tls_security_level=encrypt
  -o smtpd_tls_auth_only=yes$sub_opts
127.0.0.1:$SMTPS_PORT inet n - n - - smtpd
  -o syslog_name=secmail-harness/smtps
  -o smtpd_tls_wrappermode=yes$sub_opts
# The policy port: submission plus the runtime recipient access table (no
# match = DUNNO = accepted). See reload-postfix.
127.0.0.1:$POLICY_PORT inet n - n - - smtpd
  -o syslog_name=secmail-harness/policy
  -o smtpd_tls_security_level=encrypt
  -o smtpd_tls_auth_only=yes$sub_opts
  -o smtpd_recipient_restrictions=check_recipient_access,regexp:$PF_ACCESS
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
}

# Writes $2 from stdin when the content differs; returns 0 if it changed.
install_if_changed() { # mode path
    local tmp
    tmp="$(mktemp "$2.XXXXXX")"
    cat >"$tmp"
    if [ -e "$2" ] && cmp -s "$tmp" "$2"; then
        rm -f "$tmp"
        return 1
    fi
    chmod "$1" "$tmp"
    mv "$tmp" "$2"
}

# The runtime recipient access table: created comment-only, never overwritten
# (tests edit it while the servers run), not part of "configuration changed".
ensure_access_table() {
    [ -e "$PF_ACCESS" ] && return 0
    printf '%s\n' \
        '# Runtime recipient access for the outage tests (regexp table, see servers.sh).' \
        '# A test adds a line for an address of its own, then runs reload-postfix.' \
        >"$PF_ACCESS.tmp"
    chmod 644 "$PF_ACCESS.tmp"
    mv "$PF_ACCESS.tmp" "$PF_ACCESS"
}

# Servers whose configuration write_configs changed (space-separated).
CHANGED=""

write_configs() {
    local name mail
    CHANGED=""
    mkdir -p "$PF_CONF"
    chmod 755 "$DIR" "$PF_CONF"
    for name in dovecot dovecot-hosting dovecot-nomove; do
        mail="$(dc_mail "$name")"
        mkdir -p "$DIR/$name/state" "$mail"
        chmod 755 "$DIR/$name"
        chown "$VMAIL_USER:$VMAIL_USER" "$mail"
        chmod 750 "$mail"
        render_dovecot "$name" | install_if_changed 644 "$DIR/$name.conf" && CHANGED+=" $name"
    done
    write_cyrus_configs && CHANGED+=" cyrus"
    local pf=1
    render_postfix_main | install_if_changed 644 "$PF_CONF/main.cf" && pf=0
    render_postfix_master | install_if_changed 644 "$PF_CONF/master.cf" && pf=0
    render_postfix_transport | install_if_changed 644 "$PF_TRANSPORT" && pf=0
    [ "$pf" -eq 0 ] && CHANGED+=" postfix"
    ensure_access_table
}

# Cyrus's configuration, directories (what Debian's `cyrus makedirs` creates,
# owned by the cyrus user), its copy of the TLS key, and the syslog shim.
# Returns 0 if something that needs a restart changed.
write_cyrus_configs() {
    local changed=1 d
    mkdir -p "$CY_HOME"
    chmod 755 "$CY_HOME"
    for d in lib lib/db lib/proc lib/socket lib/log lib/msg lib/user lib/quota lib/lock \
        lib/ptclient spool spool/stage. sieve run; do
        if [ ! -d "$CY_HOME/$d" ]; then
            mkdir "$CY_HOME/$d"
            chown "$CY_USER:$CY_GROUP" "$CY_HOME/$d"
            chmod 750 "$CY_HOME/$d"
        fi
    done
    [ -e "$CY_LOG" ] || : >"$CY_LOG"
    chown "$CY_USER:$CY_GROUP" "$CY_LOG"
    chmod 640 "$CY_LOG"
    # imapd reads the key as the cyrus user, at each STARTTLS.
    install_if_changed 600 "$CY_KEY" <"$DIR/server.key" && changed=0
    chown "$CY_USER:$CY_GROUP" "$CY_KEY"
    render_cyrus_imapd | install_if_changed 644 "$CY_CONF" && changed=0
    render_cyrus_master | install_if_changed 644 "$CY_MASTER_CONF" && changed=0
    if render_syslog_shim | install_if_changed 644 "$CY_HOME/syslog-to-file.c" \
        || [ ! -s "$CY_SHIM" ]; then
        build_syslog_shim
        changed=0
    fi
    return $changed
}

build_syslog_shim() {
    local cc
    cc="$(command -v cc || command -v gcc || command -v clang)" \
        || die "building $CY_SHIM needs a C compiler (cc, gcc or clang)"
    "$cc" -shared -fPIC -O2 -Wall -o "$CY_SHIM.tmp" "$CY_HOME/syslog-to-file.c" \
        || { rm -f "$CY_HOME/syslog-to-file.c"; die "cannot build $CY_SHIM"; }
    chmod 755 "$CY_SHIM.tmp"
    mv "$CY_SHIM.tmp" "$CY_SHIM"
}

# --- start / stop ------------------------------------------------------------

start_dovecot() { # server (default: the main one)
    local name="${1:-dovecot}"
    server_running "$name" && return 0
    mkdir -p "$DIR/$name/run"
    chmod 755 "$DIR/$name/run"
    # A master killed with -9 can linger as a zombie until init reaps it;
    # Dovecot would take its pid file for a running instance.
    rm -f "$DIR/$name/run/master.pid"
    # The daemon must not inherit (and so hold forever) the start lock (fd 9)
    # nor the caller's stdout/stderr: a test harness reading them until EOF
    # would wait for as long as the servers run.
    dovecot -c "$DIR/$name.conf" </dev/null >>"$DIR/$name.log" 2>&1 9>&- \
        || { tail -n 30 "$DIR/$name.log" >&2; die "$name failed to start"; }
}

start_postfix() {
    live_pid "$PF_PID" master >/dev/null && return 0
    mkdir -p "$PF_QUEUE"
    chown root:root "$PF_QUEUE"
    chmod 755 "$PF_QUEUE"
    # `postfix start` runs `postfix check`, which creates the queue
    # subdirectories and data_directory with the right owners.
    postfix -c "$PF_CONF" start </dev/null >>"$PF_LOG" 2>&1 9>&- \
        || { tail -n 30 "$PF_LOG" >&2; die "postfix failed to start"; }
}

cyrus_failed() { # reason
    echo "----- tail of $CY_LOG -----" >&2
    tail -n 30 "$CY_LOG" >&2 2>/dev/null || echo "(no log)" >&2
    die "cyrus failed to start: $1 (log: $CY_LOG)"
}

start_cyrus() {
    server_running cyrus && return 0
    [ -n "$CY_BIN" ] || ensure_cyrus_imapd
    rm -f "$CY_PID"
    # master starts as root and becomes the cyrus user. It runs in the
    # foreground of a session of its own (setsid, not -d) so that this script
    # has its pid and sees at once when it exits (a bad configuration); its
    # pid file tells that it runs.
    SECMAIL_SYSLOG_FILE="$CY_LOG" LD_PRELOAD="$CY_SHIM" \
        setsid "$CY_SYSBIN/master" -C "$CY_CONF" -M "$CY_MASTER_CONF" -p "$CY_PID" \
        </dev/null >>"$CY_LOG" 2>&1 9>&- &
    local pid=$! deadline=$((SECONDS + 10))
    until server_running cyrus; do
        proc_alive "$pid" || cyrus_failed "master exited"
        [ "$SECONDS" -lt "$deadline" ] || cyrus_failed "master wrote no pid file ($CY_PID)"
        sleep 0.1
    done
}

start_server() { # server
    case "$1" in
        dovecot*) start_dovecot "$1" ;;
        cyrus) start_cyrus ;;
        postfix) start_postfix ;;
    esac
}

stop_one() { # name pidfile comm [command...] (no command: SIGTERM)
    local name="$1" pidfile="$2" comm="$3" pid i
    shift 3
    pid="$(live_pid "$pidfile" "$comm")" || return 0
    if [ "$#" -gt 0 ]; then
        "$@" >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
    else
        kill -TERM "$pid" 2>/dev/null || true
    fi
    for i in $(seq 1 100); do
        proc_alive "$pid" || return 0
        sleep 0.1
    done
    log "$name (pid $pid) ignored the stop request; killing it"
    kill -KILL "$pid" 2>/dev/null || true
}

stop_server() { # server (its master only; see kill_orphans)
    case "$1" in
        dovecot*) stop_one "$1" "$DIR/$1/run/master.pid" dovecot dovecot -c "$DIR/$1.conf" stop ;;
        # SIGTERM: master ends its children, then itself.
        cyrus) stop_one cyrus "$CY_PID" master ;;
        postfix) stop_one postfix "$PF_PID" master postfix -c "$PF_CONF" stop ;;
    esac
}

# Children of these servers that outlived their master (killed with -9, say)
# and still hold its ports: Dovecot's carry the instance name in their
# process title, Postfix's inherit MAIL_CONFIG=<our config dir>, Cyrus's have
# our imapd.conf on their command line (-C). Pure bash: no fork per process.
orphans_of() { # servers...
    local d pid name hit arg var
    local -a args vars
    for d in /proc/[0-9]*; do
        pid="${d#/proc/}"
        [ "$pid" = "$$" ] && continue
        args=()
        mapfile -d '' -t args 2>/dev/null <"$d/cmdline" || continue
        [ "${#args[@]}" -gt 0 ] || continue # kernel thread or zombie
        hit=""
        for name in "$@"; do
            case "$name" in
                dovecot*) [[ "${args[0]}" == "dovecot-$DC_INSTANCE${name#dovecot}/"* ]] && hit=1 ;;
                cyrus)
                    for arg in "${args[@]}"; do [ "$arg" = "$CY_CONF" ] && hit=1; done
                    ;;
                postfix)
                    vars=()
                    mapfile -d '' -t vars 2>/dev/null <"$d/environ" || continue
                    for var in "${vars[@]}"; do [ "$var" = "MAIL_CONFIG=$PF_CONF" ] && hit=1; done
                    ;;
            esac
        done
        [ -n "$hit" ] && echo "$pid"
    done
    return 0
}

kill_orphans() { # servers...
    local orphans
    orphans="$(orphans_of "$@")"
    [ -n "$orphans" ] || return 0
    log "stopping leftover server processes:" $orphans
    kill -TERM $orphans 2>/dev/null || true
    sleep 0.5
    orphans="$(orphans_of "$@")"
    [ -z "$orphans" ] || kill -KILL $orphans 2>/dev/null || true
}

stop_servers() { # servers...
    local name
    for name in "$@"; do stop_server "$name"; done
    kill_orphans "$@"
}

stop_all() {
    # Postfix first: it delivers into the others. Those stop side by side
    # (`dovecot stop` alone can take seconds).
    stop_server postfix
    local name pids=()
    for name in cyrus dovecot-nomove dovecot-hosting dovecot; do
        stop_server "$name" &
        pids+=($!)
    done
    wait "${pids[@]}"
    kill_orphans $SERVERS
}

# A harness port held by a process that is not ours (another harness
# directory, a system service) would make tests talk to the wrong server.
check_ports_free() { # ports...
    local p busy=() i
    # A just-stopped server can take a moment to close its listeners.
    for i in $(seq 1 50); do
        busy=()
        for p in "$@"; do port_open "$p" && busy+=("$p"); done
        [ "${#busy[@]}" -eq 0 ] && return 0
        sleep 0.1
    done
    if [ "${#busy[@]}" -gt 0 ]; then
        ss -ltnp 2>/dev/null | grep -E ":($(echo "${busy[*]}" | tr ' ' '|'))\b" >&2 || true
        die "ports ${busy[*]} are already in use by something this harness ($DIR) did not start" \
            "(a harness whose directory was deleted? stop those pids by hand)"
    fi
}

print_logs() { # servers... (default: all)
    local name f
    [ "$#" -gt 0 ] || set -- $SERVERS
    for name in "$@"; do
        f="$(server_log "$name")"
        echo "----- tail of $f -----" >&2
        tail -n 40 "$f" >&2 2>/dev/null || echo "(no log)" >&2
    done
}

wait_ready() {
    local deadline=$((SECONDS + START_DEADLINE_S)) name down
    until all_ports_open; do
        # Cyrus's master checks its configuration after it has forked.
        server_running cyrus || cyrus_failed "master exited"
        if [ "$SECONDS" -ge "$deadline" ]; then
            down=""
            for name in $SERVERS; do
                ports_open $(server_ports "$name") && continue
                log "$name: ports $(server_ports "$name") are not all accepting connections"
                down+=" $name"
            done
            print_logs $down
            die "servers not ready after ${START_DEADLINE_S}s:$down"
        fi
        sleep 0.1
    done
}

cmd_start() {
    exec 9>"$DIR/.lock"
    flock 9
    ensure_tools
    ensure_vmail_user
    ensure_certs
    ensure_cyrus_imapd
    write_configs
    local name
    for name in $SERVERS; do
        if server_up "$name"; then
            case " $CHANGED " in *" $name "*) ;; *) continue ;; esac
            if [ "$name" = postfix ]; then
                # Open SMTP sessions (tests of another process) go on.
                log "configuration of postfix changed; reloading it"
                postfix -c "$PF_CONF" reload </dev/null >>"$PF_LOG" 2>&1 9>&- \
                    || { tail -n 30 "$PF_LOG" >&2; die "postfix reload failed"; }
                continue
            fi
            log "configuration of $name changed; restarting it"
        fi
        # Stopped, partly running (one of its ports closed), or reconfigured:
        # restart it cleanly.
        stop_servers "$name"
        check_ports_free $(server_ports "$name")
        start_server "$name"
    done
    wait_ready
}

cmd_stop() {
    exec 9>"$DIR/.lock"
    flock 9
    stop_all
}

# Waits (at most START_DEADLINE_S) until the ports accept / refuse connections.
wait_ports() { # open|closed name ports...
    local want="$1" name="$2" deadline=$((SECONDS + START_DEADLINE_S))
    shift 2
    until "ports_$want" "$@"; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            print_logs "$name"
            die "$name: ports $* not $want after ${START_DEADLINE_S}s"
        fi
        sleep 0.1
    done
}

# The single-server commands act on a harness that `start` has set up.
require_setup() {
    [ -s "$DC_CONF" ] && [ -s "$PF_CONF/main.cf" ] || die "not set up yet: run '$0 start' first"
}

cmd_stop_dovecot() {
    exec 9>"$DIR/.lock"
    flock 9
    # With its imap processes: left alone, one serves a client that is already
    # connected for half a minute more, and the outage is not one.
    stop_servers dovecot
    wait_ports closed dovecot $DOVECOT_PORTS
}

cmd_start_dovecot() {
    exec 9>"$DIR/.lock"
    flock 9
    require_setup
    start_dovecot dovecot
    wait_ports open dovecot $DOVECOT_PORTS
}

cmd_stop_postfix() {
    exec 9>"$DIR/.lock"
    flock 9
    stop_server postfix
    wait_ports closed postfix $POSTFIX_PORTS
}

cmd_start_postfix() {
    exec 9>"$DIR/.lock"
    flock 9
    require_setup
    ensure_access_table
    start_postfix
    wait_ports open postfix $POSTFIX_PORTS
}

cmd_flush_postfix() {
    live_pid "$PF_PID" master >/dev/null || die "postfix is not running"
    postfix -c "$PF_CONF" flush </dev/null >>"$PF_LOG" 2>&1 9>&- || die "postfix flush failed"
}

# smtpd processes of this instance serving the policy port.
policy_smtpds() {
    local d pid
    for d in /proc/[0-9]*; do
        pid="${d#/proc/}"
        [ "$(cat "$d/comm" 2>/dev/null)" = smtpd ] || continue
        tr '\0' ' ' 2>/dev/null <"$d/cmdline" | grep -qF -- "-n 127.0.0.1:$POLICY_PORT " || continue
        tr '\0' '\n' 2>/dev/null <"$d/environ" | grep -qxF "MAIL_CONFIG=$PF_CONF" || continue
        echo "$pid"
    done
}

cmd_reload_postfix() {
    exec 9>"$DIR/.lock"
    flock 9
    live_pid "$PF_PID" master >/dev/null || die "postfix is not running"
    ensure_access_table
    postfix -c "$PF_CONF" reload </dev/null >>"$PF_LOG" 2>&1 9>&- \
        || { tail -n 30 "$PF_LOG" >&2; die "postfix reload failed"; }
    # Sessions kept open by clients (connection pools) would go on with the
    # table their smtpd read at its start: end them. The master starts new
    # smtpd processes for the next connections.
    local pids i
    pids="$(policy_smtpds)"
    [ -z "$pids" ] && return 0
    kill -TERM $pids 2>/dev/null || true
    for i in $(seq 1 50); do
        [ -z "$(policy_smtpds | grep -xF "$pids" || true)" ] && return 0
        sleep 0.1
    done
    die "smtpd processes on port $POLICY_PORT did not exit: $pids"
}

cmd_status() {
    local ok=0 p name pid
    for name in $SERVERS; do
        if pid="$(live_pid "$(server_pid_file "$name")" "$(server_comm "$name")")"; then
            echo "$name: running (pid $pid)"
        else
            echo "$name: stopped"
            ok=1
        fi
    done
    for p in $ALL_PORTS; do
        if port_open "$p"; then echo "127.0.0.1:$p: listening"; else echo "127.0.0.1:$p: closed"; ok=1; fi
    done
    echo "dir: $DIR"
    return $ok
}

case "${1-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    stop-dovecot) cmd_stop_dovecot ;;
    start-dovecot) cmd_start_dovecot ;;
    stop-postfix) cmd_stop_postfix ;;
    start-postfix) cmd_start_postfix ;;
    flush-postfix) cmd_flush_postfix ;;
    reload-postfix) cmd_reload_postfix ;;
    *)
        echo "usage: $0 start|stop|status|stop-dovecot|start-dovecot|stop-postfix|start-postfix|flush-postfix|reload-postfix" >&2
        exit 2
        ;;
esac

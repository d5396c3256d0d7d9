#!/usr/bin/env bash
# Real mail servers for secmail's integration tests: a private Dovecot
# (IMAP, IMAPS, LMTP, SASL auth) and a private Postfix (SMTP, submission,
# SMTPS) on 127.0.0.1, each with its own config, state and logs under
# ${SECMAIL_HARNESS_DIR:-<repo>/target/harness}. The system-wide Dovecot and
# Postfix (/etc/dovecot, /etc/postfix, /var/spool/postfix) are never touched.
#
#   servers.sh start    idempotent; safe when several test binaries call it
#                       at once (flock); waits until every port accepts
#   servers.sh stop     stops exactly the processes it started (pid files)
#   servers.sh status   exit 0 when everything runs and listens
#
# For outage tests (tests/outage.rs), which stop one server while secmail
# runs; all of them hold the same lock as start/stop:
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
# Mail to any domain other than example.test is bounced locally: nothing
# leaves the machine (no relayhost, default_transport = error).
#
# Postfix runs as a second instance: `postfix -c $DIR/postfix start`. Run as
# root, Postfix accepts an alternate config directory without it being listed
# in the default instance's alternate_config_directories (that check guards
# unprivileged callers of the set-gid tools postdrop/postqueue, which these
# tests do not use). The harness therefore needs root for Postfix and for the
# dedicated mail user; both tests and CI run as root on this project's hosts.
set -euo pipefail

readonly REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DIR="${SECMAIL_HARNESS_DIR:-$REPO/target/harness}"
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
readonly DIR

readonly VMAIL_USER=secmail-vmail
readonly PASSWORD=secret
readonly DOMAIN=example.test
readonly IMAP_PORT=14143 IMAPS_PORT=14993 LMTP_PORT=14024
readonly SMTP_PORT=14025 SUBMISSION_PORT=14587 SMTPS_PORT=14465 POLICY_PORT=14588
readonly ALL_PORTS="$IMAP_PORT $IMAPS_PORT $LMTP_PORT $SMTP_PORT $SUBMISSION_PORT $SMTPS_PORT $POLICY_PORT"
readonly DOVECOT_PORTS="$IMAP_PORT $IMAPS_PORT $LMTP_PORT"
readonly POSTFIX_PORTS="$SMTP_PORT $SUBMISSION_PORT $SMTPS_PORT $POLICY_PORT"
readonly START_DEADLINE_S=30

# Process titles of this instance's Dovecot children read
# "dovecot-<instance>/<service>"; the hash keeps two harness dirs apart.
readonly DC_INSTANCE="secmail-harness-$(printf %s "$DIR" | cksum | cut -d' ' -f1)"
readonly DC_CONF="$DIR/dovecot.conf"
readonly DC_BASE="$DIR/dovecot/run"
readonly DC_STATE="$DIR/dovecot/state"
readonly DC_LOG="$DIR/dovecot.log"
readonly DC_PID="$DC_BASE/master.pid"
readonly AUTH_SOCKET="$DC_BASE/auth-postfix"
readonly PF_CONF="$DIR/postfix"
readonly PF_QUEUE="$DIR/postfix-spool"
readonly PF_DATA="$DIR/postfix-data"
readonly PF_LOG="$DIR/postfix.log"
readonly PF_PID="$PF_QUEUE/pid/master.pid"
readonly PF_ACCESS="$PF_CONF/recipient_access"

log() { echo "servers.sh: $*" >&2; }
die() { log "$*"; exit 1; }

# --- helpers ---------------------------------------------------------------

# pid from a pid file, only if that process is alive and is the expected
# program (a stale pid file after a reboot can name an unrelated process).
live_pid() { # file comm
    local pid
    [ -s "$1" ] || return 1
    pid="$(tr -d ' \n' <"$1")"
    [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] || return 1
    echo "$pid"
}

port_open() { # port
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

all_ports_open() {
    local p
    for p in $ALL_PORTS; do port_open "$p" || return 1; done
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

running() {
    live_pid "$DC_PID" dovecot >/dev/null && live_pid "$PF_PID" master >/dev/null
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

# --- configuration -----------------------------------------------------------

render_dovecot() {
    local vmail_uid
    vmail_uid="$(id -u "$VMAIL_USER")"
    cat <<EOF
# Generated by tests/harness/servers.sh: edits are overwritten.
instance_name = $DC_INSTANCE
base_dir = $DC_BASE
state_dir = $DC_STATE
log_path = $DC_LOG
info_log_path = $DC_LOG
protocols = imap lmtp
listen = 127.0.0.1
shutdown_clients = yes

ssl = yes
ssl_cert = <$DIR/server.pem
ssl_key = <$DIR/server.key
ssl_dh = </usr/share/dovecot/dh.pem
ssl_min_protocol = TLSv1.2

# Loopback test servers: cleartext logins are allowed on 14143 so that
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
  args = uid=$VMAIL_USER gid=$VMAIL_USER home=$DIR/mail/%d/%n
}
first_valid_uid = $vmail_uid
last_valid_uid = $vmail_uid
mail_location = maildir:~/Maildir
mail_max_userip_connections = 200
namespace inbox {
  inbox = yes
  separator = /
}

service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $IMAP_PORT
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $IMAPS_PORT
    ssl = yes
  }
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
    port = $LMTP_PORT
  }
}
service auth {
  # SASL for Postfix's smtpd (smtpd_sasl_type = dovecot).
  unix_listener auth-postfix { # = $AUTH_SOCKET
    mode = 0660
    user = postfix
    group = postfix
  }
}
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
virtual_mailbox_domains = $DOMAIN
virtual_transport = lmtp:inet:127.0.0.1:$LMTP_PORT
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

write_configs() {
    local changed=1
    mkdir -p "$PF_CONF" "$DC_STATE" "$DIR/mail"
    chmod 755 "$DIR" "$PF_CONF" "$DIR/dovecot"
    chown "$VMAIL_USER:$VMAIL_USER" "$DIR/mail"
    chmod 750 "$DIR/mail"
    render_dovecot | install_if_changed 644 "$DC_CONF" && changed=0
    render_postfix_main | install_if_changed 644 "$PF_CONF/main.cf" && changed=0
    render_postfix_master | install_if_changed 644 "$PF_CONF/master.cf" && changed=0
    ensure_access_table
    return $changed
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

# --- start / stop ------------------------------------------------------------

start_dovecot() {
    live_pid "$DC_PID" dovecot >/dev/null && return 0
    mkdir -p "$DC_BASE"
    chmod 755 "$DC_BASE"
    # The daemon must not inherit (and so hold forever) the start lock (fd 9)
    # nor the caller's stdout/stderr: a test harness reading them until EOF
    # would wait for as long as the servers run.
    dovecot -c "$DC_CONF" </dev/null >>"$DC_LOG" 2>&1 9>&- \
        || { tail -n 30 "$DC_LOG" >&2; die "dovecot failed to start"; }
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

stop_one() { # name pidfile comm command...
    local name="$1" pidfile="$2" comm="$3" pid i
    shift 3
    pid="$(live_pid "$pidfile" "$comm")" || return 0
    "$@" >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do
        [ -d "/proc/$pid" ] || return 0
        sleep 0.1
    done
    log "$name (pid $pid) ignored the stop request; killing it"
    kill -KILL "$pid" 2>/dev/null || true
}

# Children of this harness's servers that outlived their master (killed
# with -9, say) and still hold its ports: Dovecot's carry the instance name
# in their process title, Postfix's inherit MAIL_CONFIG=<our config dir>.
our_orphans() {
    local d pid
    for d in /proc/[0-9]*; do
        pid="${d#/proc/}"
        [ "$pid" = "$$" ] && continue
        if tr '\0' '\n' 2>/dev/null <"$d/cmdline" | head -n 1 | grep -q "^dovecot-$DC_INSTANCE/" \
            || tr '\0' '\n' 2>/dev/null <"$d/environ" | grep -qxF "MAIL_CONFIG=$PF_CONF"; then
            echo "$pid"
        fi
    done
}

stop_all() {
    # Postfix first: it delivers into Dovecot.
    stop_one postfix "$PF_PID" master postfix -c "$PF_CONF" stop
    stop_one dovecot "$DC_PID" dovecot dovecot -c "$DC_CONF" stop
    local orphans
    orphans="$(our_orphans)"
    if [ -n "$orphans" ]; then
        log "stopping leftover server processes:" $orphans
        kill -TERM $orphans 2>/dev/null || true
        sleep 0.5
        kill -KILL $(our_orphans) 2>/dev/null || true
    fi
}

# A harness port held by a process that is not ours (another harness
# directory, a system service) would make tests talk to the wrong server.
check_ports_free() {
    local p busy=() i
    # A just-stopped server can take a moment to close its listeners.
    for i in $(seq 1 50); do
        busy=()
        for p in $ALL_PORTS; do port_open "$p" && busy+=("$p"); done
        [ "${#busy[@]}" -eq 0 ] && return 0
        sleep 0.1
    done
    if [ "${#busy[@]}" -gt 0 ]; then
        ss -ltnp 2>/dev/null | grep -E ":($(echo "${busy[*]}" | tr ' ' '|'))\b" >&2 || true
        die "ports ${busy[*]} are already in use by something this harness ($DIR) did not start" \
            "(a harness whose directory was deleted? stop those pids by hand)"
    fi
}

print_logs() {
    local f
    for f in "$DC_LOG" "$PF_LOG"; do
        echo "----- tail of $f -----" >&2
        tail -n 40 "$f" >&2 2>/dev/null || echo "(no log)" >&2
    done
}

wait_ready() {
    local deadline=$((SECONDS + START_DEADLINE_S))
    until all_ports_open; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            local p
            for p in $ALL_PORTS; do port_open "$p" || log "port $p is not accepting connections"; done
            print_logs
            die "servers not ready after ${START_DEADLINE_S}s"
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
    local changed=1
    write_configs && changed=0
    if running && all_ports_open; then
        [ "$changed" -eq 1 ] && return 0
        log "configuration changed; restarting"
    fi
    # Partly running (one server died, or config changed): restart cleanly.
    stop_all
    check_ports_free
    start_dovecot
    start_postfix
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
            print_logs
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
    stop_one dovecot "$DC_PID" dovecot dovecot -c "$DC_CONF" stop
    wait_ports closed dovecot $DOVECOT_PORTS
}

cmd_start_dovecot() {
    exec 9>"$DIR/.lock"
    flock 9
    require_setup
    start_dovecot
    wait_ports open dovecot $DOVECOT_PORTS
}

cmd_stop_postfix() {
    exec 9>"$DIR/.lock"
    flock 9
    stop_one postfix "$PF_PID" master postfix -c "$PF_CONF" stop
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
    local ok=0 p
    if pid="$(live_pid "$DC_PID" dovecot)"; then echo "dovecot: running (pid $pid)"; else echo "dovecot: stopped"; ok=1; fi
    if pid="$(live_pid "$PF_PID" master)"; then echo "postfix: running (pid $pid)"; else echo "postfix: stopped"; ok=1; fi
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

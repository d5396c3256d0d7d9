//! Outages: the mail servers or the database go away while secmail runs, and
//! come back. Each test checks that the same `secmail run` process recovers on
//! its own (never restarted), that nothing is lost, and that each outage is
//! logged once when it starts and once when it ends (not once per attempt).
//! Each prints `[measure] <scenario>: recovery <duration>`, the time from the
//! outage's end to the first ack that arrives.
//!
//! These tests stop and start the shared harness servers
//! (`tests/harness/servers.sh stop-dovecot`, `stop-postfix`, ...), change
//! Postfix's recipient access table and mount a tmpfs (root only), so the
//! tests of this binary run one at a time ([`SERIAL`]), and every test puts
//! the servers back (`servers.sh start`) when it ends, even on panic. Other
//! test binaries must not run at the same time: `cargo test` runs binaries one
//! after another.
//!
//! Run: `cargo test --test outage -- --nocapture`

mod common;
mod world;

use std::fs;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Daemon, NET_TIMEOUT, servers, smtp_send, unique_addr};
use rusqlite::OpenFlags;
use world::*;

/// Tests of this binary run one at a time: they stop shared servers.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long mail may take once an outage is over: the IMAP source and the SMTP
/// probe reconnect with backoff (at most 64 s), plus a normal ack's time.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the IMAP outage lasts.
const IMAP_OUTAGE: Duration = Duration::from_secs(30);
/// At least this long without SMTP.
const SMTP_OUTAGE: Duration = Duration::from_secs(10);
/// How long reports sit unprocessed while the database refuses writes.
const DB_OUTAGE: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------- harness

fn servers_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/harness/servers.sh")
}

/// `servers.sh <cmd>`: its output goes to a file, not a pipe (a server it
/// starts must not hold our pipe open). `Err` carries that output.
fn try_harness(cmd: &str) -> Result<(), String> {
    let mut output = tempfile::tempfile().expect("temp file");
    let status = Command::new("bash")
        .arg(servers_script())
        .arg(cmd)
        .stdin(Stdio::null())
        .stdout(output.try_clone().expect("dup"))
        .stderr(output.try_clone().expect("dup"))
        .status()
        .map_err(|e| format!("cannot run servers.sh: {e}"))?;
    if status.success() {
        return Ok(());
    }
    let mut text = String::new();
    output.seek(SeekFrom::Start(0)).expect("seek");
    output.read_to_string(&mut text).expect("read output");
    Err(format!("servers.sh {cmd} failed ({status}):\n{text}"))
}

fn harness(cmd: &str) {
    try_harness(cmd).unwrap_or_else(|e| panic!("{e}"));
}

/// Held for a whole test: one test at a time, and the servers are back up
/// (`servers.sh start`, a no-op when they run) when the test ends, however.
struct Exclusive {
    _serial: tokio::sync::MutexGuard<'static, ()>,
    started: Instant,
}

async fn exclusive() -> Exclusive {
    let serial = SERIAL.lock().await;
    // Starts the servers (once per process) if nothing did yet.
    servers();
    Exclusive { _serial: serial, started: Instant::now() }
}

impl Drop for Exclusive {
    fn drop(&mut self) {
        let name = std::thread::current().name().unwrap_or("?").to_string();
        println!("[measure] {name}: test took {:?}", self.started.elapsed());
        if let Err(e) = try_harness("start") {
            if std::thread::panicking() {
                eprintln!("{e}");
            } else {
                panic!("{e}");
            }
        }
    }
}

// ---------------------------------------------------------------- helpers

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

/// The last `lines` lines of the daemon log above DEBUG (IDLE cycles drown
/// the rest).
fn log_tail(d: &Daemon, lines: usize) -> String {
    let log = d.log();
    let all: Vec<&str> = log.lines().filter(|l| !l.contains(" DEBUG ") && !l.contains(" TRACE ")).collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Polls `f` every 100 ms until `Some`; on timeout panics naming `what`, with
/// the daemon log's tail.
async fn wait_or_log<T, F, Fut>(d: &Daemon, what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!(
                "timed out after {timeout:?} waiting for {what}; daemon log tail:\n{}\n{}",
                log_tail(d, 60),
                servers().logs_tail(15)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `needle` is in the daemon log.
async fn wait_log(d: &Daemon, needle: &str, timeout: Duration) {
    wait_or_log(d, &format!("{needle:?} in the daemon log"), timeout, || async { d.log().contains(needle).then_some(()) }).await
}

/// Waits for at least `n` messages in `user`'s INBOX.
async fn wait_inbox(d: &Daemon, user: &str, n: usize, timeout: Duration, what: &str) -> Vec<Vec<u8>> {
    wait_or_log(d, what, timeout, || async {
        let m = inbox(user).await;
        (m.len() >= n).then_some(m)
    })
    .await
}

async fn wait_folder(d: &Daemon, user: &str, folder: &str, n: usize, timeout: Duration) {
    wait_or_log(d, &format!("exactly {n} message(s) in {folder}"), timeout, || async {
        (common::imap_fetch_all(user, folder).await.len() == n).then_some(())
    })
    .await
}

/// The same process, still running: recovery needed no restart.
fn assert_alive(d: &mut Daemon, pid: Option<u32>) {
    assert_eq!(d.pid(), pid, "the same secmail process");
    assert!(d.try_exit_status().is_none(), "secmail exited: {:?}; log:\n{}", d.try_exit_status(), log_tail(d, 80));
    assert_eq!(count(&d.log(), "secmail running"), 1, "secmail started once; log:\n{}", d.log());
}

/// `needle` exactly `n` times in the daemon log.
fn assert_logged(d: &Daemon, needle: &str, n: usize) {
    let log = d.log();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(needle)).collect();
    assert_eq!(lines.len(), n, "{needle:?} should be logged {n} time(s), found:\n{}\n--- log tail:\n{}", lines.join("\n"), log_tail(d, 60));
}

/// Lines of the daemon log at WARN level or above.
fn warnings(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.contains(" WARN ") || l.contains(" ERROR ")).collect()
}

async fn imap_append(user: &str, folder: &str, raw: &[u8]) {
    let mut s = common::imap_connect_starttls(user).await;
    tokio::time::timeout(NET_TIMEOUT, s.append(folder, None, None, raw))
        .await
        .unwrap_or_else(|_| panic!("IMAP APPEND timed out"))
        .unwrap_or_else(|e| panic!("IMAP APPEND into {user} {folder}: {e}"));
    let _ = s.logout().await;
}

/// A read-only connection to secmail's database, beside the running daemon.
fn db_read_only(path: &Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .unwrap_or_else(|e| panic!("opening {} read-only: {e}", path.display()));
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    c
}

#[derive(Debug)]
#[allow(dead_code)]
struct OutRow {
    case_id: Option<i64>,
    kind: String,
    recipients: String,
    attempts: i64,
    sent_at: Option<String>,
    failed_at: Option<String>,
    last_error: Option<String>,
}

fn outbox(db: &Path) -> Vec<OutRow> {
    let c = db_read_only(db);
    let mut st = c
        .prepare("SELECT case_id, kind, recipients, attempts, sent_at, failed_at, last_error FROM outbox ORDER BY id")
        .unwrap();
    st.query_map([], |r| {
        Ok(OutRow {
            case_id: r.get(0)?,
            kind: r.get(1)?,
            recipients: r.get(2)?,
            attempts: r.get(3)?,
            sent_at: r.get(4)?,
            failed_at: r.get(5)?,
            last_error: r.get(6)?,
        })
    })
    .unwrap()
    .collect::<rusqlite::Result<Vec<_>>>()
    .unwrap()
}

fn ts(s: &str) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("bad timestamp {s:?}: {e}"))
}

fn event_kinds(case: &serde_json::Value) -> Vec<String> {
    case["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap_or("").to_string()).collect()
}

/// A report from `from` to the world's security@ with a unique Message-ID.
fn a_report(w: &World, from: &str, subject: &str) -> Vec<u8> {
    let msgid = unique_addr("msg");
    report(from, &w.security, subject, &msgid, "", "Steps to reproduce: ...")
}

/// Starts the daemon and waits until its IMAP source watches the INBOX.
async fn start_daemon(w: &World, mode: Mode) -> Daemon {
    let d = Daemon::start(&w.config);
    wait_log(&d, "secmail running", Duration::from_secs(30)).await;
    wait_log(&d, watching(mode), Duration::from_secs(30)).await;
    d
}

fn watching(mode: Mode) -> &'static str {
    match mode {
        Mode::IdleStarttls => "IMAP: waiting for new mail with IDLE",
        Mode::PollImplicit => "IMAP: polling every",
    }
}

// ---------------------------------------------------------------- 1. IMAP down

/// Dovecot stops for 30 s while secmail idles; it comes back; a report sent
/// then is acknowledged by the same process, which logged the outage once when
/// it began and once when it ended.
async fn imap_down_30s(mode: Mode, tag: &str) {
    let _x = exclusive().await;
    let w = world(tag, mode);
    let mut d = start_daemon(&w, mode).await;
    let pid = d.pid();
    let warns_before = warnings(&d.log()).len();

    harness("stop-dovecot");
    let down = Instant::now();
    wait_log(&d, "IMAP: connection lost or refused", Duration::from_secs(30)).await;
    // The deliberate outage.
    tokio::time::sleep(IMAP_OUTAGE.saturating_sub(down.elapsed())).await;
    assert_logged(&d, "IMAP: connection lost or refused", 1);
    harness("start-dovecot");
    let up = Instant::now();
    println!("[measure] {tag}: Dovecot down for {:?}", up - down);

    smtp_send(&w.reporter, &[&w.security], &a_report(&w, &w.reporter, "XSS after the IMAP outage")).await;
    let acks = wait_inbox(&d, &w.reporter, 1, RECOVERY_TIMEOUT, "the ack after Dovecot came back").await;
    println!("[measure] {tag}: recovery {:?}", up.elapsed());
    assert_eq!(header(&acks[0], "Subject"), "[SEC-1] Re: XSS after the IMAP outage");
    wait_inbox(&d, &w.member, 1, RECOVERY_TIMEOUT, "the team notice").await;
    wait_folder(&d, &w.security, "INBOX", 0, RECOVERY_TIMEOUT).await;
    wait_folder(&d, &w.security, "secmail/processed", 1, RECOVERY_TIMEOUT).await;
    assert_eq!(cases_json(&w.config, true).len(), 1);

    assert_alive(&mut d, pid);
    assert_logged(&d, "IMAP: connection lost or refused", 1);
    assert_logged(&d, "IMAP: connection restored after", 1);
    let log = d.log();
    let warns = warnings(&log);
    assert_eq!(warns.len() - warns_before, 1, "one warning for the whole outage, found:\n{}", warns.join("\n"));
    assert!(d.stop().success(), "clean exit; log:\n{}", d.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn imap_down_30s_idle() {
    imap_down_30s(Mode::IdleStarttls, "imap-down-idle").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn imap_down_30s_polling() {
    imap_down_30s(Mode::PollImplicit, "imap-down-poll").await;
}

// ---------------------------------------------------------------- 2. SMTP down

/// Postfix stops; three reports reach the INBOX anyway (IMAP APPEND); secmail
/// opens their cases and its acks wait in the outbox without spending
/// attempts; Postfix comes back after ≥ 10 s and all acks go out, before the
/// team notices.
#[tokio::test(flavor = "multi_thread")]
async fn smtp_stopped_then_back() {
    let _x = exclusive().await;
    let tag = "smtp-down";
    let w = world(tag, Mode::IdleStarttls);
    let db = w.dir.join("secmail.db");
    let mut d = start_daemon(&w, Mode::IdleStarttls).await;
    let pid = d.pid();
    let warns_before = warnings(&d.log()).len();

    harness("stop-postfix");
    let down = Instant::now();
    for i in 1..=3 {
        imap_append(&w.security, "INBOX", &a_report(&w, &w.reporter, &format!("SMTP outage report {i}"))).await;
    }
    wait_or_log(&d, "three cases while Postfix is down", Duration::from_secs(60), || async {
        (cases_json(&w.config, true).len() == 3).then_some(())
    })
    .await;
    wait_log(&d, "SMTP server unreachable", Duration::from_secs(30)).await;
    wait_folder(&d, &w.security, "secmail/processed", 3, Duration::from_secs(30)).await;

    // The deliberate outage; the daemon probes meanwhile (1, 2, 4, 8 s).
    tokio::time::sleep(SMTP_OUTAGE.saturating_sub(down.elapsed())).await;
    let rows = outbox(&db);
    assert_eq!(rows.len(), 6, "3 acks and 3 team notices queued: {rows:#?}");
    assert!(rows.iter().all(|r| r.sent_at.is_none() && r.failed_at.is_none()), "all waiting: {rows:#?}");
    assert!(rows.iter().all(|r| r.attempts == 0), "waiting for an unreachable server spends no attempts: {rows:#?}");
    assert_eq!(rows.iter().filter(|r| r.kind == "ack").count(), 3, "{rows:#?}");
    assert_logged(&d, "SMTP server unreachable", 1);
    assert!(inbox(&w.reporter).await.is_empty());

    harness("start-postfix");
    let up = Instant::now();
    println!("[measure] {tag}: Postfix down for {:?}", up - down);
    wait_inbox(&d, &w.reporter, 1, RECOVERY_TIMEOUT, "the first ack after Postfix came back").await;
    println!("[measure] {tag}: recovery {:?}", up.elapsed());
    let acks = wait_inbox(&d, &w.reporter, 3, RECOVERY_TIMEOUT, "all three acks").await;
    println!("[measure] {tag}: all 3 acks {:?} after Postfix came back", up.elapsed());
    let mut subjects: Vec<String> = acks.iter().map(|a| header(a, "Subject")).collect();
    subjects.sort();
    assert_eq!(subjects.len(), 3);
    for (i, s) in subjects.iter().enumerate() {
        assert!(s.ends_with(&format!("Re: SMTP outage report {}", i + 1)), "{subjects:?}");
    }
    wait_inbox(&d, &w.member, 3, RECOVERY_TIMEOUT, "the three team notices").await;

    let rows = wait_or_log(&d, "every outbox row marked sent", Duration::from_secs(30), || async {
        let rows = outbox(&db);
        rows.iter().all(|r| r.sent_at.is_some()).then_some(rows)
    })
    .await;
    assert!(rows.iter().all(|r| r.failed_at.is_none()), "{rows:#?}");
    let acks_sent: Vec<_> = rows.iter().filter(|r| r.kind == "ack").map(|r| ts(r.sent_at.as_deref().unwrap())).collect();
    let notices_sent: Vec<_> = rows.iter().filter(|r| r.kind != "ack").map(|r| ts(r.sent_at.as_deref().unwrap())).collect();
    let last_ack = *acks_sent.iter().max().unwrap();
    let first_notice = *notices_sent.iter().min().unwrap();

    assert_alive(&mut d, pid);
    assert_logged(&d, "SMTP server unreachable", 1);
    assert_logged(&d, "SMTP server reachable again after", 1);
    let log = d.log();
    let warns = warnings(&log);
    assert_eq!(warns.len() - warns_before, 1, "one warning for the whole outage, found:\n{}", warns.join("\n"));
    assert!(d.stop().success(), "clean exit; log:\n{}", d.log());
    let log = d.log();
    let sends: Vec<&str> = log.lines().filter(|l| l.contains("mail sent") || l.contains("SMTP server")).collect();
    let order: Vec<String> = {
        let mut r: Vec<&OutRow> = rows.iter().collect();
        r.sort_by_key(|r| ts(r.sent_at.as_deref().unwrap()));
        r.iter().map(|r| format!("{} {} case {}", r.sent_at.as_deref().unwrap(), r.kind, r.case_id.unwrap_or(0))).collect()
    };
    assert!(
        last_ack <= first_notice,
        "every ack is sent before every team notice; sent_at order:\n{}\ndaemon log:\n{}",
        order.join("\n"),
        sends.join("\n")
    );
}

// ---------------------------------------------------------------- 3. SMTP 4xx, 5xx

/// The harness's submission port whose recipient policy tests change at
/// runtime (`servers.sh`: policy port, `recipient_access`, `reload-postfix`).
const POLICY_PORT: u16 = 14588;

/// A line of Postfix's runtime recipient access table (`servers.sh`) for one
/// address, removed again (and Postfix reloaded) when dropped.
struct AccessRule {
    path: PathBuf,
    pattern: String,
}

impl AccessRule {
    fn new(addr: &str) -> AccessRule {
        let path = servers().dir.join("postfix/recipient_access");
        assert!(path.exists(), "{} missing: servers.sh too old?", path.display());
        let escaped: String = addr
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '@' || c == '-' || c == '_' { c.to_string() } else { format!("\\{c}") })
            .collect();
        AccessRule { path, pattern: format!("/^{escaped}$/") }
    }

    /// Answer `reply` (e.g. `450 4.7.1 try later`) for the address, from the
    /// next SMTP connection on.
    fn set(&self, reply: Option<&str>) {
        let text = fs::read_to_string(&self.path).expect("read recipient_access");
        let mut lines: Vec<String> = text.lines().filter(|l| !l.starts_with(&self.pattern)).map(str::to_string).collect();
        if let Some(reply) = reply {
            lines.push(format!("{} {reply}", self.pattern));
        }
        let tmp = self.path.with_extension("tmp");
        fs::write(&tmp, lines.join("\n") + "\n").expect("write recipient_access");
        fs::rename(&tmp, &self.path).expect("install recipient_access");
        harness("reload-postfix");
    }
}

impl Drop for AccessRule {
    fn drop(&mut self) {
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.set(None)));
        if res.is_err() && !std::thread::panicking() {
            panic!("could not remove the recipient access rule {}", self.pattern);
        }
    }
}

/// The server defers the ack (450), then refuses it for good (550): the first
/// answer is retried 30 s later, the second ends the mail with a `send-failed`
/// event on the case.
#[tokio::test(flavor = "multi_thread")]
async fn smtp_4xx_then_5xx() {
    let _x = exclusive().await;
    let tag = "smtp-4xx-5xx";
    let w = world(tag, Mode::IdleStarttls);
    // secmail sends through the policy port.
    let text = fs::read_to_string(&w.config).unwrap();
    let submission = format!("port = {}\n", servers().submission_port);
    assert_eq!(count(&text, &submission), 1, "{text}");
    fs::write(&w.config, text.replace(&submission, &format!("port = {POLICY_PORT}\n"))).unwrap();
    let rule = AccessRule::new(&w.reporter);
    rule.set(Some("450 4.7.1 try later"));
    let mut d = start_daemon(&w, Mode::IdleStarttls).await;
    let pid = d.pid();

    smtp_send(&w.reporter, &[&w.security], &a_report(&w, &w.reporter, "Refused ack")).await;
    wait_log(&d, "send deferred by the server", ACK_TIMEOUT).await;
    let deferred = Instant::now();
    // The team notice goes out meanwhile (its session must not be the one
    // reload-postfix ends).
    wait_inbox(&d, &w.member, 1, ACK_TIMEOUT, "the team notice").await;
    assert!(inbox(&w.reporter).await.is_empty(), "the deferred ack was not delivered");
    rule.set(Some("550 5.1.1 no such user"));

    let case = wait_or_log(&d, "send-failed on SEC-1", Duration::from_secs(75), || async {
        let c = try_case_json(&w.config, "SEC-1")?;
        event_kinds(&c).iter().any(|k| k == "send-failed").then_some(c)
    })
    .await;
    println!("[measure] {tag}: 550 recorded {:?} after the 450", deferred.elapsed());
    let failed = case["events"].as_array().unwrap().iter().find(|e| e["kind"] == "send-failed").unwrap();
    assert!(failed["detail"].as_str().unwrap().contains("no such user"), "{case:#}");
    assert!(!event_kinds(&case).iter().any(|k| k == "ack-sent"), "{case:#}");
    wait_log(&d, "mail rejected permanently", Duration::from_secs(10)).await;

    let rows = outbox(&w.dir.join("secmail.db"));
    let ack = rows.iter().find(|r| r.kind == "ack").expect("the ack row");
    assert!(ack.failed_at.is_some() && ack.sent_at.is_none(), "{ack:#?}");
    assert!(ack.last_error.as_deref().unwrap_or("").contains("no such user"), "{ack:#?}");
    assert_eq!(ack.attempts, 2, "the 450, then the 550: {ack:#?}");
    assert!(inbox(&w.reporter).await.is_empty(), "no ack reached the refused reporter");
    assert_eq!(inbox(&w.member).await.len(), 1, "one team notice");
    drop(rule);

    assert_alive(&mut d, pid);
    assert_logged(&d, "send deferred by the server", 1);
    assert_logged(&d, "mail rejected permanently", 1);
    assert_logged(&d, "SMTP server unreachable", 0);
    assert!(d.stop().success(), "clean exit; log:\n{}", d.log());
}

// ---------------------------------------------------------------- 4. backup

/// Size of the ballast that makes the backup long (1 GiB, and as much again
/// for the copy, in the temp dir). 150 MB copies in about 1 s
/// on a developer machine, less than an ack's round trip: the backup would be
/// over before the reports are in.
const BALLAST_MB: i64 = 1024;

/// `secmail backup` of a big database runs while reports arrive: their acks
/// are not held up, the backup completes, nothing reports "database is locked".
#[tokio::test(flavor = "multi_thread")]
async fn long_backup_does_not_block_intake() {
    let _x = exclusive().await;
    let tag = "backup";
    let w = world(tag, Mode::IdleStarttls);
    let db = w.dir.join("secmail.db");
    // A first run creates the schema; then the database is made big.
    let mut d = start_daemon(&w, Mode::IdleStarttls).await;
    assert!(d.stop().success());
    drop(d);
    {
        let mut c = rusqlite::Connection::open(&db).unwrap();
        // Written once (no WAL copy to checkpoint), then back to WAL as secmail wants it.
        let mode: String = c.query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "delete");
        c.execute_batch("CREATE TABLE test_ballast (id INTEGER PRIMARY KEY, b BLOB NOT NULL)").unwrap();
        let tx = c.transaction().unwrap();
        for _ in 0..BALLAST_MB {
            tx.execute("INSERT INTO test_ballast (b) VALUES (randomblob(1048576))", []).unwrap();
        }
        tx.commit().unwrap();
        let mode: String = c.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
    }
    let size = fs::metadata(&db).unwrap().len();
    assert!(size >= (BALLAST_MB as u64) << 20, "database is {size} bytes");

    let log_path = w.dir.join("secmail.log");
    fs::remove_file(&log_path).unwrap();
    let mut d = start_daemon(&w, Mode::IdleStarttls).await;
    let pid = d.pid();

    let dest = w.dir.join("backup.db");
    let backup_out = w.dir.join("backup.out");
    let backup_err = w.dir.join("backup.err");
    let started = Instant::now();
    let mut backup = Command::new(env!("CARGO_BIN_EXE_secmail"))
        .arg("--config")
        .arg(&w.config)
        .arg("backup")
        .arg(&dest)
        .env_remove("SECMAIL_CONFIG")
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .stdout(fs::File::create(&backup_out).unwrap())
        .stderr(fs::File::create(&backup_err).unwrap())
        .spawn()
        .expect("spawn secmail backup");
    // Wait until the copy is under way.
    wait_or_log(&d, "the backup to start writing", Duration::from_secs(30), || async {
        fs::metadata(&dest).is_ok_and(|m| m.len() > 0).then_some(())
    })
    .await;

    let reporters: Vec<String> = (0..3).map(|i| unique_addr(&format!("reporter-{tag}{i}"))).collect();
    let mut sent = Vec::new();
    for (i, r) in reporters.iter().enumerate() {
        smtp_send(r, &[&w.security], &a_report(&w, r, &format!("Report {i} during the backup"))).await;
        sent.push(Instant::now());
    }
    let running_after_sending = backup.try_wait().unwrap().is_none();
    let mut delays: Vec<Option<Duration>> = vec![None; 3];
    let deadline = Instant::now() + ACK_TIMEOUT;
    while delays.iter().any(Option::is_none) {
        for (i, r) in reporters.iter().enumerate() {
            if delays[i].is_none() && !inbox(r).await.is_empty() {
                delays[i] = Some(sent[i].elapsed());
            }
        }
        assert!(Instant::now() < deadline, "acks missing after {ACK_TIMEOUT:?} ({delays:?}); log:\n{}", log_tail(&d, 60));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let backup_running_at_acks = backup.try_wait().unwrap().is_none();
    let deadline = Instant::now() + Duration::from_secs(600);
    let status = loop {
        if let Some(status) = backup.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = backup.kill();
            panic!("the backup did not finish within 600 s; log:\n{}", log_tail(&d, 60));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let took = started.elapsed();
    let err = fs::read_to_string(&backup_err).unwrap_or_default();
    for (i, delay) in delays.iter().enumerate() {
        println!("[measure] {tag}: ack {i} delay {:?}", delay.unwrap());
    }
    println!(
        "[measure] {tag}: backup of {} MB took {took:?} (running after the reports were sent: {running_after_sending}, when the acks were in: {backup_running_at_acks})",
        size >> 20
    );
    assert!(status.success(), "backup failed ({status}): {err}");
    assert!(!err.contains("database is locked"), "backup stderr: {err}");
    assert!(
        running_after_sending && backup_running_at_acks,
        "the backup ({took:?}) ended before the acks were out: nothing was tested; raise BALLAST_MB"
    );
    for (i, delay) in delays.iter().enumerate() {
        assert!(delay.unwrap() < Duration::from_secs(20), "ack {i} took {:?} during the backup", delay.unwrap());
    }
    let c = db_read_only(&dest);
    let check: String = c.query_row("PRAGMA quick_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
    let ballast: i64 = c.query_row("SELECT count(*) FROM test_ballast", [], |r| r.get(0)).unwrap();
    assert_eq!(ballast, BALLAST_MB);

    wait_or_log(&d, "three cases", Duration::from_secs(30), || async { (cases_json(&w.config, true).len() == 3).then_some(()) }).await;
    assert_alive(&mut d, pid);
    let log = d.log();
    assert!(!log.contains("database is locked"), "daemon log:\n{log}");
    assert!(!log.contains("the database refuses writes"), "daemon log:\n{log}");
    assert!(d.stop().success(), "clean exit; log:\n{}", d.log());
}

// ---------------------------------------------------------------- 5. disk full

/// A tmpfs mounted for one test, unmounted when dropped (even on panic).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(path)
            .output()
            .expect("run mount");
        assert!(out.status.success(), "mount tmpfs (needs root): {}", String::from_utf8_lossy(&out.stderr));
        Tmpfs(path.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount").arg(&self.0).status().is_ok_and(|s| s.success());
        if !ok {
            // Still busy (a process holding a file): detach it anyway.
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// Writes a file until the filesystem has no byte left (ENOSPC).
fn fill(path: &Path) -> u64 {
    let mut f = fs::File::create(path).unwrap();
    let mut written = 0u64;
    for chunk in [1 << 20, 4096, 512, 1] {
        let buf = vec![0x5au8; chunk];
        loop {
            match f.write(&buf) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(28) => break,
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
    }
    f.sync_all().ok();
    written
}

/// The database's filesystem fills up: new reports stay in the INBOX (nothing
/// is moved, no case) and the outage is logged once; space comes back and they
/// are processed by the same process, with their acks; nothing is lost.
#[tokio::test(flavor = "multi_thread")]
async fn disk_full_for_the_database() {
    let _x = exclusive().await;
    let tag = "disk-full";
    let w = world(tag, Mode::IdleStarttls);
    let mnt = w.dir.join("db");
    let _tmpfs = Tmpfs::mount(&mnt, "8m");
    let text = fs::read_to_string(&w.config).unwrap();
    assert!(text.contains("path = \"secmail.db\""));
    fs::write(&w.config, text.replace("path = \"secmail.db\"", "path = \"db/secmail.db\"")).unwrap();
    let mut d = start_daemon(&w, Mode::IdleStarttls).await;
    let pid = d.pid();
    let warns_before = warnings(&d.log()).len();
    assert!(mnt.join("secmail.db").exists(), "the database lives on the tmpfs");

    smtp_send(&w.reporter, &[&w.security], &a_report(&w, &w.reporter, "Report 1 before the disk fills")).await;
    wait_inbox(&d, &w.reporter, 1, ACK_TIMEOUT, "the first ack").await;
    wait_inbox(&d, &w.member, 1, ACK_TIMEOUT, "the first team notice").await;
    wait_folder(&d, &w.security, "secmail/processed", 1, ACK_TIMEOUT).await;

    let filler = mnt.join("filler");
    let filled = fill(&filler);
    println!("[measure] {tag}: filler {filled} bytes");
    for i in 2..=3 {
        smtp_send(&w.reporter, &[&w.security], &a_report(&w, &w.reporter, &format!("Report {i} on a full disk"))).await;
    }
    wait_log(&d, "the database refuses writes", ACK_TIMEOUT).await;
    let down = Instant::now();
    // The deliberate outage.
    tokio::time::sleep(DB_OUTAGE).await;
    assert_eq!(inbox(&w.security).await.len(), 2, "both reports still in the INBOX");
    assert_eq!(common::imap_fetch_all(&w.security, "secmail/processed").await.len(), 1, "nothing moved");
    assert_eq!(cases_json(&w.config, true).len(), 1, "no case for them yet");
    assert_eq!(inbox(&w.reporter).await.len(), 1, "no ack for them yet");
    assert_logged(&d, "the database refuses writes", 1);
    assert_logged(&d, "the database takes writes again", 0);
    let warns_during = warnings(&d.log()).len() - warns_before;

    fs::remove_file(&filler).unwrap();
    let up = Instant::now();
    println!("[measure] {tag}: database refused writes for {:?}", up - down);
    wait_inbox(&d, &w.reporter, 2, RECOVERY_TIMEOUT, "an ack once the disk has room").await;
    println!("[measure] {tag}: recovery {:?}", up.elapsed());
    wait_inbox(&d, &w.reporter, 3, RECOVERY_TIMEOUT, "all three acks").await;
    wait_inbox(&d, &w.member, 3, RECOVERY_TIMEOUT, "all three team notices").await;
    wait_folder(&d, &w.security, "INBOX", 0, RECOVERY_TIMEOUT).await;
    wait_folder(&d, &w.security, "secmail/processed", 3, RECOVERY_TIMEOUT).await;
    let cases = wait_or_log(&d, "three acknowledged cases", Duration::from_secs(30), || async {
        let c = cases_json(&w.config, true);
        (c.len() == 3 && c.iter().all(|c| c["acknowledged_at"].is_string())).then_some(c)
    })
    .await;
    let mut subjects: Vec<&str> = cases.iter().map(|c| c["subject"].as_str().unwrap()).collect();
    subjects.sort();
    assert_eq!(subjects, ["Report 1 before the disk fills", "Report 2 on a full disk", "Report 3 on a full disk"]);

    assert_alive(&mut d, pid);
    assert_logged(&d, "the database refuses writes", 1);
    assert_logged(&d, "the database takes writes again", 1);
    let log = d.log();
    let warns = warnings(&log);
    assert_eq!(
        warns.len() - warns_before,
        1,
        "one warning for the whole outage ({warns_during} by its end), found:\n{}",
        warns.join("\n")
    );
    assert!(d.stop().success(), "clean exit; log:\n{}", d.log());
}

// ---------------------------------------------------------------- 6. alerts

/// `secmail status`'s exit code (0 healthy, 1 degraded, 2 down).
fn status_code(config: &Path) -> i32 {
    let out = common::secmail(config, &["status", "--json"]);
    out.status.code().unwrap_or(-1)
}

/// The Subjects of the mail in `user`'s INBOX.
async fn subjects(user: &str) -> Vec<String> {
    inbox(user).await.iter().map(|m| header(m, "Subject")).collect()
}

/// Lines written by `health.alert_command` (one `kind` per run).
fn alert_runs(path: &Path) -> Vec<String> {
    fs::read_to_string(path).unwrap_or_default().lines().map(str::to_string).collect()
}

/// The IMAP server is away longer than `health.source_down_after`: the
/// coordinator gets one alert (however long it lasts) and, once the mailbox
/// can be read again, one recovery note; `health.alert_command` runs for
/// each; `secmail status` says "down" (exit 2) meanwhile and healthy after.
#[tokio::test(flavor = "multi_thread")]
async fn mailbox_unreadable_alerts_once_then_notes_recovery() {
    let _x = exclusive().await;
    let tag = "source-down-alert";
    let probe = tempfile::tempdir().unwrap();
    let runs = probe.path().join("alerts.log");
    let extra = format!(
        "[health]\nsource_down_after = \"10s\"\ncanary_every = \"0\"\nalert_command = \"echo \\\"$SECMAIL_ALERT_KIND\\\" >> {}\"\n",
        runs.display()
    );
    let w = world_with(tag, Mode::IdleStarttls, &extra);
    let mut d = start_daemon(&w, Mode::IdleStarttls).await;
    let pid = d.pid();
    wait_or_log(&d, "status healthy", Duration::from_secs(30), || async { (status_code(&w.config) == 0).then_some(()) }).await;

    harness("stop-dovecot");
    let down = Instant::now();
    wait_log(&d, "IMAP: connection lost or refused", Duration::from_secs(30)).await;
    println!("[measure] {tag}: outage seen {:?} after Dovecot stopped", down.elapsed());
    let db = w.dir.join("secmail.db");
    wait_or_log(&d, "the source-down alert in the outbox", Duration::from_secs(60), || async {
        outbox(&db).iter().any(|r| r.kind == "alert").then_some(())
    })
    .await;
    println!("[measure] {tag}: alert queued {:?} after Dovecot stopped (source_down_after 10s)", down.elapsed());
    assert!(down.elapsed() >= Duration::from_secs(10), "not before source_down_after");
    assert_eq!(status_code(&w.config), 2, "status says down while the mailbox cannot be read");
    // The outage goes on for three more heartbeats (every 5 s here): still
    // one alert.
    tokio::time::sleep(Duration::from_secs(16)).await;
    let alerts: Vec<OutRow> = outbox(&db).into_iter().filter(|r| r.kind == "alert").collect();
    assert_eq!(alerts.len(), 1, "one alert per outage: {alerts:#?}");
    assert!(alerts[0].recipients.contains(&w.member), "to the coordinator: {alerts:#?}");

    harness("start-dovecot");
    wait_log(&d, "IMAP: connection restored after", RECOVERY_TIMEOUT).await;
    // The alert waited in Postfix's queue while Dovecot was away.
    harness("flush-postfix");
    let got = wait_or_log(&d, "the alert and the recovery note in the coordinator's mailbox", RECOVERY_TIMEOUT, || async {
        let s = subjects(&w.member).await;
        (s.len() >= 2).then_some(s)
    })
    .await;
    let alert = format!("secmail ALERT: {} cannot be read", w.security);
    let note = format!("secmail: {} can be read again", w.security);
    assert_eq!(got.iter().filter(|s| **s == alert).count(), 1, "{got:#?}");
    assert_eq!(got.iter().filter(|s| **s == note).count(), 1, "{got:#?}");
    assert_eq!(got.len(), 2, "nothing else: {got:#?}");
    let text = String::from_utf8_lossy(&inbox(&w.member).await.into_iter().find(|m| header(m, "Subject") == alert).unwrap()).to_string();
    assert!(text.contains("Mail waits on the server"), "the alert says what it means:\n{text}");
    wait_or_log(&d, "alert_command run for the alert and the recovery", Duration::from_secs(30), || async {
        (alert_runs(&runs) == ["alert", "recovered"]).then_some(())
    })
    .await;
    wait_or_log(&d, "status healthy again", Duration::from_secs(30), || async { (status_code(&w.config) == 0).then_some(()) }).await;

    assert_alive(&mut d, pid);
    assert!(d.stop().success(), "clean exit; log:\n{}", d.log());
}

/// The path back is broken: the MTA accepts mail to security@ and drops it
/// (a `DISCARD` access rule), so the canary never returns: one alert to the
/// coordinator. Once the path is mended, the next canary returns and a note
/// says so.
#[tokio::test(flavor = "multi_thread")]
async fn canary_dropped_at_the_mta_alerts() {
    let _x = exclusive().await;
    let tag = "canary-dropped";
    let w = world(tag, Mode::IdleStarttls);
    let key = common::write_secret(&w.dir, "team.sec.asc", &fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/pgp/team-cv25519.sec.asc")).unwrap());
    // secmail sends through the policy port, where the canary is dropped.
    let text = fs::read_to_string(&w.config).unwrap();
    let submission = format!("port = {}\n", servers().submission_port);
    assert_eq!(count(&text, &submission), 1, "{text}");
    let text = text.replace(&submission, &format!("port = {POLICY_PORT}\n"))
        + &format!("\n[openpgp]\nsecret_keys = [\"{}\"]\n\n[health]\ncanary_every = \"15s\"\ncanary_within = \"10s\"\n", key.display());
    fs::write(&w.config, text).unwrap();
    let rule = AccessRule::new(&w.security);
    rule.set(Some("DISCARD dropped by the canary test"));
    let mut d = start_daemon(&w, Mode::IdleStarttls).await;
    let pid = d.pid();

    let want = format!("secmail ALERT: the canary to {} did not come back", w.security);
    let got = wait_inbox(&d, &w.member, 1, Duration::from_secs(90), "the canary alert").await;
    assert_eq!(header(&got[0], "Subject"), want);
    let out = common::secmail(&w.config, &["status", "--json"]);
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["canary"]["last_result"], "missed", "{st:#}");
    assert_eq!(out.status.code(), Some(1), "a missed canary is degraded: {st:#}");
    assert!(common::imap_fetch_all(&w.security, "secmail/processed").await.is_empty(), "no canary arrived");

    rule.set(None);
    let note = format!("secmail: the canary to {} comes back again", w.security);
    let got = wait_or_log(&d, "the recovery note", Duration::from_secs(90), || async {
        let s = subjects(&w.member).await;
        s.contains(&note).then_some(s)
    })
    .await;
    assert_eq!(got.iter().filter(|s| **s == want).count(), 1, "one alert per miss: {got:#?}");
    assert!(cases_json(&w.config, true).is_empty(), "canaries open no case");
    drop(rule);
    assert_alive(&mut d, pid);
    assert!(d.stop().success(), "clean exit; log:\n{}", d.log());
}

//! The end-to-end benchmark behind `bash bench/run.sh`: secmail against the
//! real Postfix and Dovecot of `tests/harness/servers.sh`, each figure next to
//! what the mail servers alone do in the same run (on a shared, noisy machine
//! only same-run ratios mean anything).
//!
//! - **ceiling**: N reports submitted over one SMTP connection (TCP_NODELAY)
//!   into security@'s mailbox, timed until a STATUS poll sees all N; and the
//!   MTA's single-message latency, submit → visible by STATUS (1 ms poll);
//! - **drain**: secmail started on that mailbox (70% plain, 20% PGP/MIME to the
//!   Cv25519 team key, 10% spam), timed until the mailbox is empty, every case
//!   is committed and every ack is in its reporter's mailbox;
//! - **latency**: single reports with IDLE, submit → ack visible in the
//!   reporter's mailbox, split into the MTA trips, Dovecot's IDLE
//!   notification delay (seen by a raw idling connection of our own on the
//!   same mailbox) and secmail's own share;
//! - **Maildir latency**: the same without an IMAP server: report file renamed
//!   into `maildir/new/` → ack file in `outbox/` (benches/e2e/maildir.rs);
//! - **memory**: secmail's peak RSS (VmHWM) over the drain, and over one 50 MB
//!   report (peak reset through /proc/PID/clear_refs first).
//!
//! `cargo bench --bench e2e -- --bench [N]` (root: starts the harness). The
//! daemon's log is kept as `target/tmp/bench-secmail.log`; `SECMAIL_BENCH_LOG`
//! sets its `RUST_LOG` (`secmail=debug` times each message's fetch, handling
//! and filing), `SECMAIL_BENCH_PERF=FILE` records a system-wide `perf` profile
//! of the drain. The
//! timer figure comes from `benches/timers.rs`, passed in by bench/run.sh as
//! `--timer TEXT`; `--record FILE --command CMD` appends the row to
//! BENCHMARKS.md. Without `--bench` (`cargo test --benches`) it runs a tiny
//! smoke version so it cannot rot.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/world/mod.rs"]
mod world;
#[path = "e2e/maildir.rs"]
mod maildir;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::extension::ClientId;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use common::{Daemon, servers, unique_addr};
use world::{Mode, World};

/// How often a "visible yet?" STATUS poll asks (the resolution of every
/// latency figure).
const POLL: Duration = Duration::from_millis(1);
/// How often the drain checks for completion (it takes seconds).
const DRAIN_POLL: Duration = Duration::from_millis(50);
/// Reporters the drain's reports come from (acks counted in their mailboxes).
const REPORTERS: usize = 10;
/// Samples of the MTA's single-message latency.
const MTA_SAMPLES: usize = 30;
/// Upper bound for any one phase, so a wedged daemon fails the run.
const PHASE_TIMEOUT: Duration = Duration::from_secs(900);
/// Size of the memory probe's report body.
const BIG_BYTES: usize = 50_000_000;

struct Args {
    n: usize,
    latency: usize,
    big: bool,
    timer: String,
    record: Option<PathBuf>,
    command: String,
}

fn args() -> Args {
    let argv: Vec<String> = std::env::args().collect();
    let bench = argv.iter().any(|a| a == "--bench");
    let value = |name: &str| argv.iter().position(|a| a == name).and_then(|i| argv.get(i + 1)).cloned();
    let n = argv.iter().filter_map(|a| a.parse::<usize>().ok()).next();
    Args {
        n: n.unwrap_or(if bench { 2000 } else { 20 }),
        latency: if bench { 100 } else { 3 },
        big: bench,
        timer: value("--timer").unwrap_or_else(|| "not measured".into()),
        record: value("--record").map(PathBuf::from),
        command: value("--command").unwrap_or_else(|| "cargo bench --bench e2e".into()),
    }
}

// ----- clients: SMTP over one kept connection, IMAP STATUS, raw IDLE -----

/// One SMTP connection to the harness Postfix (14025, no auth), kept for
/// every message, with Nagle off (the body and the final dot are separate
/// writes in lettre).
struct Smtp(AsyncSmtpConnection);

impl Smtp {
    async fn connect() -> Smtp {
        let tcp = TcpStream::connect(("127.0.0.1", servers().smtp_port)).await.expect("connect SMTP");
        tcp.set_nodelay(true).expect("TCP_NODELAY");
        let hello = ClientId::Domain("bench.example.test".into());
        Smtp(AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &hello).await.expect("SMTP greeting"))
    }

    async fn send(&mut self, from: &str, to: &str, raw: &[u8]) {
        let env = Envelope::new(Some(from.parse().unwrap()), vec![to.parse().unwrap()]).unwrap();
        self.0.send(&env, raw).await.unwrap_or_else(|e| panic!("SMTP send to {to}: {e}"));
    }
}

type Imap = async_imap::Session<TcpStream>;

/// A plain IMAP session (cleartext login is allowed on loopback).
async fn imap(user: &str) -> Imap {
    let tcp = TcpStream::connect(("127.0.0.1", servers().imap_port)).await.expect("connect IMAP");
    tcp.set_nodelay(true).expect("TCP_NODELAY");
    let mut client = async_imap::Client::new(tcp);
    client.read_response().await.expect("IMAP greeting");
    client.login(user, servers().password).await.map_err(|(e, _)| e).expect("IMAP login")
}

async fn count(s: &mut Imap) -> u32 {
    s.status("INBOX", "(MESSAGES)").await.expect("STATUS").exists
}

/// Polls STATUS every [`POLL`] until INBOX holds at least `want`; when it did.
async fn wait_count(s: &mut Imap, want: u32) -> Instant {
    let deadline = Instant::now() + PHASE_TIMEOUT;
    loop {
        if count(s).await >= want {
            return Instant::now();
        }
        assert!(Instant::now() < deadline, "INBOX never reached {want} messages");
        tokio::time::sleep(POLL).await;
    }
}

/// A raw IMAP connection idling on `user`'s INBOX: sends the instant of
/// every `* n EXISTS` the server pushes (what an IDLE client such as secmail
/// can know, and when).
async fn idler(user: &str) -> mpsc::UnboundedReceiver<Instant> {
    let tcp = TcpStream::connect(("127.0.0.1", servers().imap_port)).await.expect("connect IMAP");
    tcp.set_nodelay(true).unwrap();
    let (r, mut w) = tcp.into_split();
    let mut lines = BufReader::new(r).lines();
    let mut expect = async |tag: &str| {
        while let Some(l) = lines.next_line().await.expect("IMAP read") {
            if l.starts_with(tag) {
                assert!(tag == "+" || l.contains(" OK"), "IMAP: {l}");
                return;
            }
        }
        panic!("IMAP connection closed");
    };
    expect("* OK").await;
    w.write_all(format!("a LOGIN \"{user}\" \"{}\"\r\nb SELECT INBOX\r\nc IDLE\r\n", servers().password).as_bytes())
        .await
        .unwrap();
    expect("a ").await;
    expect("b ").await;
    expect("+").await;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let _w = w;
        while let Ok(Some(l)) = lines.next_line().await {
            if l.starts_with("* ") && l.ends_with(" EXISTS") && tx.send(Instant::now()).is_err() {
                return;
            }
        }
    });
    rx
}

// ----- the reports -----

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Plain,
    Pgp,
    Spam,
}

/// 70% plain, 20% PGP/MIME, 10% spam, interleaved.
fn kind(i: usize) -> Kind {
    match i % 10 {
        0 => Kind::Spam,
        1 | 2 => Kind::Pgp,
        _ => Kind::Plain,
    }
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pgp").join(name)
}

/// Builds the raw reports; the PGP/MIME one is the signed-and-encrypted
/// fixture (to the Cv25519 team key) under new outer headers.
struct Reports {
    pgp: String,
}

impl Reports {
    fn new() -> Reports {
        let text = std::fs::read_to_string(fixture("pgpmime-signed-encrypted.eml")).unwrap().replace("\r\n", "\n");
        let body = text.split_once("\n\n").expect("fixture has a body").1.replace('\n', "\r\n");
        let ctype = text.lines().find(|l| l.starts_with("Content-Type:")).unwrap().to_string();
        Reports { pgp: format!("MIME-Version: 1.0\r\n{ctype}\r\n\r\n{body}") }
    }

    fn report(&self, i: usize, tag: &str, from: &str, to: &str, k: Kind) -> Vec<u8> {
        let head = format!(
            "From: Reporter {i} <{from}>\r\nTo: {to}\r\nMessage-ID: <{tag}-{i}-{}@bench.example.test>\r\n\
Date: Thu, 03 Dec 2026 10:00:00 +0000\r\n",
            std::process::id()
        );
        let body = "Steps to reproduce: run the parser on the attached file.\r\n".repeat(20);
        match k {
            Kind::Plain => format!(
                "{head}Subject: {tag} {i}: heap overflow in the parser\r\nMIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\n{body}"
            ),
            Kind::Spam => format!(
                "{head}Subject: {tag} {i}: SEO services for your website\r\nX-Spam-Flag: YES\r\n\
MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nBuy links.\r\n"
            ),
            Kind::Pgp => format!("{head}Subject: {tag} {i}: signed and encrypted report\r\n{}", self.pgp),
        }
        .into_bytes()
    }
}

// ----- the daemon -----

/// A harness world (tests/world: IMAP STARTTLS with IDLE, submission with
/// STARTTLS) with the Cv25519 team key, a member to notify, and no limit on
/// acks per sender.
fn world() -> World {
    let w = world::world("bench", Mode::IdleStarttls);
    let key = w.dir.join("team.sec.asc");
    std::fs::copy(fixture("team-cv25519.sec.asc"), &key).unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let extra = format!(
        "[[team.member]]\naddress = \"{member}\"\nkey_file = \"{member_key}\"\n\
[openpgp]\nsecret_keys = [\"{key}\"]\nreporter_keyring = \"{ring}\"\n\
[limits]\nauto_replies_per_sender_per_hour = 1000000\n",
        member = w.member,
        member_key = fixture("stranger.pub.asc").display(),
        key = key.display(),
        ring = fixture("reporters.pgp").display(),
    );
    let mut text = std::fs::read_to_string(&w.config).unwrap();
    text.push_str(&extra);
    std::fs::write(&w.config, text).unwrap();
    w
}

fn cases(config: &Path) -> i64 {
    let db = config.with_file_name("secmail.db");
    let Ok(c) = rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY) else {
        return 0;
    };
    c.query_row("SELECT count(*) FROM cases", [], |r| r.get(0)).unwrap_or(0)
}

fn vm_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

// ----- the phases -----

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

struct Ceiling {
    rate: f64,
    secs: f64,
    /// Submit → visible, ms, sorted.
    trip: Vec<f64>,
    /// Submit → an idling client is told, ms, sorted.
    told: Vec<f64>,
    /// Share of all cores' time not idle over the bulk delivery.
    busy: f64,
}

/// The MTA alone: single-message trips first, then the N reports in bulk
/// over one connection into security@'s mailbox (where the drain finds them).
async fn ceiling(smtp: &mut Smtp, reports: &[Vec<u8>], from: &[String], security: &str) -> Ceiling {
    let probe = unique_addr("bench-probe");
    let mut s = imap(&probe).await;
    let mut idle = idler(&probe).await;
    let (mut trip, mut told) = (Vec::new(), Vec::new());
    for i in 0..MTA_SAMPLES {
        let t0 = Instant::now();
        smtp.send(&from[0], &probe, format!("Subject: probe {i}\r\n\r\nx\r\n").as_bytes()).await;
        trip.push(ms(wait_count(&mut s, i as u32 + 1).await - t0));
        told.push(ms(idle.recv().await.expect("idler alive") - t0));
    }
    let mut s = imap(security).await;
    let j0 = machine_jiffies();
    let t0 = Instant::now();
    for (i, raw) in reports.iter().enumerate() {
        smtp.send(&from[i % REPORTERS], security, raw).await;
    }
    let mut done = t0;
    let deadline = t0 + PHASE_TIMEOUT;
    while count(&mut s).await < reports.len() as u32 {
        assert!(Instant::now() < deadline, "Postfix never delivered the {} reports", reports.len());
        tokio::time::sleep(POLL).await;
        done = Instant::now();
    }
    let secs = (done - t0).as_secs_f64();
    let busy = busy_since(j0);
    Ceiling { rate: reports.len() as f64 / secs, secs, trip: sorted(trip), told: sorted(told), busy }
}

struct Drain {
    rate: f64,
    secs: f64,
    hwm_kib: u64,
    /// Share of all cores' time not idle over the drain (the mail servers,
    /// secmail, and whatever else runs on the machine).
    busy: f64,
    /// secmail's own CPU time (user + system) per report.
    cpu_ms_per_report: f64,
}

/// (busy, total) jiffies of all cores, from /proc/stat.
fn machine_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = stat.lines().next().unwrap_or("").split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// Share of all cores' time not idle since `j0` ([`machine_jiffies`]).
fn busy_since(j0: (u64, u64)) -> f64 {
    let j1 = machine_jiffies();
    (j1.0 - j0.0) as f64 / (j1.1 - j0.1).max(1) as f64
}

/// A process's user + system CPU time, ms (clock ticks of 10 ms).
fn cpu_ms(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    // After the command name: state (field 3), ppid, ..., utime (14), stime (15).
    let f: Vec<u64> = after.split_whitespace().skip(1).map(|x| x.parse::<i64>().unwrap_or(0) as u64).collect();
    (f.get(10).copied().unwrap_or(0) + f.get(11).copied().unwrap_or(0)) as f64 * 10.0
}

/// secmail started on the full mailbox; done when the mailbox is empty, every
/// case committed and every ack in its reporter's mailbox.
async fn drain(w: &World, daemon_log: &Path, reporters: &[String], acks_due: &[u32], n: usize) -> (Daemon, Drain) {
    let cases_due: i64 = acks_due.iter().map(|&a| a as i64).sum();
    let mut boxes = Vec::new();
    for r in reporters {
        boxes.push(imap(r).await);
    }
    let mut sec = imap(&w.security).await;
    let j0 = machine_jiffies();
    let t0 = Instant::now();
    let rust_log = std::env::var("SECMAIL_BENCH_LOG").unwrap_or_else(|_| "secmail=info".into());
    let d = Daemon::start_logging(&w.config, daemon_log, &rust_log);
    let pid = d.pid().unwrap();
    // A system-wide CPU profile of the drain, on request (perf with a software clock).
    let perf = std::env::var_os("SECMAIL_BENCH_PERF").map(|out| {
        std::process::Command::new("perf")
            .args(["record", "-a", "-g", "-e", "cpu-clock", "-o"])
            .arg(out)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("perf record")
    });
    let deadline = t0 + PHASE_TIMEOUT;
    let mut hwm = 0;
    loop {
        hwm = hwm.max(vm_kib(pid, "VmHWM:"));
        if count(&mut sec).await == 0 && cases(&w.config) >= cases_due {
            let mut all = true;
            for (b, due) in boxes.iter_mut().zip(acks_due) {
                all &= count(b).await >= *due;
            }
            if all {
                break;
            }
        }
        assert!(Instant::now() < deadline, "drain did not finish; log: {}", daemon_log.display());
        tokio::time::sleep(DRAIN_POLL).await;
    }
    let secs = t0.elapsed().as_secs_f64();
    let busy = busy_since(j0);
    if let Some(mut p) = perf {
        let _ = std::process::Command::new("kill").args(["-INT", &p.id().to_string()]).status();
        let _ = p.wait();
    }
    let cpu_ms_per_report = cpu_ms(pid) / n as f64;
    (d, Drain { busy, cpu_ms_per_report, rate: n as f64 / secs, secs, hwm_kib: hwm.max(vm_kib(pid, "VmHWM:")) })
}

/// Submit → ack visible in the reporter's mailbox, ms, sorted.
async fn latency(smtp: &mut Smtp, w: &World, reports: &Reports, samples: usize) -> Vec<f64> {
    let reporter = unique_addr("bench-lat");
    let mut inbox = imap(&reporter).await;
    let mut total = Vec::new();
    for i in 0..samples {
        let raw = reports.report(i, "latency", &reporter, &w.security, Kind::Plain);
        let t0 = Instant::now();
        smtp.send(&reporter, &w.security, &raw).await;
        total.push(ms(wait_count(&mut inbox, i as u32 + 1).await - t0));
        // Let the team notice go out before the next report.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sorted(total)
}

/// Peak RSS (KiB) while secmail takes one 50 MB report (peak reset first).
async fn big_message(smtp: &mut Smtp, w: &World, pid: u32) -> u64 {
    let reporter = unique_addr("bench-big");
    let mut inbox = imap(&reporter).await;
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
    let line = "A".repeat(76) + "\r\n";
    let body = line.repeat(BIG_BYTES / line.len());
    let raw = format!(
        "From: <{reporter}>\r\nTo: {sec}\r\nSubject: Crash dump attached\r\nMessage-ID: <big-{}@bench.example.test>\r\n\
MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n{body}",
        std::process::id(),
        sec = w.security
    );
    smtp.send(&reporter, &w.security, raw.as_bytes()).await;
    drop(raw);
    wait_count(&mut inbox, 1).await;
    vm_kib(pid, "VmHWM:")
}

// ----- the table -----

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split_whitespace().next().unwrap_or("?");
    format!("{cores} cores, {cpu}; load {load} at start")
}

#[tokio::main]
async fn main() {
    let a = args();
    let machine = machine();
    let w = world();
    let reporters: Vec<String> = (0..REPORTERS).map(|i| unique_addr(&format!("bench-rep{i}"))).collect();
    let reports = Reports::new();
    let raws: Vec<Vec<u8>> =
        (0..a.n).map(|i| reports.report(i, "drain", &reporters[i % REPORTERS], &w.security, kind(i))).collect();
    let mut acks_due = vec![0u32; REPORTERS];
    for i in (0..a.n).filter(|&i| kind(i) != Kind::Spam) {
        acks_due[i % REPORTERS] += 1;
    }

    let mut smtp = Smtp::connect().await;
    let c = ceiling(&mut smtp, &raws, &reporters, &w.security).await;
    let mta = pct(&c.trip, 0.5);
    println!("[bench] ceiling: {} messages in {:.2} s = {:.0}/s; MTA trip p50 {mta:.1} ms", a.n, c.secs, c.rate);

    let log = w.config.with_file_name("secmail.log");
    let (mut daemon, d) = drain(&w, &log, &reporters, &acks_due, a.n).await;
    println!("[bench] drain: {} reports in {:.2} s = {:.0}/s; peak RSS {} KiB", a.n, d.secs, d.rate, d.hwm_kib);
    let total = latency(&mut smtp, &w, &reports, a.latency).await;
    let pid = daemon.pid().unwrap();
    let big = if a.big { Some(big_message(&mut smtp, &w, pid).await) } else { None };
    daemon.stop();
    // The daemon's log outlives the run's temporary directory.
    let kept = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-secmail.log");
    let _ = std::fs::copy(&log, &kept);

    let md = maildir::latency(a.latency.min(50));

    // The servers' share of one report's latency: the report's trip and the
    // IDLE notification (what the probe's idler saw), then the ack's trip.
    let told = pct(&c.told, 0.5);
    let idle_delay = sorted(c.told.iter().zip(&c.trip).map(|(t, m)| t - m).collect());
    let ours = sorted(total.iter().map(|t| t - told - mta).collect());
    let mib = |k: u64| k as f64 / 1024.0;
    let big_text = big.map_or("not measured".into(), |k| format!("{:.1} MiB", mib(k)));
    let rows = [
        (
            "ceiling (Postfix → Dovecot, 1 SMTP connection)",
            format!("{:.0} msg/s ({} in {:.2} s; machine {:.0}% busy)", c.rate, a.n, c.secs, 100.0 * c.busy),
        ),
        ("MTA trip, submit → visible (STATUS, 1 ms poll)", format!("p50 {mta:.1} ms, p99 {:.1} ms", pct(&c.trip, 0.99))),
        ("drain (70% plain, 20% PGP/MIME, 10% spam)", format!("{:.0} msg/s ({} in {:.2} s)", d.rate, a.n, d.secs)),
        ("drain / ceiling", format!("{:.0}% (target ≥ 70%)", 100.0 * d.rate / c.rate)),
        (
            "  CPU during the drain",
            format!("machine {:.0}% busy; secmail {:.2} ms CPU per report", 100.0 * d.busy, d.cpu_ms_per_report),
        ),
        (
            "latency, report submitted → ack visible",
            format!("p50 {:.0} ms, p99 {:.0} ms ({} reports)", pct(&total, 0.5), pct(&total, 0.99), total.len()),
        ),
        ("  MTA trips (report + ack)", format!("2 × {mta:.1} ms")),
        (
            "  Dovecot IDLE notification delay",
            format!("p50 {:.0} ms, p99 {:.0} ms", pct(&idle_delay, 0.5), pct(&idle_delay, 0.99)),
        ),
        (
            "  secmail's own share",
            format!("p50 {:.1} ms, p99 {:.1} ms (target p50 ≤ 50 ms)", pct(&ours, 0.5), pct(&ours, 0.99)),
        ),
        (
            "Maildir: report file → ack file (inotify)",
            format!("p50 {:.1} ms, p99 {:.1} ms (target ≤ 50 ms)", pct(&md, 0.5), pct(&md, 0.99)),
        ),
        ("peak RSS during the drain", format!("{:.1} MiB (target ≤ 64 MiB)", mib(d.hwm_kib))),
        ("peak RSS with a 50 MB report", big_text.clone()),
        ("timer wake-up, 100,000 cases", a.timer.clone()),
    ];
    let width = rows.iter().map(|(k, _)| k.chars().count()).max().unwrap();
    println!("\nsecmail end-to-end benchmark, N = {}; {machine}", a.n);
    for (k, v) in &rows {
        println!("  {k:<width$}  {v}");
    }
    if let Some(path) = a.record {
        let date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC");
        let row = format!(
            "| {date} | {} | {:.0}/s | {:.0}/s | {:.0}% | {:.0} / {:.0} ms | {mta:.1} ms | {:.0} ms | {:.1} / {:.1} ms | {:.1} / {:.1} ms | {:.1} MiB | {big_text} | {} | {machine} | `{}` |\n",
            a.n,
            c.rate,
            d.rate,
            100.0 * d.rate / c.rate,
            pct(&total, 0.5),
            pct(&total, 0.99),
            pct(&idle_delay, 0.5),
            pct(&ours, 0.5),
            pct(&ours, 0.99),
            pct(&md, 0.5),
            pct(&md, 0.99),
            mib(d.hwm_kib),
            a.timer,
            a.command,
        );
        let mut text = std::fs::read_to_string(&path).unwrap_or_default();
        text.push_str(&row);
        std::fs::write(&path, text).unwrap();
        println!("\nrecorded in {}", path.display());
    }
}

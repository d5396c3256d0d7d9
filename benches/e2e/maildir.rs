//! The Maildir source's latency (no IMAP server, so no IDLE delay): secmail
//! on the built-in layout (Maildir in, `.eml` files out) with an hour-long
//! poll, so what answers is the inotify watch; each report is renamed into
//! `maildir/new/` as an MTA delivers, and timed until its ack file is in
//! `outbox/`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How often the outbox directory is looked at.
const POLL: Duration = Duration::from_millis(1);
/// Upper bound for one report's ack.
const ACK_DEADLINE: Duration = Duration::from_secs(60);

const CONFIG: &str = r#"[mailbox]
address = "security@localhost"
[store]
path = "secmail.db"
[maildir]
path = "maildir"
poll_interval = "1h"
[outbox_dir]
path = "outbox"
[team]
coordinator = "coordinator@localhost"
"#;

/// Whether `dir` holds an ack (an `.eml` file with `Auto-Submitted:
/// auto-replied`) that is not in `seen`; every file looked at joins `seen`.
fn new_ack(dir: &Path, seen: &mut std::collections::HashSet<std::ffi::OsString>) -> bool {
    let mut found = false;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name();
        if name.to_string_lossy().ends_with(".eml") && seen.insert(name) {
            found |= std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains("Auto-Submitted: auto-replied"));
        }
    }
    found
}

/// Report file → ack file, ms, sorted (`samples` reports, one at a time).
pub fn latency(samples: usize) -> Vec<f64> {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("secmail.toml"), CONFIG).unwrap();
    let log = std::fs::File::create(dir.join("secmail.log")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_secmail"))
        .arg("--config")
        .arg(dir.join("secmail.toml"))
        .arg("run")
        .env("RUST_LOG", "secmail=info")
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("spawn secmail");
    let started = Instant::now();
    while !std::fs::read_to_string(dir.join("secmail.log")).unwrap_or_default().contains("watching Maildir") {
        assert!(started.elapsed() < ACK_DEADLINE, "secmail did not start on the Maildir");
        std::thread::sleep(POLL);
    }
    let (new, tmp_dir, outbox) = (dir.join("maildir/new"), dir.join("maildir/tmp"), dir.join("outbox"));
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for i in 0..samples {
        let name = format!("{}.{i}.bench", std::process::id());
        let raw = format!(
            "From: Reporter <maildir-{i}@example.org>\r\nTo: security@localhost\r\nSubject: Maildir report {i}: XSS in search\r\n\
Message-ID: <maildir-{i}-{}@bench.example.test>\r\nDate: Thu, 03 Dec 2026 10:00:00 +0000\r\n\r\nSteps to reproduce {i}.\r\n",
            std::process::id()
        );
        std::fs::write(tmp_dir.join(&name), raw).unwrap();
        let t0 = Instant::now();
        std::fs::rename(tmp_dir.join(&name), new.join(&name)).unwrap();
        while !new_ack(&outbox, &mut seen) {
            assert!(t0.elapsed() < ACK_DEADLINE, "no ack for Maildir report {i}; log in {}", dir.display());
            std::thread::sleep(POLL);
        }
        out.push(t0.elapsed().as_secs_f64() * 1000.0);
        // Let the team notice be written before the next report.
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    out.sort_by(f64::total_cmp);
    out
}

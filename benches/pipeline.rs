//! Throughput of the receive pipeline, in process (no network): how fast a flood
//! of reports drains through parse → decide → one SQLite transaction (case,
//! events, deadlines, ack and team notices queued), for plain and for
//! OpenPGP-encrypted reports (decrypt, encrypted+signed ack).
//!
//! `cargo bench --bench pipeline` prints messages/s and per-message latency
//! percentiles. Under `cargo test` (no `--bench`) it runs a few messages as a
//! smoke test so it cannot rot.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use secmail::clock::SystemClock;
use secmail::config::Config;
use secmail::daemon::Pipeline;
use secmail::keys::Keys;
use secmail::store::Store;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn run(name: &str, cfg: Config, keys: Keys, messages: &[Vec<u8>]) {
    let store = Store::open(&cfg.store.path).unwrap();
    let pipeline = Pipeline::new(
        Arc::new(cfg),
        Arc::new(keys),
        store.clone(),
        Arc::new(SystemClock),
        Arc::new(tokio::sync::Notify::new()),
    )
    .unwrap();
    let mut lat = Vec::with_capacity(messages.len());
    let start = Instant::now();
    for raw in messages {
        let t = Instant::now();
        let out = store.call_sync(|c| pipeline.process(c, raw)).unwrap();
        assert!(out.case.is_some(), "{name}: {}", out.summary);
        lat.push(t.elapsed());
    }
    let total = start.elapsed();
    lat.sort();
    println!(
        "[bench] {name}: {} messages in {:.2?} = {:.0} msg/s; latency p50 {:.2?} p99 {:.2?} max {:.2?}",
        messages.len(),
        total,
        messages.len() as f64 / total.as_secs_f64(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat[lat.len() - 1],
    );
}

fn plain_reports(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            format!(
                "From: Reporter {s} <reporter{s}@example.org>\r\nTo: security@localhost\r\n\
Subject: Heap overflow in parser variant {i}\r\nMessage-ID: <bench-{i}@example.org>\r\n\
Date: Wed, 25 Nov 2026 10:00:00 +0000\r\nContent-Type: text/plain\r\n\r\n{body}\r\n",
                s = i % 500,
                body = "Steps to reproduce: run the parser on the attached file.\r\n".repeat(40)
            )
            .into_bytes()
        })
        .collect()
}

fn encrypted_reports(n: usize) -> Vec<Vec<u8>> {
    let fixture = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/pgp/pgpmime-signed-encrypted.eml")).unwrap();
    (0..n)
        .map(|i| fixture.replace("<pgpmime-signed-encrypted@example.test>", &format!("<bench-enc-{i}@example.test>")).into_bytes())
        .collect()
}

fn private_copy(dir: &Path, name: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pgp").join(name), &p).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let n = if bench { 2000 } else { 20 };
    let n_enc = if bench { 300 } else { 5 };

    let d = tempfile::tempdir().unwrap();
    let mut cfg = Config::builtin(d.path()).unwrap();
    cfg.limits.auto_replies_per_sender_per_hour = 1_000_000;
    run("plain reports (case + ack + 1 team notice each)", cfg, Keys::default(), &plain_reports(n));

    let d = tempfile::tempdir().unwrap();
    let key = private_copy(d.path(), "team-cv25519.sec.asc");
    let text = format!(
        "[mailbox]\naddress = \"security@example.test\"\n[store]\npath = \"secmail.db\"\n[maildir]\npath = \"md\"\n\
[outbox_dir]\npath = \"out\"\n[team]\ncoordinator = \"c@example.test\"\n[[team.member]]\naddress = \"alice@example.test\"\n\
key_file = \"{stranger}\"\n[openpgp]\nsecret_keys = [\"{key}\"]\nreporter_keyring = \"{ring}\"\n\
[limits]\nauto_replies_per_sender_per_hour = 1000000\n",
        key = key.display(),
        stranger = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/pgp/stranger.pub.asc"),
        ring = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/pgp/reporters.pgp"),
    );
    let cfg = Config::parse(&text, d.path()).unwrap();
    let keys = Keys::load(&cfg).unwrap();
    run(
        "encrypted+signed reports (decrypt, verify, encrypted ack, encrypted notice)",
        cfg,
        keys,
        &encrypted_reports(n_enc),
    );
}

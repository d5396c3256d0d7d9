//! Per-message costs, in process: what one report costs in each step, so the
//! end-to-end figures of `bash bench/run.sh` can be told apart from the work.
//!
//! - pre-scan + parse + spam classify, a plain report;
//! - decrypt + verify a signed PGP/MIME report, to a Cv25519 and to an
//!   RSA-3072 team key (made here with the fixtures' keys);
//! - compose + seal an ack (encrypted to the reporter, signed by the team);
//! - the store transaction of a report (case, message, event; one commit on
//!   a file database, as the daemon: WAL, synchronous = FULL).
//!
//! `cargo bench --bench micro` prints `[bench] micro: ...` lines (median and
//! p99 per operation). Without `--bench` (`cargo test --benches`) it runs a
//! few iterations as a smoke test so it cannot rot.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use secmail::case::CaseView;
use secmail::compose::{self, AckNote, Seal};
use secmail::config::Config;
use secmail::crypto::{self, CryptoLimits, Decryption, SignatureStatus, TeamKeys};
use secmail::mail::{self, ParseLimits};
use secmail::spam::SpamFilter;
use secmail::store::{self, Store};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pgp").join(name)
}

fn cert(name: &str) -> sequoia_openpgp::Cert {
    crypto::cert_from_bytes(&std::fs::read(fixture(name)).unwrap()).unwrap()
}

/// A secret key file of the fixtures (team-rsa's has a passphrase).
fn keys(name: &str) -> TeamKeys {
    let pass = (name == "team-rsa.sec.asc").then_some("fixture passphrase");
    TeamKeys::load(&[fixture(name)], pass).unwrap()
}

/// Runs `f` `n` times; prints median and p99.
fn time(n: usize, what: &str, mut f: impl FnMut(usize)) {
    let mut lat: Vec<Duration> = (0..n)
        .map(|i| {
            let t = Instant::now();
            f(i);
            t.elapsed()
        })
        .collect();
    lat.sort();
    let p = |q: f64| lat[((lat.len() - 1) as f64 * q).round() as usize];
    println!("[bench] micro: {what}: {n} runs, p50 {:.1?} p99 {:.1?}", p(0.5), p(0.99));
}

fn plain_report(i: usize) -> Vec<u8> {
    format!(
        "From: Reporter <reporter{i}@example.org>\r\nTo: security@example.test\r\n\
Subject: Heap overflow in parser variant {i}\r\nMessage-ID: <micro-{i}@example.org>\r\n\
Date: Thu, 03 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{}",
        "Steps to reproduce: run the parser on the attached file.\r\n".repeat(40)
    )
    .into_bytes()
}

/// A signed PGP/MIME report from the fixtures' reporter, encrypted to `team`.
fn sealed_report(team: &sequoia_openpgp::Cert, reporter: &TeamKeys) -> Vec<u8> {
    let inner = format!(
        "Content-Type: text/plain; charset=utf-8\r\n\r\n{}",
        "Steps to reproduce: run the parser on the attached file.\r\n".repeat(40)
    );
    let now = chrono::Utc::now();
    let (ct, body) = crypto::encrypt_and_sign_mime(inner.as_bytes(), std::slice::from_ref(team), reporter, now).unwrap();
    let mut raw = format!(
        "From: Rita Reporter <reporter@example.test>\r\nTo: security@example.test\r\nSubject: report\r\n\
Message-ID: <micro-sealed@example.test>\r\nMIME-Version: 1.0\r\nContent-Type: {ct}\r\n\r\n"
    )
    .into_bytes();
    raw.extend_from_slice(&body);
    raw
}

fn decrypt(n: usize, what: &str, team: &str, team_pub: &str) {
    let reporter = keys("reporter.sec.asc");
    let raw = sealed_report(&cert(team_pub), &reporter);
    let team = keys(team);
    let verify_with = [cert("reporter.pub.asc")];
    let limits = CryptoLimits::default();
    time(n, what, |_| match crypto::decrypt_message(&raw, &team, &verify_with, &limits, chrono::Utc::now()) {
        Decryption::Decrypted { signature: SignatureStatus::Good { .. }, .. } => {}
        other => panic!("{what}: {other:?}"),
    });
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let n = if bench { 1000 } else { 5 };
    let n_crypto = if bench { 200 } else { 2 };
    let d = tempfile::tempdir().unwrap();
    let cfg = Config::builtin(d.path()).unwrap();

    let limits = ParseLimits::from(&cfg.limits);
    let spam = SpamFilter::new(&cfg.spam).unwrap();
    let reports: Vec<Vec<u8>> = (0..n).map(plain_report).collect();
    time(n, "pre-scan + parse, plain report (2.4 KB)", |i| {
        std::hint::black_box(mail::parse(&reports[i], &limits));
    });
    let parsed = mail::parse(&reports[0], &limits);
    time(n, "classify (spam filter) a parsed plain report", |_| {
        std::hint::black_box(spam.judge(&secmail::daemon::spam_input(&parsed, &cfg.mailbox)));
    });
    time(n, "pre-scan + parse + classify, plain report (2.4 KB)", |i| {
        let msg = mail::parse(&reports[i], &limits);
        let v = spam.judge(&secmail::daemon::spam_input(&msg, &cfg.mailbox));
        assert!(!v.spam);
    });

    decrypt(n_crypto, "decrypt + verify, PGP/MIME to Cv25519", "team-cv25519.sec.asc", "team-cv25519.pub.asc");
    decrypt(n_crypto, "decrypt + verify, PGP/MIME to RSA-3072", "team-rsa.sec.asc", "team-rsa.pub.asc");

    let team = keys("team-cv25519.sec.asc");
    let reporter = cert("reporter.pub.asc");
    let msg = mail::parse(&reports[0], &limits);
    let case = CaseView { id: 42, state: "new".into(), reporter: "reporter@example.test".into(), subject: msg.subject.clone() };
    time(n_crypto, "compose + seal an ack (encrypt to reporter, sign by team)", |_| {
        let now = chrono::Utc::now();
        let seal = Seal { to: &reporter, team: &team };
        let id = compose::new_message_id(&cfg.mailbox.address);
        compose::ack(&cfg, &case, &msg, "reporter@example.test", now, AckNote::Decrypted, Some(seal), id, now).unwrap();
    });

    let store = Store::open(&cfg.store.path).unwrap();
    time(n, "store transaction per report (case + message + event, one commit)", |i| {
        let raw = &reports[i];
        let msg = mail::parse(raw, &limits);
        store
            .call_sync(|c| {
                let now = chrono::Utc::now();
                let tx = c.transaction()?;
                let case = store::insert_case(&tx, msg.from.as_deref().unwrap(), &msg.subject, false, now)?;
                let m = store::NewMessage {
                    case_id: Some(case),
                    direction: "in",
                    message_id: &msg.message_id,
                    dedupe_key: &msg.dedupe_key,
                    from: msg.from.as_deref(),
                    date: msg.date,
                    subject: Some(&msg.subject),
                    encrypted: false,
                    signature: "none",
                    flags: "",
                    raw,
                };
                store::insert_message(&tx, &m, now)?;
                store::add_event(&tx, case, now, "opened", None, "case opened")?;
                tx.commit()?;
                Ok(())
            })
            .unwrap();
    });
}

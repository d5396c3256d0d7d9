//! The secmail side of the integration tests: one test's world (its own
//! security@ mailbox, reporter and team member, and a config pointing secmail at
//! the harness servers), report builders, and readers for the CLI's JSON.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::{self, secmail, servers, unique_addr, wait_for, write_secret};
use mail_parser::MessageParser;
use serde_json::Value;

/// Generous: a cold CI machine, IDLE or a 1 s poll.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(60);

/// One test's world: its own security@ mailbox, reporter and team member.
pub struct World {
    pub _dir: tempfile::TempDir,
    pub dir: PathBuf,
    pub security: String,
    pub reporter: String,
    pub member: String,
    pub config: PathBuf,
}

#[derive(Clone, Copy)]
pub enum Mode {
    /// IMAP STARTTLS + IDLE, SMTP submission with STARTTLS.
    IdleStarttls,
    /// IMAPS (implicit TLS) polling every second, SMTPS (implicit TLS).
    PollImplicit,
}

pub fn world(tag: &str, mode: Mode) -> World {
    world_with(tag, mode, "")
}

/// A world whose config ends with `extra` (more TOML sections).
pub fn world_with(tag: &str, mode: Mode, extra: &str) -> World {
    let s = servers();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let security = unique_addr(&format!("security-{tag}"));
    let reporter = unique_addr(&format!("reporter-{tag}"));
    let member = unique_addr(&format!("alice-{tag}"));
    let pass = write_secret(&dir, "mail.pass", s.password);
    let ca = s.ca_file.display();
    let (imap_port, imap_tls, idle, smtp_port, smtp_tls) = match mode {
        Mode::IdleStarttls => (s.imap_port, "starttls", true, s.submission_port, "starttls"),
        Mode::PollImplicit => (s.imaps_port, "implicit", false, s.smtps_port, "implicit"),
    };
    let text = format!(
        r#"
[mailbox]
address = "{security}"
case_prefix = "SEC"

[store]
path = "secmail.db"

[imap]
host = "127.0.0.1"
port = {imap_port}
tls = "{imap_tls}"
username = "{security}"
password_file = "{pass}"
ca_file = "{ca}"
idle = {idle}
poll_interval = "1s"

[smtp]
host = "127.0.0.1"
port = {smtp_port}
tls = "{smtp_tls}"
username = "{security}"
password_file = "{pass}"
ca_file = "{ca}"

[team]
coordinator = "{member}"

{extra}
"#,
        pass = pass.display()
    );
    let config = dir.join("secmail.toml");
    std::fs::write(&config, text).unwrap();
    World { _dir: tmp, dir, security, reporter, member, config }
}

pub fn report(from: &str, to: &str, subject: &str, msgid: &str, extra: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Reporter <{from}>\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{msgid}>\r\n\
Date: Wed, 25 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n{extra}\r\n{body}\r\n"
    )
    .into_bytes()
}

pub async fn inbox(user: &str) -> Vec<Vec<u8>> {
    common::imap_fetch_all(user, "INBOX").await
}

/// Waits for `n` messages in the user's INBOX and returns them.
pub async fn wait_for_mail(user: &str, n: usize, what: &str) -> Vec<Vec<u8>> {
    wait_for(what, ACK_TIMEOUT, || async {
        let m = inbox(user).await;
        (m.len() >= n).then_some(m)
    })
    .await
}

pub fn cases_json(config: &Path, all: bool) -> Vec<Value> {
    let out = secmail(config, if all { &["cases", "--all", "--json"] } else { &["cases", "--json"] });
    assert!(out.status.success(), "cases --json failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice::<Value>(&out.stdout).expect("cases --json prints JSON").as_array().unwrap().clone()
}

pub fn case_json(config: &Path, id: &str) -> Value {
    let out = secmail(config, &["case", id, "--json"]);
    assert!(out.status.success(), "case {id} --json failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `case ID --json`, or `None` while the case does not exist yet.
pub fn try_case_json(config: &Path, id: &str) -> Option<Value> {
    let out = secmail(config, &["case", id, "--json"]);
    out.status.success().then(|| serde_json::from_slice(&out.stdout).unwrap())
}

pub fn header(raw: &[u8], name: &str) -> String {
    let m = MessageParser::default().parse(raw).expect("parseable mail");
    // Unfolded (RFC 5322 §2.2.3): a long Subject arrives on several lines.
    m.header_raw(name).unwrap_or("").replace("\r\n", "").replace('\n', "").trim().to_string()
}

/// Waits until `n` messages sit in the security mailbox's `folder`.
pub async fn wait_filed(w: &World, folder: &str, n: usize) {
    wait_for(&format!("{n} message(s) in {folder}"), ACK_TIMEOUT, || async {
        (common::imap_fetch_all(&w.security, folder).await.len() >= n).then_some(())
    })
    .await;
}


//! Deadlines nobody can forget (SPEC §7), end to end over the real Dovecot and
//! Postfix with second-long durations: an unanswered report produces a
//! reminder, then exactly one escalation each in the coordinator's and the
//! backup's real mailboxes (decryptable with their keys), then a
//! re-escalation; a signed team reply in time prevents the escalation and
//! starts the update clock; a SIGKILL and a restart across a lapse escalate once.

mod common;
mod team;
mod world;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{Daemon, servers, smtp_send, unique_addr, wait_for, write_secret};
use team::{Draft, Gpg};

const TIMEOUT: Duration = Duration::from_secs(60);

struct DeadlineWorld {
    _dir: tempfile::TempDir,
    config: PathBuf,
    security: String,
    reporter: String,
    /// The coordinator (alice's key) and the backup (bob's key).
    alice: String,
    bob: String,
    members: Gpg,
}

/// A world whose first response is due `first_response` after a report,
/// reminded `remind_before` earlier, re-escalated every `re_escalate`.
fn deadline_world(tag: &str, first_response: &str, remind_before: &str, re_escalate: &str) -> DeadlineWorld {
    let s = servers();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let security = unique_addr(&format!("security-{tag}"));
    let reporter = unique_addr(&format!("reporter-{tag}"));
    let alice = unique_addr(&format!("alice-{tag}"));
    let bob = unique_addr(&format!("bob-{tag}"));
    let pass = write_secret(&dir, "mail.pass", s.password);
    let team_key = team::copy_secret("team-cv25519", &dir);
    let text = format!(
        r#"
[mailbox]
address = "{security}"

[store]
path = "secmail.db"

[imap]
host = "127.0.0.1"
port = {imap}
tls = "starttls"
username = "{security}"
password_file = "{pass}"
ca_file = "{ca}"
poll_interval = "1s"

[smtp]
host = "127.0.0.1"
port = {smtp}
tls = "starttls"
username = "{security}"
password_file = "{pass}"
ca_file = "{ca}"

[openpgp]
secret_keys = ["{team_key}"]

[team]
coordinator = "{alice}"
backup = "{bob}"

[[team.member]]
address = "{alice}"
key_file = "{alice_key}"

[[team.member]]
address = "{bob}"
key_file = "{bob_key}"

[policy]
ack_within = "1h"
first_response_within = "{first_response}"
remind_before = "{remind_before}"
re_escalate_every = "{re_escalate}"
update_every = "1h"
"#,
        imap = s.imap_port,
        smtp = s.submission_port,
        pass = pass.display(),
        ca = s.ca_file.display(),
        team_key = team_key.display(),
        alice_key = team::key_path("alice").display(),
        bob_key = team::key_path("bob").display(),
    );
    let config = dir.join("secmail.toml");
    std::fs::write(&config, text).unwrap();
    DeadlineWorld { _dir: tmp, config, security, reporter, alice, bob, members: Gpg::with_secret_keys(&["alice", "bob"]) }
}

impl DeadlineWorld {
    async fn report(&self, subject: &str) {
        let raw = world::report(&self.reporter, &self.security, subject, &format!("{}@example.test", team::new_message_id()), "", "PoC: SECRET-TEXT");
        smtp_send(&self.reporter, &[&self.security], &raw).await;
    }

    /// Mail from this world's security@ in `user`'s INBOX whose Subject contains `needle`.
    async fn mail(&self, user: &str, needle: &str) -> Vec<Vec<u8>> {
        common::imap_fetch_all(user, "INBOX")
            .await
            .into_iter()
            .filter(|m| world::header(m, "Subject").contains(needle) && world::header(m, "From").contains(&self.security))
            .collect()
    }

    async fn wait_mail(&self, user: &str, needle: &str, n: usize) -> Vec<Vec<u8>> {
        wait_for(&format!("{n} mail(s) {needle:?} for {user}"), TIMEOUT, || async {
            let m = self.mail(user, needle).await;
            (m.len() >= n).then_some(m)
        })
        .await
    }

    /// The plaintext of a sealed mail, as the member reads it.
    fn open(&self, raw: &[u8]) -> String {
        let text = String::from_utf8_lossy(raw);
        let start = text.find("-----BEGIN PGP MESSAGE-----").expect("sealed to the member's key");
        let end = text.find("-----END PGP MESSAGE-----").unwrap() + "-----END PGP MESSAGE-----".len();
        let (plain, _) = self.members.decrypt(text[start..end].replace("\r\n", "\n").as_bytes());
        String::from_utf8_lossy(&plain).to_string()
    }
}

/// SIGKILL and reap.
fn kill9(d: &mut Daemon) {
    let pid = d.pid().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-9", &pid]).status().unwrap().success());
    let t = Instant::now();
    while d.try_exit_status().is_none() {
        assert!(t.elapsed() < Duration::from_secs(10), "secmail not gone after SIGKILL");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The whole cycle nobody answers: reminder, one escalation each to the
/// coordinator and the backup, a re-escalation, all sealed to their keys.
#[tokio::test(flavor = "multi_thread")]
async fn an_unanswered_report_is_reminded_then_escalated_to_coordinator_and_backup() {
    let w = deadline_world("lapse", "8s", "4s", "6s");
    let mut d = Daemon::start(&w.config);
    let sent = Instant::now();
    w.report("Auth bypass in the API").await;
    world::wait_for_mail(&w.reporter, 1, "the ack").await;

    // Nobody is assigned: the reminder goes to every member.
    for who in [&w.alice, &w.bob] {
        let r = w.wait_mail(who, "Reminder: first-response", 1).await;
        let text = w.open(&r[0]);
        assert!(text.contains("nobody is assigned") && text.contains("secmail case SEC-1 reply"), "{text}");
        assert!(!text.contains("SECRET-TEXT"), "no report text in a reminder");
    }
    println!("[measure] deadlines: reminder after {:?}", sent.elapsed());
    for who in [&w.alice, &w.bob] {
        let e = w.wait_mail(who, "ESCALATION: first-response", 1).await;
        let text = w.open(&e[0]);
        assert!(text.contains("is lapsed by") && text.contains(&w.reporter) && text.contains("Auth bypass in the API"), "{text}");
        assert!(text.contains("#assign"), "it says how to fix it: {text}");
    }
    println!("[measure] deadlines: escalation after {:?}", sent.elapsed());
    let c = world::case_json(&w.config, "SEC-1");
    let fr = c["deadlines"].as_array().unwrap().iter().find(|d| d["kind"] == "first-response").unwrap().clone();
    assert_eq!(fr["state"], "lapsed");
    assert_eq!(c["escalations"][0]["to"], serde_json::json!([w.alice, w.bob]), "{c:#}");

    // Still lapsed: escalated again after re_escalate_every, once each.
    for who in [&w.alice, &w.bob] {
        w.wait_mail(who, "ESCALATION: first-response", 2).await;
    }
    println!("[measure] deadlines: re-escalation after {:?}", sent.elapsed());
    let c = world::case_json(&w.config, "SEC-1");
    assert!(c["escalations"].as_array().unwrap().len() >= 2);
    d.stop();
}

/// A signed answer before the deadline: no escalation, and the update clock
/// starts (its deadline pending in `case --json`).
#[tokio::test(flavor = "multi_thread")]
async fn a_signed_reply_in_time_prevents_the_escalation_and_starts_the_update_clock() {
    let w = deadline_world("inTime", "8s", "4s", "6s");
    let mut d = Daemon::start(&w.config);
    let sent = Instant::now();
    w.report("Open redirect").await;
    let notes = w.wait_mail(&w.alice, "[SEC-1] New report", 1).await;
    let notice = world::header(&notes[0], "Message-ID");
    let draft = Draft::new(&w.alice, &w.security, "Re: [SEC-1] New report", "Thanks, we are on it.\n").replying_to(&notice);
    smtp_send(&w.alice, &[&w.security], &team::signed(&w.members, "alice", &draft)).await;
    let c = wait_for("the response recorded", TIMEOUT, || async {
        let c = world::case_json(&w.config, "SEC-1");
        c["first_response_at"].is_string().then_some(c)
    })
    .await;
    assert!(c["deadlines"].as_array().unwrap().iter().any(|d| d["kind"] == "update" && d["state"] == "pending"), "{c:#}");
    // An observation window past the old deadline: no escalation comes.
    let past_due = Duration::from_secs(8 + 4);
    if let Some(rest) = past_due.checked_sub(sent.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    for who in [&w.alice, &w.bob] {
        assert!(w.mail(who, "ESCALATION").await.is_empty(), "no escalation for {who}");
    }
    assert!(world::case_json(&w.config, "SEC-1")["escalations"].as_array().unwrap().is_empty());
    d.stop();
}

/// The daemon is SIGKILLed before the lapse and comes back after it: the
/// lapse is escalated once; killed again right after and restarted, still once.
#[tokio::test(flavor = "multi_thread")]
async fn a_kill_and_restart_across_a_lapse_escalate_once() {
    let w = deadline_world("restart", "6s", "1s", "1h");
    let mut d = Daemon::start(&w.config);
    let sent = Instant::now();
    w.report("SSRF in the webhook").await;
    world::wait_for_mail(&w.reporter, 1, "the ack").await;
    kill9(&mut d);
    // Down across the lapse (a wait for time to pass, not for a condition).
    if let Some(rest) = Duration::from_secs(8).checked_sub(sent.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    let mut d = Daemon::start(&w.config);
    for who in [&w.alice, &w.bob] {
        w.wait_mail(who, "ESCALATION: first-response", 1).await;
    }
    kill9(&mut d);
    let mut d = Daemon::start(&w.config);
    d.wait_for_log("secmail running", TIMEOUT).await;
    // Give the restarted timer a moment to (wrongly) act again, then count.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for who in [&w.alice, &w.bob] {
        assert_eq!(w.mail(who, "ESCALATION").await.len(), 1, "exactly one escalation for {who}");
        assert!(w.mail(who, "Reminder").await.len() <= 1, "no late reminder twice");
    }
    assert_eq!(world::case_json(&w.config, "SEC-1")["escalations"].as_array().unwrap().len(), 1);
    d.stop();
}

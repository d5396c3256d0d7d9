//! Embargo and disclosure (SPEC §6, §7b) end to end over the real servers,
//! with second-long embargoes: real mailboxes for distros@ and announce@; the
//! pre-notice decrypts with the list's key; nothing reaches announce@ before
//! the lift; the advisory there is signed by the team key; the reporter's mail
//! arrives after the lift; a moved embargo moves the jobs (each mail once); a
//! restart across the lift sends each mail once. And `#not-security`.

mod common;
mod team;
mod world;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::Utc;
use common::{Daemon, servers, smtp_send, unique_addr, wait_for, write_secret};
use team::{Draft, Gpg};

const TIMEOUT: Duration = Duration::from_secs(60);

struct World {
    _dir: tempfile::TempDir,
    config: PathBuf,
    security: String,
    reporter: String,
    alice: String,
    distros: String,
    announce: String,
    /// alice's secret key, the distros list's (the fixtures' `stranger`) and the team's public key.
    gpg: Gpg,
}

fn disclosure_world(tag: &str) -> World {
    let s = servers();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let [security, reporter, alice, distros, announce] =
        ["security", "reporter", "alice", "distros", "announce"].map(|n| unique_addr(&format!("{n}-{tag}")));
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

[[team.member]]
address = "{alice}"
key_file = "{alice_key}"

[disclosure]
announce = "{announce}"
prenotice_before = "6s"
remind_before = "3s"
vendor = "Example"
product = "libexample"
ecosystem = "crates.io"
package = "libexample"
repository = "https://github.com/example/libexample"

[[disclosure.list]]
name = "distros"
address = "{distros}"
key_file = "{list_key}"
max_embargo = "1h"
"#,
        imap = s.imap_port,
        smtp = s.submission_port,
        pass = pass.display(),
        ca = s.ca_file.display(),
        team_key = team_key.display(),
        alice_key = team::key_path("alice").display(),
        list_key = team::key_path("stranger").display(),
    );
    let config = dir.join("secmail.toml");
    std::fs::write(&config, text).unwrap();
    World { _dir: tmp, config, security, reporter, alice, distros, announce, gpg: Gpg::with_secret_keys(&["alice", "stranger"]) }
}

impl World {
    /// Mail from this world's security@ in `user`'s INBOX.
    async fn mail(&self, user: &str) -> Vec<Vec<u8>> {
        common::imap_fetch_all(user, "INBOX").await.into_iter().filter(|m| world::header(m, "From").contains(&self.security)).collect()
    }

    async fn wait_mail(&self, user: &str, needle: &str, n: usize) -> Vec<Vec<u8>> {
        wait_for(&format!("{n} mail(s) {needle:?} for {user}"), TIMEOUT, || async {
            let m: Vec<Vec<u8>> = self.mail(user).await.into_iter().filter(|m| world::header(m, "Subject").contains(needle)).collect();
            (m.len() >= n).then_some(m)
        })
        .await
    }

    async fn open_case(&self) -> String {
        let raw = world::report(&self.reporter, &self.security, "Heap overflow in the parser", &format!("{}@example.test", team::new_message_id()), "", "PoC attached");
        smtp_send(&self.reporter, &[&self.security], &raw).await;
        let notes = self.wait_mail(&self.alice, "[SEC-1] New report", 1).await;
        world::header(&notes[0], "Message-ID")
    }

    async fn signed(&self, parent: &str, body: &str) {
        let d = Draft::new(&self.alice, &self.security, "Re: [SEC-1] New report", body).replying_to(parent);
        smtp_send(&self.alice, &[&self.security], &team::signed(&self.gpg, "alice", &d)).await;
    }

    fn open(&self, raw: &[u8]) -> String {
        let text = String::from_utf8_lossy(raw);
        let start = text.find("-----BEGIN PGP MESSAGE-----").expect("sealed");
        let end = text.find("-----END PGP MESSAGE-----").unwrap() + "-----END PGP MESSAGE-----".len();
        String::from_utf8_lossy(&self.gpg.decrypt(text[start..end].replace("\r\n", "\n").as_bytes()).0).to_string()
    }
}

fn rfc3339_in(secs: i64) -> String {
    (Utc::now() + chrono::Duration::seconds(secs)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Set by signed mail, moved once; pre-notice, reminder, lift, announcement
/// and the reporter's notice each arrive once, at their time.
#[tokio::test(flavor = "multi_thread")]
async fn an_embargo_set_by_signed_mail_runs_its_course_once() {
    let w = disclosure_world("embargo");
    let mut d = Daemon::start(&w.config);
    let notice = w.open_case().await;
    // First far out, then moved closer: the first schedule must not fire.
    let far = rfc3339_in(40);
    w.signed(
        &notice,
        &format!(
            "#state confirmed\n#affected < 2.4.1\n#fixed-in 2.4.1\n#cve CVE-2026-12345\n#predisclose distros\n#embargo {far}\n#advisory\n\nA heap overflow in the parser lets a crafted file execute code.\nUpgrade to 2.4.1.\n"
        ),
    )
    .await;
    wait_for("embargoed", TIMEOUT, || async { (world::case_json(&w.config, "SEC-1")["state"] == "embargoed").then_some(()) }).await;
    let set_at = Instant::now();
    let near = rfc3339_in(14);
    w.signed(&notice, &format!("#embargo {near}\n")).await;
    wait_for("embargo moved", TIMEOUT, || async {
        let c = world::case_json(&w.config, "SEC-1");
        c["embargo_until"].as_str().is_some_and(|e| e.starts_with(&near[..19])).then_some(c)
    })
    .await;

    let pre = w.wait_mail(&w.distros, "Embargoed security advisory", 1).await;
    let text = w.open(&pre[0]);
    assert!(text.contains("EMBARGOED until") && text.contains("heap overflow in the parser lets"), "{text}");
    assert!(!String::from_utf8_lossy(&pre[0]).contains("heap overflow in the parser lets"), "never in clear");
    assert!(w.mail(&w.announce).await.is_empty(), "nothing reaches announce@ before the lift");
    assert!(w.mail(&w.reporter).await.iter().all(|m| !world::header(m, "Subject").contains("Re: Heap") || world::header(m, "Auto-Submitted") != "auto-generated"), "the reporter hears nothing before the lift");
    w.wait_mail(&w.alice, "Embargo lifts soon", 1).await;

    // The lift.
    let ann = w.wait_mail(&w.announce, "Security advisory", 1).await;
    let lifted_after = set_at.elapsed();
    let raw = &ann[0];
    let (signed, sig) = team::split_signed(raw);
    let v = w.gpg.verify_detached(&signed, &sig);
    assert_eq!(v.good_by().as_deref(), Some(team::fingerprint("team-cv25519").as_str()), "signed by the team key: {}", v.stderr);
    let body = String::from_utf8_lossy(raw);
    assert!(body.contains("CVE-2026-12345") && body.contains("Fixed in:          2.4.1") && body.contains("Credit: reported by Reporter."), "{body}");
    assert!(!body.contains(&w.reporter), "the reporter's address is never published");
    let told = w.wait_mail(&w.reporter, "Re: Heap overflow", 2).await;
    assert!(told.iter().any(|m| String::from_utf8_lossy(m).contains("is now public")), "the reporter is told");
    w.wait_mail(&w.alice, "Disclosed: publish now", 1).await;
    let c = world::case_json(&w.config, "SEC-1");
    assert_eq!(c["state"], "disclosed");
    // The advisory, machine-readable (the schemas are checked in advisory's unit tests).
    for (flag, key) in [("--osv-json", "id"), ("--cve-json", "descriptions")] {
        let out = common::secmail(&w.config, &["case", "SEC-1", "advisory", flag]);
        assert!(out.status.success(), "{flag}: {}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(v["affected"].is_array() && !v[key].is_null(), "{flag}: {v:#}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("2.4.1") && !text.contains(&w.reporter), "{flag}: {text}");
    }
    println!("[measure] disclosure: lift observed {lifted_after:?} after the embargo was set to +14 s");

    // Past the first (moved-away) schedule: still one of each.
    let first_lift = Duration::from_secs(42);
    if let Some(rest) = first_lift.checked_sub(set_at.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    assert_eq!(w.wait_mail(&w.distros, "Embargoed", 1).await.len(), 1, "one pre-notice");
    assert_eq!(w.wait_mail(&w.announce, "Security advisory", 1).await.len(), 1, "one announcement");
    d.stop();
}

/// Killed before the lift, started after it: the lift happens once.
#[tokio::test(flavor = "multi_thread")]
async fn a_restart_across_the_lift_sends_each_mail_once() {
    let w = disclosure_world("restart");
    let d = Daemon::start(&w.config);
    let notice = w.open_case().await;
    let at = rfc3339_in(10);
    w.signed(&notice, &format!("#state confirmed\n#embargo {at}\n#advisory\n\nFixed in 2.4.1.\n")).await;
    wait_for("embargoed", TIMEOUT, || async { (world::case_json(&w.config, "SEC-1")["state"] == "embargoed").then_some(()) }).await;
    let pid = d.pid().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-9", &pid]).status().unwrap().success());
    let lift = chrono::DateTime::parse_from_rfc3339(&at).unwrap().with_timezone(&Utc);
    if let Ok(rest) = (lift - Utc::now() + chrono::Duration::seconds(2)).to_std() {
        tokio::time::sleep(rest).await;
    }
    let mut d = Daemon::start(&w.config);
    w.wait_mail(&w.announce, "Security advisory", 1).await;
    d.stop();
    let mut d = Daemon::start(&w.config);
    d.wait_for_log("secmail running", TIMEOUT).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    d.stop();
    assert_eq!(w.mail(&w.announce).await.len(), 1, "one announcement");
    let now_public = w.mail(&w.reporter).await.into_iter().filter(|m| String::from_utf8_lossy(m).contains("is now public")).count();
    assert_eq!(now_public, 1, "the reporter is told once");
}

/// `#not-security`: the reporter gets the polite answer and the case closes.
#[tokio::test(flavor = "multi_thread")]
async fn not_security_answers_the_reporter_politely_and_closes() {
    let w = disclosure_world("notsec");
    let mut d = Daemon::start(&w.config);
    let notice = w.open_case().await;
    w.signed(&notice, "#not-security\n").await;
    let m = wait_for("the polite answer", TIMEOUT, || async {
        w.mail(&w.reporter).await.into_iter().find(|m| String::from_utf8_lossy(m).contains("public issue tracker"))
    })
    .await;
    assert!(world::header(&m, "Subject").starts_with("[SEC-1]"));
    assert_eq!(world::case_json(&w.config, "SEC-1")["state"], "not-security");
    // A past or too long embargo is refused with a line naming it.
    let _ = &w.distros;
    d.stop();
}

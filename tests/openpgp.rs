//! OpenPGP end to end (SPEC §4), through the real Dovecot and Postfix: encrypted
//! reports made by GnuPG (`fixtures/pgp/`, see its README) are sent over SMTP to
//! security@; the tests read what secmail sends back over IMAP and open it with
//! GnuPG, the reporter's real client.

mod common;
mod world;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Daemon, smtp_send, unique_addr, wait_for, write_secret};
use mail_parser::{MessageParser, MimeHeaders};
use world::*;

/// The fixtures' reporter (its key is in `reporters.pgp`).
const REPORTER: &str = "reporter@example.test";
/// The current team key (signing), from `fixtures/pgp/fingerprints.txt`.
const TEAM_FPR: &str = "00865B17DF05993C49A0CFD44141EF65FD81CC8D";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pgp").join(name)
}

/// A secret key copied into the test dir with mode 0600 (secmail insists).
fn private_copy(dir: &Path, name: &str) -> PathBuf {
    let text = std::fs::read_to_string(fixture(name)).unwrap();
    write_secret(dir, name, &text)
}

/// A world whose secmail has both team keys (rotation: cv25519 signs, the old
/// RSA key still decrypts), the reporter keyring, a team member `alice` with a
/// key (the fixtures' `stranger` key stands in for hers) and a coordinator
/// without one.
fn pgp_world(tag: &str) -> (World, String) {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let new_key = private_copy(d, "team-cv25519.sec.asc");
    let old_key = private_copy(d, "team-rsa.sec.asc");
    let pass = write_secret(d, "team.pass", "fixture passphrase");
    let keyless = unique_addr(&format!("bob-{tag}"));
    let extra = format!(
        r#"[[team.member]]
address = "{{member}}"
key_file = "{stranger}"

[[team.member]]
address = "{keyless}"

[openpgp]
secret_keys = ["{new}", "{old}"]
passphrase_file = "{pass}"
reporter_keyring = "{ring}"
"#,
        stranger = fixture("stranger.pub.asc").display(),
        new = new_key.display(),
        old = old_key.display(),
        pass = pass.display(),
        ring = fixture("reporters.pgp").display(),
    );
    let w = world_with(tag, Mode::IdleStarttls, "");
    let text = std::fs::read_to_string(&w.config).unwrap() + &extra.replace("{member}", &w.member);
    std::fs::write(&w.config, text).unwrap();
    // Keep the key files alive as long as the world.
    std::mem::forget(tmp);
    (w, keyless)
}

/// Send a fixture to this world's security@ with a fresh Message-ID (the
/// outer headers are not covered by the encryption); returns that id.
async fn send_fixture(w: &World, name: &str) -> String {
    let raw = std::fs::read_to_string(fixture(name)).unwrap();
    let old_id = raw.lines().find(|l| l.starts_with("Message-ID:")).unwrap().to_string();
    let id = format!("{}.{}", name.trim_end_matches(".eml"), unique_addr("m"));
    let raw = raw.replace(&old_id, &format!("Message-ID: <{id}>"));
    let from = if raw.contains("reporter2@example.test") { "reporter2@example.test" } else { REPORTER };
    smtp_send(from, &[&w.security], raw.as_bytes()).await;
    id
}

/// The ack to the message `id` in the reporter's mailbox.
async fn ack_for(reporter: &str, id: &str) -> Vec<u8> {
    let want = format!("<{id}>");
    wait_for(&format!("the ack to {id}"), ACK_TIMEOUT, || async {
        inbox(reporter).await.into_iter().find(|m| header(m, "In-Reply-To") == want)
    })
    .await
}

/// Decrypt a PGP/MIME message with GnuPG holding `secret` (and the team's
/// public key to verify): (plaintext, gpg's status output).
fn gpg_decrypt(raw: &[u8], secret: &str) -> (String, String) {
    let m = MessageParser::default().parse(raw).unwrap();
    let ct = m.root_part().content_type().unwrap();
    assert_eq!(ct.ctype(), "multipart");
    assert_eq!(ct.subtype(), Some("encrypted"), "PGP/MIME (RFC 3156 §4)");
    let armored = m
        .parts
        .iter()
        .map(|p| p.contents())
        .find(|c| c.starts_with(b"-----BEGIN PGP MESSAGE-----"))
        .expect("an armored OpenPGP message part")
        .to_vec();
    let home = tempfile::tempdir().unwrap();
    let gpg = |args: &[&str], input: Option<&Path>| {
        let mut c = Command::new("gpg");
        c.env("GNUPGHOME", home.path()).args(["--batch", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", ""]);
        c.args(args);
        if let Some(p) = input {
            c.arg(p);
        }
        c.output().expect("gpg runs (scripts/install-deps.sh installs gnupg)")
    };
    for k in [fixture(secret), fixture("team-cv25519.pub.asc")] {
        assert!(gpg(&["--import"], Some(&k)).status.success());
    }
    let f = home.path().join("msg.asc");
    std::fs::write(&f, armored).unwrap();
    let out = gpg(&["--decrypt"], Some(&f));
    assert!(out.status.success(), "gpg --decrypt failed: {}", String::from_utf8_lossy(&out.stderr));
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Every header line of a raw message (the cleartext part).
fn headers_of(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    s.split("\r\n\r\n").next().unwrap_or("").to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_encrypted_signed_report_is_read_and_answered_encrypted_and_signed() {
    let (w, keyless) = pgp_world("pgp");
    let mut d = Daemon::start(&w.config);
    d.wait_for_log("secmail running", std::time::Duration::from_secs(30)).await;
    let id = send_fixture(&w, "pgpmime-signed-encrypted.eml").await;
    let ack = ack_for(REPORTER, &id).await;

    // The ack: PGP/MIME, readable by the reporter's GnuPG, signed by the team key.
    assert!(header(&ack, "Subject").starts_with("[SEC-1] Re: "));
    assert_eq!(header(&ack, "Auto-Submitted"), "auto-replied");
    let (plain, status) = gpg_decrypt(&ack, "reporter.sec.asc");
    assert!(plain.contains("SEC-1"), "{plain}");
    assert!(status.contains("Good signature"), "{status}");
    assert!(status.contains(TEAM_FPR) || status.contains(&TEAM_FPR[24..]), "signed by the team key: {status}");
    assert!(!plain.contains("MARKER"), "the ack never quotes the report");

    // The case: encrypted, decrypted on read, signature good.
    let c = wait_for("SEC-1 acknowledged", ACK_TIMEOUT, || async {
        let c = try_case_json(&w.config, "SEC-1")?;
        c["acknowledged_at"].is_string().then_some(c)
    })
    .await;
    assert_eq!(c["encrypted"], true);
    let m0 = &c["messages"][0];
    assert_eq!(m0["encrypted"], true);
    assert_eq!(m0["signature"], "good");
    assert!(m0["text"].as_str().unwrap().contains("MARKER-SIGNED"), "{m0:#}");
    let m1 = &c["messages"][1];
    assert_eq!((m1["direction"].as_str(), m1["encrypted"].as_bool()), (Some("out"), Some(true)), "the ack is recorded as encrypted");

    // Alice (has a key) gets the text encrypted to her; Bob (no key) metadata only.
    let alice = wait_for_mail(&w.member, 1, "alice's notification").await;
    let (note, _) = gpg_decrypt(&alice[0], "stranger.sec.asc");
    assert!(note.contains("MARKER-SIGNED"), "{note}");
    let bob = wait_for_mail(&keyless, 1, "bob's notification").await;
    let bob = String::from_utf8_lossy(&bob[0]);
    assert!(!bob.contains("MARKER"), "no report text in clear: {bob}");
    assert!(bob.contains("secmail case SEC-1"));

    d.stop();
    assert!(!d.log().contains("MARKER"), "decrypted text in the log");
    // The database keeps the ciphertext, not the plaintext (WAL included).
    for f in ["secmail.db", "secmail.db-wal"] {
        if let Ok(db) = std::fs::read(w.dir.join(f)) {
            assert!(!db.windows(13).any(|x| x == b"MARKER-SIGNED"), "plaintext stored in {f}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_protected_subject_never_appears_in_a_cleartext_header() {
    let (w, keyless) = pgp_world("psubj");
    let mut d = Daemon::start(&w.config);
    let id = send_fixture(&w, "protected-subject.eml").await;
    let ack = ack_for(REPORTER, &id).await;
    let alice = wait_for_mail(&w.member, 1, "alice's notification").await;
    let bob = wait_for_mail(&keyless, 1, "bob's notification").await;
    for m in [&ack, &alice[0], &bob[0]] {
        assert!(!headers_of(m).contains("MARKER-PROTECTED-SUBJECT"), "{}", headers_of(m));
    }
    assert!(!String::from_utf8_lossy(&bob[0]).contains("MARKER-PROTECTED-SUBJECT"));
    // Inside secmail (and inside encryption) the real subject is known.
    let (note, _) = gpg_decrypt(&alice[0], "stranger.sec.asc");
    assert!(note.contains("MARKER-PROTECTED-SUBJECT"), "{note}");
    let c = case_json(&w.config, "SEC-1");
    assert!(c["messages"][0]["protected_subject"].as_str().unwrap().contains("MARKER-PROTECTED-SUBJECT"));
    d.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn rotation_inline_and_attachments_all_decrypt() {
    let (w, _) = pgp_world("rot");
    let mut d = Daemon::start(&w.config);
    let fixtures = [
        ("old-team-key.eml", "MARKER-OLD-KEY"),
        ("inline-armored.eml", "MARKER-INLINE"),
        ("attachment-asc.eml", "MARKER-ATTACH-ASC"),
        ("bcc-delivery.eml", "MARKER-BCC"),
        ("html-alternative.eml", "MARKER-HTML-ALT"),
    ];
    for (f, _) in fixtures {
        send_fixture(&w, f).await;
    }
    wait_filed(&w, "secmail/processed", fixtures.len()).await;
    let cases = cases_json(&w.config, true);
    assert_eq!(cases.len(), fixtures.len());
    let mut texts = String::new();
    for c in &cases {
        let detail = case_json(&w.config, c["id"].as_str().unwrap());
        texts.push_str(detail["messages"][0]["text"].as_str().unwrap());
        let json = detail.to_string();
        assert!(!json.contains("not decrypted"), "{json}");
    }
    for (f, marker) in fixtures {
        if f == "attachment-asc.eml" {
            continue; // the attachment is decrypted; its text is not the body
        }
        assert!(texts.contains(marker), "{marker} missing");
    }
    d.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn undecryptable_and_no_integrity_mail_still_open_cases() {
    let (w, _) = pgp_world("bad");
    let mut d = Daemon::start(&w.config);
    let stranger_id = send_fixture(&w, "stranger-only.eml").await;
    let ack = ack_for(REPORTER, &stranger_id).await;
    // The ack asks to re-encrypt to the team key, by fingerprint.
    let (plain, _) = gpg_decrypt(&ack, "reporter.sec.asc");
    assert!(plain.contains("could NOT decrypt") && plain.contains(TEAM_FPR), "{plain}");

    send_fixture(&w, "no-mdc.eml").await;
    send_fixture(&w, "corrupt.eml").await;
    wait_filed(&w, "secmail/processed", 3).await;
    let cases = cases_json(&w.config, true);
    assert_eq!(cases.len(), 3, "a report is a report");
    let mut saw_efail = false;
    for c in &cases {
        let detail = case_json(&w.config, c["id"].as_str().unwrap());
        let events = detail["events"].to_string();
        assert!(events.contains("undecryptable"), "{events}");
        saw_efail |= events.contains("integrity protection");
        assert!(!detail["messages"][0]["text"].as_str().unwrap().contains("MARKER"));
    }
    assert!(saw_efail, "the no-MDC message is refused as EFAIL-class");
    // The team is told why.
    let notes = wait_for_mail(&w.member, 3, "three notifications").await;
    let texts: String = notes.iter().map(|n| gpg_decrypt(n, "stranger.sec.asc").0).collect();
    assert!(texts.contains("NOT decrypted: refused: encrypted without integrity protection"), "{texts}");
    d.stop();
}

#[tokio::test]
async fn check_config_prints_key_fingerprints_and_refuses_open_secret_keys() {
    let (w, _) = pgp_world("keys");
    let out = common::secmail(&w.config, &["check-config", "--offline"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("team key {TEAM_FPR} (signing)")), "{stdout}");
    assert!(stdout.contains("F2CF6353C4EFE13C355A2D845D67CBC581594470"), "the old key too: {stdout}");
    assert!(stdout.contains("has no key_file"), "{stdout}");
    // A team secret key readable by others is refused.
    let text = std::fs::read_to_string(&w.config).unwrap();
    let key_path = text.lines().find(|l| l.starts_with("secret_keys")).unwrap().split('"').nth(1).unwrap().to_string();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = common::secmail(&w.config, &["check-config", "--offline"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("accessible by group/others"));
}

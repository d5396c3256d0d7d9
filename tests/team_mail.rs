//! The team works from its mail clients (SPEC §5.2, §6), end to end through
//! the real Dovecot and Postfix: members' mail is made by GnuPG as mutt and
//! Thunderbird make it (`tests/team`, keys in `fixtures/team`), signed at run
//! time. A signed reply reaches the reporter encrypted to the reporter's key;
//! commands steer the case; forged, unsigned, wrapped, replayed, old, revoked
//! and expired attempts to speak for the team are refused and reported.

mod common;
mod team;
mod world;

use std::path::PathBuf;
use std::time::Duration;

use common::{Daemon, secmail, servers, smtp_send, unique_addr, wait_for, write_secret};
use serde_json::Value;
use team::{Draft, Gpg, PAST, Style};

const ACK_TIMEOUT: Duration = world::ACK_TIMEOUT;

/// One test's team: security@, a reporter with a key of their own (made by
/// GnuPG now, for their unique address), members alice (coordinator), bob,
/// carol (whose configured key is revoked), dave (whose key expired) and
/// erin (no key).
struct TeamWorld {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    config: PathBuf,
    security: String,
    reporter: String,
    /// The reporter's own GnuPG (their secret key).
    reporter_gpg: Gpg,
    reporter_fpr: String,
    alice: String,
    bob: String,
    carol: String,
    dave: String,
    erin: String,
    /// Members' GnuPG with their secret keys (and mallory's).
    members: Gpg,
}

fn team_world(tag: &str) -> TeamWorld {
    let s = servers();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let security = unique_addr(&format!("security-{tag}"));
    let reporter = unique_addr(&format!("reporter-{tag}"));
    let [alice, bob, carol, dave, erin] = ["alice", "bob", "carol", "dave", "erin"].map(|n| unique_addr(&format!("{n}-{tag}")));
    let pass = write_secret(&dir, "mail.pass", s.password);
    let team_key = team::copy_secret("team-cv25519", &dir);
    let key = |n: &str| team::key_path(n).display().to_string();
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

[[team.member]]
address = "{bob}"
key_file = "{bob_key}"

[[team.member]]
address = "{carol}"
key_file = "{carol_key}"

[[team.member]]
address = "{dave}"
key_file = "{dave_key}"

[[team.member]]
address = "{erin}"
"#,
        imap = s.imap_port,
        smtp = s.submission_port,
        pass = pass.display(),
        ca = s.ca_file.display(),
        team_key = team_key.display(),
        alice_key = key("alice"),
        bob_key = key("bob"),
        carol_key = key("carol-revoked"),
        dave_key = key("dave"),
    );
    let config = dir.join("secmail.toml");
    std::fs::write(&config, text).unwrap();
    let reporter_gpg = Gpg::empty();
    // The reporter has the team's published key (to check its signatures).
    reporter_gpg.import(&team::team_pub_path());
    reporter_gpg.run_ok(&["--batch", "--passphrase", "", "--quick-gen-key", &reporter, "future-default", "default", "never"], b"");
    let listing = String::from_utf8(reporter_gpg.run_ok(&["--with-colons", "--list-keys", &reporter], b"")).unwrap();
    let reporter_fpr = listing.lines().find(|l| l.starts_with("fpr:")).and_then(|l| l.split(':').nth(9)).unwrap().to_string();
    let members = Gpg::with_secret_keys(&["alice", "bob", "carol", "dave", "mallory", "mallory-as-alice"]);
    TeamWorld { _dir: tmp, dir, config, security, reporter, reporter_gpg, reporter_fpr, alice, bob, carol, dave, erin, members }
}

impl TeamWorld {
    /// The reporter's report, with their public key attached (as Thunderbird
    /// and Enigmail offer), so secmail pins it and answers encrypted.
    fn report(&self, subject: &str, body: &str) -> Vec<u8> {
        let key = self.reporter_gpg.run_ok(&["--armor", "--export", &self.reporter], b"");
        let key = String::from_utf8(key).unwrap().replace('\n', "\r\n");
        format!(
            "From: Rita Reporter <{r}>\r\nTo: {s}\r\nSubject: {subject}\r\nMessage-ID: <{mid}>\r\nDate: {date}\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=\"rep\"\r\n\r\n--rep\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n\
             --rep\r\nContent-Type: application/pgp-keys; name=\"key.asc\"\r\nContent-Disposition: attachment; filename=\"key.asc\"\r\n\r\n{key}\r\n--rep--\r\n",
            r = self.reporter,
            s = self.security,
            mid = team::new_message_id(),
            date = chrono::Utc::now().to_rfc2822(),
        )
        .into_bytes()
    }

    /// A draft from `member` (address) to security@ replying to `parent`.
    fn draft(&self, member: &str, parent: &str, body: &str) -> Draft {
        Draft::new(member, &self.security, "Re: [SEC-1] New report", body).replying_to(parent)
    }

    async fn send(&self, from: &str, raw: &[u8]) {
        smtp_send(from, &[&self.security], raw).await;
    }

    fn case(&self) -> Value {
        world::case_json(&self.config, "SEC-1")
    }
}

/// Mail in `user`'s INBOX from security@ of this world whose Subject contains `needle`.
async fn mail_with_subject(w: &TeamWorld, user: &str, needle: &str) -> Vec<Vec<u8>> {
    common::imap_fetch_all(user, "INBOX")
        .await
        .into_iter()
        .filter(|m| world::header(m, "Subject").contains(needle) && world::header(m, "From").contains(&w.security))
        .collect()
}

async fn wait_mail(w: &TeamWorld, user: &str, needle: &str, n: usize) -> Vec<Vec<u8>> {
    wait_for(&format!("{n} mail(s) {needle:?} for {user}"), ACK_TIMEOUT, || async {
        let m = mail_with_subject(w, user, needle).await;
        (m.len() >= n).then_some(m)
    })
    .await
}

/// The body of a PGP/MIME mail, decrypted by `gpg`: (plaintext, signer).
fn open_sealed(gpg: &Gpg, raw: &[u8]) -> (String, Option<String>) {
    let text = String::from_utf8_lossy(raw);
    let start = text.find("-----BEGIN PGP MESSAGE-----").expect("an encrypted mail");
    let end = text.find("-----END PGP MESSAGE-----").unwrap() + "-----END PGP MESSAGE-----".len();
    let (plain, verified) = gpg.decrypt(text[start..end].replace("\r\n", "\n").as_bytes());
    let signer = verified.good_by();
    (String::from_utf8_lossy(&plain).to_string(), signer)
}

/// Opens the case: a report, the ack (encrypted, the key pinned), the team
/// notice (its Message-ID is what members reply to).
async fn open_case(w: &TeamWorld) -> (Daemon, String) {
    let d = Daemon::start(&w.config);
    w.send(&w.reporter, &w.report("RCE in the upload handler", "PoC: SECRET-REPORT-TEXT")).await;
    let acks = wait_mail(w, &w.reporter, "[SEC-1] Re: RCE", 1).await;
    let (ack, _) = open_sealed(&w.reporter_gpg, &acks[0]);
    assert!(ack.contains("SEC-1"), "the ack is encrypted to the reporter's key: {ack}");
    let notes = wait_mail(w, &w.alice, "[SEC-1] New report", 1).await;
    let notice_id = world::header(&notes[0], "Message-ID");
    let c = w.case();
    assert_eq!(c["reporter_key"], w.reporter_fpr.as_str(), "the reporter's key is pinned: {c:#}");
    (d, notice_id)
}

fn events(c: &Value, kind: &str) -> Vec<Value> {
    c["events"].as_array().unwrap().iter().filter(|e| e["kind"] == kind).cloned().collect()
}

/// A signed reply is relayed to the reporter, encrypted to the reporter's
/// pinned key and signed by the team key, in the case's thread, without the
/// commands and the quoted notification, with its attachment; its commands
/// apply; the deadlines see the response; bob gets a copy. Then
/// signed-then-encrypted mail (Thunderbird), `#comment` (not relayed), and
/// the CLI on the host.
#[tokio::test(flavor = "multi_thread")]
async fn a_signed_answer_reaches_the_reporter_and_commands_steer_the_case() {
    let w = team_world("answer");
    let (mut d, notice) = open_case(&w).await;

    let body = format!(
        "#severity important\n#assign {bob}\n\nThanks, we can reproduce it. A fix is on its way.\n\nAlice\n\nOn Tue, secmail wrote:\n> New report SEC-1 from {r}.\n> PoC: SECRET-REPORT-TEXT\n",
        bob = w.bob,
        r = w.reporter
    );
    let draft = w.draft(&w.alice, &notice, &body).attach("patch.diff", "text/x-diff", b"--- a\n+++ b\n@@ fix @@\n");
    w.send(&w.alice, &team::signed(&w.members, "alice", &draft)).await;

    let relayed = wait_mail(&w, &w.reporter, "[SEC-1] Re: RCE", 2).await;
    let answer = relayed.iter().find(|m| world::header(m, "Auto-Submitted") == "no").expect("the relayed answer (Auto-Submitted: no)");
    assert!(world::header(answer, "In-Reply-To").len() > 2, "in the reporter's thread");
    let (plain, signer) = open_sealed(&w.reporter_gpg, answer);
    assert!(plain.contains("Thanks, we can reproduce it"), "{plain}");
    assert!(plain.contains("patch.diff"), "the attachment travels: {plain}");
    assert!(!plain.contains("#severity") && !plain.contains("#assign"), "commands removed: {plain}");
    assert!(!plain.contains("SECRET-REPORT-TEXT") && !plain.contains("secmail wrote"), "the quoted notification trimmed: {plain}");
    assert_eq!(signer.as_deref(), Some(team::fingerprint("team-cv25519").as_str()), "signed by the team key");
    assert!(!String::from_utf8_lossy(answer).contains("Thanks, we can reproduce"), "never in clear");

    let c = wait_for("severity and handler applied", ACK_TIMEOUT, || async {
        let c = w.case();
        (c["severity"] == "important").then_some(c)
    })
    .await;
    assert_eq!(c["handler"], w.bob.as_str());
    assert!(c["first_response_at"].is_string() && c["last_team_response_at"].is_string(), "{c:#}");
    let first = c["deadlines"].as_array().unwrap().iter().find(|d| d["kind"] == "first-response").unwrap().clone();
    assert_eq!(first["state"], "met");
    assert!(c["deadlines"].as_array().unwrap().iter().any(|d| d["kind"] == "update" && d["state"] == "pending"), "the update clock runs: {c:#}");
    let signed_in = c["messages"].as_array().unwrap().iter().find(|m| m["from"] == w.alice.as_str()).unwrap().clone();
    assert_eq!(signed_in["signer"], team::fingerprint("alice").as_str(), "case shows the signer's fingerprint");
    assert!(signed_in["signer_key_source"].as_str().unwrap().contains("configured key"), "{signed_in:#}");
    let assigned = events(&c, "assigned");
    assert!(assigned[0]["actor"].as_str().unwrap().contains(&team::fingerprint("alice")), "who, by which key: {assigned:?}");
    wait_mail(&w, &w.bob, "Team answer", 1).await;

    // Bob answers signed and encrypted (Thunderbird), with a state change.
    let draft = w.draft(&w.bob, &notice, "#state confirmed\n\nConfirmed on 2.4 and 2.5.\n").style(Style::Thunderbird);
    w.send(&w.bob, &team::signed_and_encrypted(&w.members, "bob", &draft, &team::team_pub_path())).await;
    let relayed = wait_mail(&w, &w.reporter, "[SEC-1] Re: RCE", 3).await;
    let texts: Vec<String> = relayed.iter().filter(|m| world::header(m, "Auto-Submitted") == "no").map(|m| open_sealed(&w.reporter_gpg, m).0).collect();
    assert!(texts.iter().any(|t| t.contains("Confirmed on 2.4 and 2.5")), "{texts:?}");
    wait_for("state confirmed", ACK_TIMEOUT, || async { (w.case()["state"] == "confirmed").then_some(()) }).await;

    // An internal comment is not relayed.
    let draft = w.draft(&w.alice, &notice, "#comment the fix needs a CVE\n\nInternal: ask distros later.\n");
    w.send(&w.alice, &team::signed(&w.members, "alice", &draft)).await;
    wait_for("the comment recorded", ACK_TIMEOUT, || async { (!events(&w.case(), "comment").is_empty()).then_some(()) }).await;

    // The host: the same commands, and a reply from a file.
    let out = secmail(&w.config, &["case", "SEC-1", "state", "fixing"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = secmail(&w.config, &["case", "SEC-1", "state", "new"]);
    assert!(!out.status.success(), "an invalid command from the CLI is refused");
    let file = w.dir.join("reply.txt");
    std::fs::write(&file, "Status: the fix is in review.\n").unwrap();
    let out = secmail(&w.config, &["case", "SEC-1", "reply", "--file", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let relayed = wait_mail(&w, &w.reporter, "[SEC-1] Re: RCE", 4).await;
    let texts: Vec<String> = relayed.iter().filter(|m| world::header(m, "Auto-Submitted") == "no").map(|m| open_sealed(&w.reporter_gpg, m).0).collect();
    assert!(texts.iter().any(|t| t.contains("the fix is in review")), "{texts:?}");
    assert!(!texts.iter().any(|t| t.contains("ask distros later")), "the #comment was never relayed");
    let c = w.case();
    assert_eq!(c["state"], "fixing");
    d.stop();
}

/// Everything that only claims to speak for the team: nothing applied or
/// relayed, each kept on the case flagged, the coordinator (alice) and the
/// member named told why.
#[tokio::test(flavor = "multi_thread")]
async fn forged_unsigned_wrapped_replayed_old_revoked_and_expired_mail_is_refused() {
    let w = team_world("forge");
    let (mut d, notice) = open_case(&w).await;
    // One good signed mail first (it will be wrapped, forwarded and replayed).
    let good = team::signed(&w.members, "alice", &w.draft(&w.alice, &notice, "#severity minor\n\nLooking into it.\n"));
    w.send(&w.alice, &good).await;
    wait_for("the good mail applied", ACK_TIMEOUT, || async { (w.case()["severity"] == "minor").then_some(()) }).await;
    let relays_before = wait_mail(&w, &w.reporter, "[SEC-1] Re: RCE", 2).await.len();

    let close = |body: &str| format!("#close\n\n{body}\n");
    let mut attempts: Vec<(&str, Vec<u8>)> = vec![
        ("forged From, signed by mallory", team::signed(&w.members, "mallory", &w.draft(&w.alice, &notice, &close("forged")))),
        (
            "look-alike key attached",
            team::with_key_attached(&w.members, "mallory-as-alice", "mallory-as-alice", &w.draft(&w.alice, &notice, &close("attached key")), true),
        ),
        ("unsigned", team::unsigned(&w.draft(&w.alice, &notice, &close("unsigned")))),
        ("wrapped old signed mail", team::signed_then_wrapped(&good, &w.draft(&w.alice, &notice, ""), "#close")),
        ("forwarded old signed mail", team::forwarded(&good, &w.draft(&w.alice, &notice, "#close\n\nsee attached"))),
        ("inline-signed fragment", team::inline_signed_fragment(&w.members, "alice", &w.draft(&w.alice, &notice, "#close"), "I approve")),
        ("tampered", team::tampered(&team::signed(&w.members, "alice", &w.draft(&w.alice, &notice, &close("tampered"))))),
        ("signed a month ago", team::signed_at(&w.members, "alice", &w.draft(&w.alice, &notice, &close("old")), Some(PAST))),
        ("revoked key", team::signed(&w.members, "carol", &w.draft(&w.carol, &notice, &close("revoked")))),
        ("expired key", team::signed_at(&w.members, "dave", &w.draft(&w.dave, &notice, &close("expired")), Some(PAST))),
    ];
    // A replay: the good mail's signed part under new outer headers.
    let replay = String::from_utf8_lossy(&good).replacen("Message-ID: <", "Message-ID: <replay.", 1).into_bytes();
    attempts.push(("replay", replay));
    let n = attempts.len();
    for (what, raw) in &attempts {
        let from = world::header(raw, "From");
        let from = from.rsplit('<').next().unwrap().trim_end_matches('>').to_string();
        println!("[measure] forge: sending {what} from {from}");
        w.send(&from, raw).await;
    }
    let c = wait_for(&format!("{n} refusals recorded"), ACK_TIMEOUT, || async {
        let c = w.case();
        (events(&c, "unverified-team-mail").len() >= n).then_some(c)
    })
    .await;
    for e in events(&c, "unverified-team-mail") {
        println!("[measure] forge: refused: {}", e["detail"].as_str().unwrap());
    }
    let details: Vec<String> = events(&c, "unverified-team-mail").iter().map(|e| e["detail"].as_str().unwrap().to_string()).collect();
    for needle in ["a key that is not", "not signed", "whole message", "does not verify", "older than team.max_signature_age", "revoked", "expired", "replay"] {
        assert!(details.iter().any(|d| d.contains(needle)), "a refusal says {needle:?}: {details:#?}");
    }
    assert_eq!(c["state"], "acknowledged", "nothing was applied: {c:#}");
    assert_eq!(c["severity"], "minor");
    let relays_after = mail_with_subject(&w, &w.reporter, "[SEC-1] Re: RCE").await.len();
    assert_eq!(relays_after, relays_before, "nothing relayed to the reporter");
    // The coordinator hears of every refusal; carol and dave of theirs.
    wait_mail(&w, &w.alice, "UNVERIFIED", n).await;
    wait_mail(&w, &w.carol, "UNVERIFIED", 1).await;
    wait_mail(&w, &w.dave, "UNVERIFIED", 1).await;
    d.stop();
}

/// An invalid command applies nothing from its mail and its sender gets an
/// error naming the line; a member without a key never gets report text.
#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_command_applies_nothing_and_a_member_without_a_key_gets_no_report_text() {
    let w = team_world("invalid");
    let (mut d, notice) = open_case(&w).await;
    let draft = w.draft(&w.alice, &notice, "#assign nobody@example.test\n#severity huge\n\nThis should not go out.\n");
    w.send(&w.alice, &team::signed(&w.members, "alice", &draft)).await;
    let errors = wait_mail(&w, &w.alice, "Command refused", 1).await;
    let (text, _) = open_sealed(&w.members, &errors[0]);
    assert!(text.contains("line 1") || text.contains("#assign"), "the error names the line: {text}");
    let c = w.case();
    assert!(c["handler"].is_null() && c["severity"].is_null(), "nothing applied: {c:#}");
    assert!(!events(&c, "command-refused").is_empty());
    assert_eq!(mail_with_subject(&w, &w.reporter, "[SEC-1] Re: RCE").await.len(), 1, "only the ack; nothing relayed");

    // erin has no key: her notices carry metadata only.
    let notes = wait_mail(&w, &w.erin, "[SEC-1] New report", 1).await;
    let text = String::from_utf8_lossy(&notes[0]);
    assert!(!text.contains("SECRET-REPORT-TEXT"), "no report text for a member without a key");
    assert!(text.contains("secmail case SEC-1"), "she is told where to read it");
    d.stop();
}


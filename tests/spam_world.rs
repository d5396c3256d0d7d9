//! Spam and loops, second pass (issue 15), end to end against the real
//! Postfix and Dovecot the harness starts: no answer to automatic or forged
//! mail.
//!
//! Each test proves a *negative* (no ack, no mail to ourselves), so each
//! first waits for a canary: an ordinary report sent after the message under
//! test, whose ack arrives only once the message under test was processed.
//! Then the absence is checked, without sleeping.

mod common;
mod world;

use common::{Daemon, smtp_send, wait_for};
use mail_parser::MessageParser;
use serde_json::Value;
use world::*;

/// The Message-ID an ack answers (its In-Reply-To).
fn in_reply_to(raw: &[u8]) -> String {
    header(raw, "In-Reply-To")
}

fn subject(raw: &[u8]) -> String {
    MessageParser::default().parse(raw).and_then(|m| m.subject().map(str::to_string)).unwrap_or_default()
}

fn events(case: &Value) -> Vec<(String, String)> {
    case["events"]
        .as_array()
        .map(|a| a.iter().map(|e| (e["kind"].as_str().unwrap_or("").to_string(), e["detail"].as_str().unwrap_or("").to_string())).collect())
        .unwrap_or_default()
}

/// Sends an ordinary report from `from` and waits for its ack: everything
/// sent before it has been processed (the source takes messages in order)
/// and everything queued before its ack has been sent (acks leave first).
async fn canary(w: &World, from: &str, msgid: &str, n_acks: usize) -> Vec<Vec<u8>> {
    smtp_send(from, &[&w.security], &report(from, &w.security, "Path traversal in the export endpoint", msgid, "", "GET /export?file=../../etc/passwd")).await;
    wait_for(&format!("the canary's ack in {from}'s mailbox"), ACK_TIMEOUT, || async {
        let m = inbox(from).await;
        (m.len() >= n_acks && m.iter().any(|a| in_reply_to(a) == format!("<{msgid}>"))).then_some(m)
    })
    .await
}

/// See: issue 15. An Exchange out-of-office reply (no Auto-Submitted, just
/// X-Auto-Response-Suppress and an "Automatic reply:" subject) opens no case
/// and gets no ack.
#[tokio::test(flavor = "multi_thread")]
async fn an_exchange_out_of_office_opens_no_case_and_gets_no_ack() {
    let w = world("oof", Mode::IdleStarttls);
    let mut d = Daemon::start(&w.config);
    d.wait_for_log("secmail running", std::time::Duration::from_secs(30)).await;
    let oof = report(
        &w.reporter,
        &w.security,
        "Automatic reply: Quarterly planning",
        "oof1@example.test",
        "X-Auto-Response-Suppress: All\r\nX-MS-Exchange-Inbox-Rules-Loop: someone@example.test\r\nThread-Topic: Quarterly planning\r\n",
        "I am out of the office until Monday with limited access to email.",
    );
    smtp_send(&w.reporter, &[&w.security], &oof).await;
    let mail = canary(&w, &w.reporter, "oof-canary@example.test", 1).await;

    assert_eq!(mail.len(), 1, "one ack, for the canary only: {:?}", mail.iter().map(|m| subject(m)).collect::<Vec<_>>());
    assert_eq!(in_reply_to(&mail[0]), "<oof-canary@example.test>");
    let cases = cases_json(&w.config, true);
    assert_eq!(cases.len(), 1, "only the canary opened a case: {cases:#?}");
    assert_eq!(cases[0]["subject"], "Path traversal in the export endpoint");
    assert!(d.stop().success(), "clean exit; log:\n{}", d.log());
}

/// See: issue 15. Spam whose From is forged as our own security@ address is
/// held for a human: no case, no ack, nothing sent to security@ (which would
/// come back).
#[tokio::test(flavor = "multi_thread")]
async fn spam_forged_as_our_own_address_is_held_and_nothing_goes_to_ourselves() {
    let w = world("forged", Mode::IdleStarttls);
    let mut d = Daemon::start(&w.config);
    d.wait_for_log("secmail running", std::time::Duration::from_secs(30)).await;
    let spammer = common::unique_addr("spammer-forged");
    let forged = report(&w.security, &w.security, "Your mailbox storage", "forged1@example.test", "", "Hello, please read the attached notice.");
    smtp_send(&spammer, &[&w.security], &forged).await;
    wait_filed(&w, "secmail/quarantine", 1).await;
    canary(&w, &w.reporter, "forged-canary@example.test", 1).await;
    wait_filed(&w, "secmail/processed", 1).await;

    let out = common::secmail(&w.config, &["quarantine", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let held: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(held.len(), 1, "{held:#?}");
    assert!(held[0]["rules"].as_array().unwrap().iter().any(|r| r["rule"] == "forged-own-address"), "{held:#?}");
    let cases = cases_json(&w.config, true);
    assert_eq!(cases.len(), 1, "only the canary opened a case: {cases:#?}");
    // Nothing of ours came back to the mailbox: the INBOX is empty and the
    // processed folder holds the canary alone.
    assert!(common::imap_fetch_all(&w.security, "INBOX").await.is_empty(), "mail to ourselves in the INBOX");
    let processed = common::imap_fetch_all(&w.security, "secmail/processed").await;
    assert_eq!(processed.len(), 1, "processed: {:?}", processed.iter().map(|m| subject(m)).collect::<Vec<_>>());
    assert!(d.stop().success(), "clean exit; log:\n{}", d.log());
}

/// See: issue 15. DMARC fails for the From domain, said by our own MTA (the
/// trusted authserv-id): a report is a report, so the case opens and the team
/// is told, but the ack is withheld and the case says why. The same header
/// from another authserv-id is not trusted.
#[tokio::test(flavor = "multi_thread")]
async fn a_dmarc_fail_from_the_trusted_mta_opens_a_case_without_an_ack() {
    let w = world_with("dmarc", Mode::IdleStarttls, "[spam]\ntrusted_authserv_id = \"mx.example.test\"\n");
    let mut d = Daemon::start(&w.config);
    d.wait_for_log("secmail running", std::time::Duration::from_secs(30)).await;
    let ar = "Authentication-Results: mx.example.test;\r\n\tdmarc=fail (p=reject dis=none) header.from=example.test;\r\n\tspf=fail smtp.mailfrom=example.test\r\n";
    smtp_send(&w.reporter, &[&w.security], &report(&w.reporter, &w.security, "Stored XSS in the comment preview", "dmarc1@example.test", ar, "<script>alert(1)</script> in a comment")).await;

    let case = wait_for("SEC-1 with the ack withheld, and its team notice", ACK_TIMEOUT, || async {
        let c = try_case_json(&w.config, "SEC-1")?;
        let notice = inbox(&w.member).await.into_iter().any(|m| subject(&m).starts_with("[SEC-1]"));
        (notice && events(&c).iter().any(|(k, _)| k == "ack-withheld")).then_some(c)
    })
    .await;
    let (_, why) = events(&case).into_iter().find(|(k, _)| k == "ack-withheld").unwrap();
    assert!(why.contains("dmarc=fail") && why.contains("mx.example.test"), "{why}");
    assert!(case["acknowledged_at"].is_null(), "{case:#}");

    // An untrusted authserv-id saying the same is ignored: the canary (same
    // reporter) is acked, and it is the only ack the reporter ever gets.
    let forged_ar = "Authentication-Results: mx.attacker.example; dmarc=fail header.from=example.test\r\n";
    smtp_send(&w.reporter, &[&w.security], &report(&w.reporter, &w.security, "Open redirect on the login page", "dmarc2@example.test", forged_ar, "/login?next=//evil.example")).await;
    let mail = canary(&w, &w.reporter, "dmarc-canary@example.test", 2).await;
    let answered: Vec<String> = mail.iter().map(|m| in_reply_to(m)).collect();
    assert_eq!(answered.len(), 2, "{answered:?}");
    assert!(answered.contains(&"<dmarc2@example.test>".to_string()), "{answered:?}");
    assert!(!answered.contains(&"<dmarc1@example.test>".to_string()), "no ack to the DMARC failure: {answered:?}");
    assert!(d.stop().success(), "clean exit; log:\n{}", d.log());
}

//! End-to-end: secmail driven the way its users drive it, against the real
//! Dovecot and Postfix the harness starts on 127.0.0.1. A reporter sends a report
//! over SMTP to security@; the test reads the ack from the reporter's mailbox over
//! IMAP and checks the case with `secmail cases --json`.

mod common;
mod world;

use std::time::{Duration, Instant};

use common::{Daemon, secmail, servers, smtp_send, unique_addr, wait_for, write_secret};
use mail_parser::MessageParser;
use serde_json::Value;
use world::*;

/// The full reporter journey in one mode: report → ack in the reporter's IMAP
/// inbox with the right headers → case in `cases --json`; the team is told; the
/// report is moved to the processed folder, nothing deleted.
async fn report_gets_ack(mode: Mode, tag: &str) {
    let w = world(tag, mode);
    let mut d = Daemon::start(&w.config);
    d.wait_for_log("secmail running", Duration::from_secs(30)).await;
    let sent_at = Instant::now();
    smtp_send(&w.reporter, &[&w.security], &report(&w.reporter, &w.security, "Heap overflow in parser", &format!("r1.{tag}@example.test"), "", "Details: SECRET-POC")).await;
    let acks = wait_for_mail(&w.reporter, 1, "the ack in the reporter's inbox").await;
    println!("[measure] {tag}: SMTP delivery to ack in reporter's IMAP inbox: {:?}", sent_at.elapsed());
    assert_eq!(acks.len(), 1);
    let ack = &acks[0];
    assert_eq!(header(ack, "Subject"), "[SEC-1] Re: Heap overflow in parser");
    assert_eq!(header(ack, "Auto-Submitted"), "auto-replied");
    assert_eq!(header(ack, "In-Reply-To"), format!("<r1.{tag}@example.test>"));
    assert!(header(ack, "References").contains(&format!("<r1.{tag}@example.test>")));
    assert!(header(ack, "From").contains(&w.security));
    let text = String::from_utf8_lossy(ack);
    assert!(!text.contains("SECRET-POC"), "the ack must never quote the report");

    let notes = wait_for_mail(&w.member, 1, "the team notification").await;
    assert!(header(&notes[0], "Subject").starts_with("[SEC-1] New report"));
    assert!(!String::from_utf8_lossy(&notes[0]).contains("SECRET-POC"), "no plaintext report to the team");

    let cases = wait_for("case acknowledged in cases --json", ACK_TIMEOUT, || async {
        let c = cases_json(&w.config, false);
        (c.len() == 1 && c[0]["acknowledged_at"].is_string()).then_some(c)
    })
    .await;
    let c = &cases[0];
    assert_eq!(c["id"], "SEC-1");
    assert_eq!(c["state"], "acknowledged");
    assert_eq!(c["reporter"], w.reporter.as_str());
    assert_eq!(c["subject"], "Heap overflow in parser");
    assert_eq!(c["encrypted"], false);
    assert_eq!(c["messages"], 2, "the report and the ack");
    let kinds: Vec<&str> = c["deadlines"].as_array().unwrap().iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["ack", "first-response"]);
    assert_eq!(c["deadlines"][0]["state"], "met");
    assert_eq!(c["deadlines"][1]["state"], "pending");
    for k in ["severity", "handler", "first_response_at", "last_team_response_at", "opened_at", "escalations"] {
        assert!(c.get(k).is_some(), "key {k} missing");
    }
    let detail = case_json(&w.config, "SEC-1");
    assert!(detail["messages"][0]["text"].as_str().unwrap().contains("SECRET-POC"));
    assert_eq!(detail["messages"][0]["direction"], "in");
    assert_eq!(detail["messages"][1]["direction"], "out");
    assert!(detail["events"].as_array().unwrap().iter().any(|e| e["kind"] == "ack-sent"));

    // Filed, not deleted: INBOX empty, the report in the processed folder.
    wait_for("security INBOX emptied", ACK_TIMEOUT, || async { inbox(&w.security).await.is_empty().then_some(()) }).await;
    let processed = common::imap_fetch_all(&w.security, "secmail/processed").await;
    assert_eq!(processed.len(), 1);
    assert!(d.stop().success(), "clean exit on SIGTERM; log:\n{}", d.log());
    let log = d.log();
    assert!(!log.contains("SECRET-POC"), "report text in the log");
    assert!(!log.contains(servers().password), "password in the log");
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_over_starttls_report_gets_an_ack() {
    report_gets_ack(Mode::IdleStarttls, "idle").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn polling_over_implicit_tls_report_gets_an_ack() {
    report_gets_ack(Mode::PollImplicit, "poll").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn replies_thread_by_in_reply_to_and_by_subject_tag() {
    let w = world("thread", Mode::IdleStarttls);
    let mut d = Daemon::start(&w.config);
    smtp_send(&w.reporter, &[&w.security], &report(&w.reporter, &w.security, "SQL injection", "t1@example.test", "", "first")).await;
    let acks = wait_for_mail(&w.reporter, 1, "the ack").await;
    let m = MessageParser::default().parse(&acks[0]).unwrap();
    let ack_id = m.message_id().unwrap().to_string();

    // A reply to the ack: In-Reply-To only, subject without tag.
    let extra = format!("In-Reply-To: <{ack_id}>\r\nReferences: <t1@example.test> <{ack_id}>\r\n");
    smtp_send(&w.reporter, &[&w.security], &report(&w.reporter, &w.security, "more details", "t2@example.test", &extra, "second")).await;
    // A new mail with only the tag in its subject.
    smtp_send(&w.reporter, &[&w.security], &report(&w.reporter, &w.security, "[SEC-1] PoC attached", "t3@example.test", "", "third")).await;
    // A stranger using the tag: appended but flagged.
    let stranger = unique_addr("stranger");
    smtp_send(&stranger, &[&w.security], &report(&stranger, &w.security, "Re: [SEC-1] me too", "t4@example.test", "", "fourth")).await;

    let c = wait_for("four messages in from the reporter and the stranger on SEC-1", ACK_TIMEOUT, || async {
        let c = case_json(&w.config, "SEC-1");
        let ins = c["messages"].as_array().unwrap().iter().filter(|m| m["direction"] == "in").count();
        (ins == 4).then_some(c)
    })
    .await;
    assert_eq!(cases_json(&w.config, true).len(), 1, "no second case");
    let flagged: Vec<&Value> = c["messages"].as_array().unwrap().iter().filter(|m| m["flags"] == "unknown-sender-tag").collect();
    assert_eq!(flagged.len(), 1);
    assert_eq!(flagged[0]["from"], stranger.as_str());
    // Exactly one ack ever.
    assert_eq!(inbox(&w.reporter).await.len(), 1);
    // The team heard of the new case, two follow-ups and the flag: 4 notices.
    let notes = wait_for_mail(&w.member, 4, "four team notices").await;
    assert!(notes.iter().any(|n| header(n, "Subject").contains("FLAGGED")));
    d.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_duplicate_delivery_opens_no_second_case_and_sends_no_second_ack() {
    let w = world("dup", Mode::IdleStarttls);
    let mut d = Daemon::start(&w.config);
    let raw = report(&w.reporter, &w.security, "Path traversal", "dup1@example.test", "", "same");
    smtp_send(&w.reporter, &[&w.security], &raw).await;
    wait_for_mail(&w.reporter, 1, "the ack").await;
    smtp_send(&w.reporter, &[&w.security], &raw).await;
    // The second copy is processed (filed) too...
    wait_for("both copies filed as processed", ACK_TIMEOUT, || async {
        (common::imap_fetch_all(&w.security, "secmail/processed").await.len() == 2).then_some(())
    })
    .await;
    d.wait_for_log("duplicate", Duration::from_secs(10)).await;
    // ...and changed nothing.
    assert_eq!(cases_json(&w.config, true).len(), 1);
    assert_eq!(inbox(&w.reporter).await.len(), 1);
    assert_eq!(case_json(&w.config, "SEC-1")["messages"].as_array().unwrap().len(), 2);
    d.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_mid_stream_loses_nothing_and_sends_nothing_twice() {
    let w = world("restart", Mode::IdleStarttls);
    let mut d = Daemon::start(&w.config);
    let reporters: Vec<String> = (0..6).map(|i| unique_addr(&format!("rr{i}"))).collect();
    for (i, r) in reporters.iter().enumerate().take(3) {
        smtp_send(r, &[&w.security], &report(r, &w.security, &format!("Report {i}"), &format!("rs{i}.{r}"), "", "x")).await;
    }
    // Stop as soon as the first ack is out: the rest is mid-stream.
    wait_for_mail(&reporters[0], 1, "first ack").await;
    assert!(d.stop().success());
    for (i, r) in reporters.iter().enumerate().skip(3) {
        smtp_send(r, &[&w.security], &report(r, &w.security, &format!("Report {i}"), &format!("rs{i}.{r}"), "", "x")).await;
    }
    let mut d = Daemon::start(&w.config);
    for r in &reporters {
        wait_for_mail(r, 1, &format!("ack to {r}")).await;
    }
    wait_for("six acknowledged cases", ACK_TIMEOUT, || async {
        let c = cases_json(&w.config, true);
        (c.len() == 6 && c.iter().all(|c| c["acknowledged_at"].is_string())).then_some(())
    })
    .await;
    d.stop();
    for r in &reporters {
        assert_eq!(inbox(r).await.len(), 1, "exactly one ack to {r}");
    }
    let log = std::fs::read_to_string(w.dir.join("secmail.log")).unwrap();
    assert!(log.matches("SIGTERM received").count() >= 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn automatic_mail_gets_no_answer() {
    let w = world("auto", Mode::IdleStarttls);
    let mut d = Daemon::start(&w.config);
    let ooo = report(&w.reporter, &w.security, "Out of office", "ooo@example.test", "Auto-Submitted: auto-replied\r\n", "away");
    smtp_send(&w.reporter, &[&w.security], &ooo).await;
    // Then a real report from the same person: its ack proves the first was handled.
    smtp_send(&w.reporter, &[&w.security], &report(&w.reporter, &w.security, "Real report", "real@example.test", "", "x")).await;
    let acks = wait_for_mail(&w.reporter, 1, "the ack for the real report").await;
    assert_eq!(header(&acks[0], "In-Reply-To"), "<real@example.test>");
    wait_for("both filed", ACK_TIMEOUT, || async {
        (common::imap_fetch_all(&w.security, "secmail/processed").await.len() == 2).then_some(())
    })
    .await;
    assert_eq!(inbox(&w.reporter).await.len(), 1, "no answer to the auto-reply");
    assert_eq!(cases_json(&w.config, true).len(), 1);
    d.stop();
}

/// A child process killed when the test ends, however: a daemon left behind
/// by a failed test would hold the test runner's output pipe open for ever.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn builtin_default_maildir_and_outbox_dir() {
    // The quick start: no server at all.
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let log = std::fs::File::create(root.join("log")).unwrap();
    let mut child = KillOnDrop(
        std::process::Command::new(env!("CARGO_BIN_EXE_secmail"))
            .args(["--builtin", root.to_str().unwrap(), "run"])
            .env_remove("SECMAIL_CONFIG")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let new = root.join("maildir/new");
    wait_for("maildir created", Duration::from_secs(30), || async { new.is_dir().then_some(()) }).await;
    std::fs::write(root.join("maildir/tmp/1.msg"), report("rita@example.org", "security@localhost", "XSS in search", "qs1@example.org", "", "poc")).unwrap();
    std::fs::rename(root.join("maildir/tmp/1.msg"), new.join("1.msg")).unwrap();
    // Garbage must be kept, not crash the daemon.
    std::fs::write(new.join("2.msg"), [0xffu8, 0x00, 0xfe, 0x01]).unwrap();
    let outbox = root.join("outbox");
    let ack = wait_for("the ack .eml in outbox/", Duration::from_secs(30), || async {
        std::fs::read_dir(&outbox).ok()?.filter_map(|e| e.ok()).map(|e| std::fs::read(e.path()).unwrap()).find(|raw| header(raw, "Auto-Submitted") == "auto-replied")
    })
    .await;
    assert_eq!(header(&ack, "Subject"), "[SEC-1] Re: XSS in search");
    // The report is filed; the garbage (no From, no Subject, no text) is held
    // as spam: kept in the quarantine folder, never lost.
    wait_for("the report in cur/, the garbage in quarantine", Duration::from_secs(30), || async {
        let n = |d: &str| std::fs::read_dir(root.join(d)).map(|r| r.count()).unwrap_or(0);
        (n("maildir/cur") == 1 && n("maildir/.secmail.quarantine/cur") == 1).then_some(())
    })
    .await;
    assert!(child.0.try_wait().unwrap().is_none(), "daemon still running after garbage");
    std::process::Command::new("kill").arg(child.0.id().to_string()).status().unwrap();
    assert!(child.0.wait().unwrap().success());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_secmail"))
        .args(["--builtin", root.to_str().unwrap(), "cases", "--all", "--json"])
        .output()
        .unwrap();
    let cases: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cases.as_array().unwrap().len(), 1, "{cases:#}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_secmail"))
        .args(["--builtin", root.to_str().unwrap(), "quarantine", "--json"])
        .output()
        .unwrap();
    let held: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rules: Vec<&str> = held[0]["rules"].as_array().unwrap().iter().map(|r| r["rule"].as_str().unwrap()).collect();
    assert!(rules.contains(&"empty-body"), "held with its reasons: {held:#}");
}

#[test]
fn a_broken_config_gives_one_line_per_problem_and_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("bad.toml");
    std::fs::write(&p, "[mailbox]\naddress = \"nope\"\n[imap]\nhost = \"mail.example.org\"\ntls = \"none\"\n[policy]\nfirst_response_within = \"two days\"\n").unwrap();
    let out = secmail(&p, &["check-config", "--offline"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    for want in ["mailbox.address", "imap.tls", "imap.username", "imap.password_file", "policy.first_response_within", "no transport", "team"] {
        assert_eq!(lines.iter().filter(|l| l.contains(want)).count(), 1, "{want} once in:\n{err}");
    }
    assert!(lines.iter().all(|l| l.starts_with("secmail: config: ")), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn check_config_logs_in_to_imap_and_smtp() {
    let w = world("check", Mode::IdleStarttls);
    let out = secmail(&w.config, &["check-config"]);
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("imap:") && stdout.contains("transport:"), "{stdout}");
    // A wrong password is a clear failure.
    write_secret(&w.dir, "mail.pass", "wrong");
    let out = secmail(&w.config, &["check-config"]);
    assert!(!out.status.success());
    let _ = &w.member;
}

#[tokio::test(flavor = "multi_thread")]
async fn backup_is_a_consistent_copy() {
    let w = world("backup", Mode::IdleStarttls);
    let mut d = Daemon::start(&w.config);
    smtp_send(&w.reporter, &[&w.security], &report(&w.reporter, &w.security, "Backup me", "b1@example.test", "", "x")).await;
    wait_for_mail(&w.reporter, 1, "the ack").await;
    let dest = w.dir.join("copy.db");
    let out = secmail(&w.config, &["backup", dest.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    d.stop();
    let copy_cfg = w.dir.join("copy.toml");
    let text = std::fs::read_to_string(&w.config).unwrap().replace("path = \"secmail.db\"", "path = \"copy.db\"");
    std::fs::write(&copy_cfg, text).unwrap();
    assert_eq!(cases_json(&copy_cfg, true).len(), 1);
    let _ = &w.member;
}

// ---------------------------------------------------------------- spam and loops

#[tokio::test(flavor = "multi_thread")]
async fn spam_is_held_without_ack_listed_digested_and_released_into_a_case() {
    let w = world_with("spam", Mode::IdleStarttls, "[spam]\ndigest_every = \"3s\"\n");
    let mut d = Daemon::start(&w.config);
    d.wait_for_log("secmail running", Duration::from_secs(30)).await;
    // One caught on its subject alone, one flagged upstream.
    smtp_send(&w.reporter, &[&w.security], &report(&w.reporter, &w.security, "Buy Viagra online, cheap pills, no prescription!!!", "s1@example.test", "", "buy")).await;
    smtp_send(&w.reporter, &[&w.security], &report(&w.reporter, &w.security, "Hello friend", "s2@example.test", "X-Spam-Flag: YES\r\nX-Spam-Status: Yes, score=12.3\r\n", "spam")).await;
    wait_filed(&w, "secmail/quarantine", 2).await;
    assert!(cases_json(&w.config, true).is_empty(), "no case for spam");
    let out = secmail(&w.config, &["quarantine", "--json"]);
    assert!(out.status.success());
    let held: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(held.len(), 2);
    assert_eq!(held[0]["qid"], "Q1");
    assert!(held[0]["score"].as_f64().unwrap() >= 5.0);
    assert!(!held[0]["rules"].as_array().unwrap().is_empty());
    assert!(held[1]["rules"].as_array().unwrap().iter().any(|r| r["rule"] == "x-spam-flag"));

    // The digest reaches the team.
    let digest = wait_for("the quarantine digest", ACK_TIMEOUT, || async {
        inbox(&w.member).await.into_iter().find(|m| header(m, "Subject").contains("held in quarantine"))
    })
    .await;
    let text = String::from_utf8_lossy(&digest);
    assert!(text.contains("Q1") && text.contains("Q2"), "{text}");
    assert!(inbox(&w.reporter).await.is_empty(), "no ack for spam (backscatter)");

    // Release: a case and an ack, as for any report.
    let out = secmail(&w.config, &["release", "Q2"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let acks = wait_for_mail(&w.reporter, 1, "the ack after release").await;
    assert_eq!(header(&acks[0], "In-Reply-To"), "<s2@example.test>");
    let cases = cases_json(&w.config, true);
    assert_eq!(cases.len(), 1);
    let c = case_json(&w.config, "SEC-1");
    assert!(c["events"].as_array().unwrap().iter().any(|e| e["kind"] == "released"));
    // Releasing twice is refused.
    assert!(!secmail(&w.config, &["release", "Q2"]).status.success());
    let out = secmail(&w.config, &["quarantine", "--json"]);
    let held: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(held[1]["released_case"], "SEC-1");
    assert!(held[0]["released_at"].is_null());
    d.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_out_of_office_reply_to_an_ack_starts_no_new_ack() {
    let w = world("ooo", Mode::IdleStarttls);
    let mut d = Daemon::start(&w.config);
    smtp_send(&w.reporter, &[&w.security], &report(&w.reporter, &w.security, "CSRF in settings", "o1@example.test", "", "x")).await;
    let acks = wait_for_mail(&w.reporter, 1, "the ack").await;
    let ack_id = MessageParser::default().parse(&acks[0]).unwrap().message_id().unwrap().to_string();
    let extra = format!("Auto-Submitted: auto-replied\r\nIn-Reply-To: <{ack_id}>\r\nReferences: <{ack_id}>\r\n");
    smtp_send(&w.reporter, &[&w.security], &report(&w.reporter, &w.security, "Automatic reply: [SEC-1] Re: CSRF in settings", "o2@example.test", &extra, "I am away")).await;
    wait_filed(&w, "secmail/processed", 2).await;
    let c = case_json(&w.config, "SEC-1");
    let msgs = c["messages"].as_array().unwrap();
    assert!(msgs.iter().any(|m| m["flags"].as_str().unwrap_or("").starts_with("automatic")), "{c:#}");
    assert_eq!(inbox(&w.reporter).await.len(), 1, "no second ack");
    assert_eq!(cases_json(&w.config, true).len(), 1);
    d.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_bounce_of_our_ack_lands_on_its_case() {
    // The reporter's domain does not exist: Postfix bounces our ack back to
    // security@ with a real DSN (multipart/report, empty return path).
    let w = world("bounce", Mode::IdleStarttls);
    let mut d = Daemon::start(&w.config);
    let ghost = "ghost@nowhere.invalid";
    smtp_send(ghost, &[&w.security], &report(ghost, &w.security, "Open redirect", "b1@example.test", "", "x")).await;
    let c = wait_for("the bounce recorded on SEC-1", ACK_TIMEOUT, || async {
        let c = try_case_json(&w.config, "SEC-1")?;
        c["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["direction"] == "in" && m["flags"].as_str().unwrap_or("").starts_with("automatic"))
            .then_some(c)
    })
    .await;
    assert!(c["events"].as_array().unwrap().iter().any(|e| e["kind"] == "automatic-mail"));
    assert_eq!(cases_json(&w.config, true).len(), 1, "the bounce opened no case");
    d.stop();
    let log = d.log();
    assert_eq!(log.matches("kind=ack").count(), 1, "one ack, and no reply to the bounce:\n{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_reports_from_one_sender_are_all_recorded_but_acks_are_rate_limited() {
    let w = world("flood", Mode::IdleStarttls);
    let mut d = Daemon::start(&w.config);
    for i in 0..20 {
        smtp_send(&w.reporter, &[&w.security], &report(&w.reporter, &w.security, &format!("Finding number {i}: XSS"), &format!("f{i}.{}", w.reporter), "", "x")).await;
    }
    wait_filed(&w, "secmail/processed", 20).await;
    let cases = cases_json(&w.config, true);
    assert_eq!(cases.len(), 20, "every report recorded");
    wait_for_mail(&w.reporter, 5, "five acks").await;
    d.stop();
    assert_eq!(inbox(&w.reporter).await.len(), 5, "at most 5 acks an hour to one sender");
    let suppressed = (1..=20)
        .filter(|n| {
            case_json(&w.config, &format!("SEC-{n}"))["events"].as_array().unwrap().iter().any(|e| e["kind"] == "no-ack")
        })
        .count();
    assert_eq!(suppressed, 15);
}

/// See: issue 8. `RUST_LOG=trace` used to make async-imap log the LOGIN line
/// with the password; the protocol libraries are capped at INFO.
#[tokio::test(flavor = "multi_thread")]
async fn trace_logging_never_shows_the_password() {
    let w = world("trace", Mode::IdleStarttls);
    let mut d = Daemon::start_logging(&w.config, &w.dir.join("trace.log"), "trace");
    d.wait_for_log("secmail running", Duration::from_secs(30)).await;
    smtp_send(&w.reporter, &[&w.security], &report(&w.reporter, &w.security, "Trace test", "trace1@example.test", "", "TRACE-SECRET-BODY")).await;
    wait_for_mail(&w.reporter, 1, "the ack").await;
    assert!(d.stop().success());
    let log = d.log();
    assert!(log.contains("TRACE") || log.contains("DEBUG"), "trace logging is on");
    for needle in [servers().password, "LOGIN", "AUTH PLAIN", "TRACE-SECRET-BODY"] {
        assert!(!log.contains(needle), "{needle:?} in the trace log");
    }
}

/// SIGHUP checks the config on disk and keeps the running one: a bad new
/// config is refused with one line per problem, and mail still flows.
#[tokio::test(flavor = "multi_thread")]
async fn sighup_refuses_a_bad_new_config_and_keeps_running() {
    let w = world("hup", Mode::IdleStarttls);
    let mut d = Daemon::start(&w.config);
    d.wait_for_log("secmail running", Duration::from_secs(30)).await;
    let good = std::fs::read_to_string(&w.config).unwrap();
    std::fs::write(&w.config, good.replace("[mailbox]", "[mailbox]\nbogus_key = 1").replace("case_prefix = \"SEC\"", "case_prefix = \"\"")).unwrap();
    let pid = d.pid().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    d.wait_for_log("the new config is refused", Duration::from_secs(10)).await;
    assert!(d.log().contains("SIGHUP: "), "one line per problem");
    assert!(d.try_exit_status().is_none(), "still running");
    smtp_send(&w.reporter, &[&w.security], &report(&w.reporter, &w.security, "After HUP", "hup1@example.test", "", "x")).await;
    let acks = wait_for_mail(&w.reporter, 1, "the ack after SIGHUP").await;
    assert_eq!(header(&acks[0], "Subject"), "[SEC-1] Re: After HUP");
    std::fs::write(&w.config, &good).unwrap();
    assert!(std::process::Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    d.wait_for_log("is valid; the running daemon keeps its config", Duration::from_secs(10)).await;
    assert!(d.stop().success());
}

/// `secmail status` for monitoring: 2 before the daemon ever ran and after it
/// stopped, 0 while it runs and reads mail, 1 when the server refuses the
/// configured folder (a configuration error, not an outage).
#[tokio::test(flavor = "multi_thread")]
async fn status_tells_monitoring_the_truth() {
    let code = |cfg: &std::path::Path| -> (i32, Value) {
        let out = secmail(cfg, &["status", "--json"]);
        (out.status.code().unwrap_or(-1), serde_json::from_slice(&out.stdout).unwrap_or(Value::Null))
    };
    let w = world("status", Mode::IdleStarttls);
    let (c, v) = code(&w.config);
    assert_eq!(c, 2, "never ran: {v:#}");
    let mut d = Daemon::start(&w.config);
    // The heartbeat comes every 10 s; the first one says "starting".
    let v = wait_for("status healthy and idling", ACK_TIMEOUT, || async {
        let (c, v) = code(&w.config);
        (c == 0 && v["daemon"]["source"]["state"] == "idle").then_some(v)
    })
    .await;
    assert_eq!(v["status"], "healthy", "{v:#}");
    smtp_send(&w.reporter, &[&w.security], &report(&w.reporter, &w.security, "Status check", "st1@example.test", "", "x")).await;
    wait_for_mail(&w.reporter, 1, "the ack").await;
    let (_, v) = code(&w.config);
    assert_eq!(v["next_deadline"]["case"], "SEC-1", "{v:#}");
    // The publishable numbers: one report, acked.
    let stats = wait_for("the ack in stats", ACK_TIMEOUT, || async {
        let out = secmail(&w.config, &["stats", "--json"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (v[0]["time_to_ack"]["count"] == 1).then_some(v)
    })
    .await;
    assert_eq!(stats[0]["reports"], 1, "{stats:#}");
    assert!(!stats.to_string().contains(&w.reporter), "nothing identifying");
    d.stop();
    let (c, v) = code(&w.config);
    assert_eq!(c, 2, "stopped: {v:#}");
    assert!(v["findings"][0].as_str().unwrap().contains("stopped"), "{v:#}");

    // A folder the server refuses: degraded, with the reason.
    let w = world("status-folder", Mode::IdleStarttls);
    let text = std::fs::read_to_string(&w.config).unwrap().replace("poll_interval = \"1s\"", "poll_interval = \"1s\"\nfolder = \"no-such-folder\"");
    std::fs::write(&w.config, text).unwrap();
    let mut d = Daemon::start(&w.config);
    d.wait_for_log("configuration error", ACK_TIMEOUT).await;
    let v = wait_for("status degraded", ACK_TIMEOUT, || async {
        let (c, v) = code(&w.config);
        (c == 1).then_some(v)
    })
    .await;
    assert_eq!(v["daemon"]["source"]["state"], "config-error", "{v:#}");
    d.stop();
}

/// The canary: secmail sends itself a token signed by the team key through
/// the real SMTP path; it comes back over IMAP, opens no case, is filed, and
/// `status` shows it.
#[tokio::test(flavor = "multi_thread")]
async fn the_canary_comes_back_through_the_real_path() {
    let w = world("canary", Mode::IdleStarttls);
    let key = write_secret(&w.dir, "team.sec.asc", &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/pgp/team-cv25519.sec.asc")).unwrap());
    let text = std::fs::read_to_string(&w.config).unwrap()
        + &format!("\n[openpgp]\nsecret_keys = [\"{}\"]\n\n[health]\ncanary_every = \"1h\"\ncanary_within = \"1m\"\n", key.display());
    std::fs::write(&w.config, text).unwrap();
    let mut d = Daemon::start(&w.config);
    d.wait_for_log("canary back after", ACK_TIMEOUT).await;
    let out = secmail(&w.config, &["status", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["canary"]["last_result"], "ok", "{v:#}");
    assert!(v["canary"]["last_ok"].is_string(), "{v:#}");
    let filed = common::imap_fetch_all(&w.security, "secmail/processed").await;
    assert!(filed.iter().any(|m| header(m, "Subject").starts_with("secmail canary ")), "the canary is filed");
    assert!(cases_json(&w.config, true).is_empty(), "a canary opens no case");
    d.stop();
}

/// The weekly digest, on a short period: the coordinator gets it in the
/// mailbox, listing the open case with its next deadline, how many cases were
/// opened and closed, and what the spam filter held; no report text.
#[tokio::test(flavor = "multi_thread")]
async fn the_digest_lists_open_cases_counts_and_quarantine() {
    let w = world_with("digest", Mode::IdleStarttls, "[health]\ndigest_every = \"40s\"\ncanary_every = \"0\"\n");
    let mut d = Daemon::start(&w.config);
    d.wait_for_log("secmail running", ACK_TIMEOUT).await;
    let t0 = Instant::now();
    let other = unique_addr("reporter-digest-b");
    smtp_send(&w.reporter, &[&w.security], &report(&w.reporter, &w.security, "Heap overflow in the parser", &unique_addr("dg1"), "", "Secret PoC: AAAA")).await;
    smtp_send(&other, &[&w.security], &report(&other, &w.security, "Open redirect on login", &unique_addr("dg2"), "", "PoC")).await;
    smtp_send(&other, &[&w.security], &report(&other, &w.security, "Hello friend", &unique_addr("dg3"), "X-Spam-Flag: YES\r\n", "spam")).await;
    wait_for("two cases", ACK_TIMEOUT, || async { (cases_json(&w.config, true).len() == 2).then_some(()) }).await;
    let closed = secmail(&w.config, &["case", "SEC-2", "close"]);
    assert!(closed.status.success(), "{}", String::from_utf8_lossy(&closed.stderr));
    assert!(t0.elapsed() < Duration::from_secs(40), "the mail went in within the first period ({:?}); the test needs a longer digest_every", t0.elapsed());

    let digest = wait_for("the digest in the coordinator's mailbox", Duration::from_secs(120), || async {
        inbox(&w.member).await.into_iter().find(|m| header(m, "Subject").starts_with("secmail: digest "))
    })
    .await;
    let m = MessageParser::default().parse(&digest).unwrap();
    let text = m.body_text(0).unwrap().to_string();
    assert!(text.contains("Cases opened: 2   closed: 1   open now: 1"), "{text}");
    let line = text.lines().find(|l| l.contains("SEC-1")).unwrap_or_else(|| panic!("SEC-1 listed:\n{text}"));
    assert!(line.contains("first-response") && line.contains("Heap overflow in the parser"), "{line}");
    assert!(!text.contains("Open redirect"), "a closed case is not open:\n{text}");
    assert!(text.contains("Quarantine: 1 message(s) held"), "{text}");
    assert!(!text.contains("Secret PoC"), "no report text:\n{text}");
    d.stop();
}

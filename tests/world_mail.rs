//! World mail and hostile mail, end to end against the real Dovecot and
//! Postfix the harness starts (see `tests/e2e.rs` for the style).
//!
//! - `fixtures/world/*.eml`: real-world reports in many scripts and legacy
//!   charsets, from odd but real sender addresses. `{{REPORTER}}`,
//!   `{{SECURITY}}` and `{{MSGID}}` in a fixture are replaced per test (the
//!   harness delivers only to `*@example.test`); the shape of the reporter
//!   address each fixture gets is in [`FIXTURES`].
//! - hostile mail (MIME bombs, huge headers, bad charsets, header injection,
//!   a message over the size limit, corrupt OpenPGP) is generated here: none of
//!   it may kill the daemon or stop the next report from being acked.
//! - a team member whose key has expired still gets a (metadata-only) notice.

mod common;
mod world;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use common::{Daemon, ImapSession, NET_TIMEOUT, imap_connect_starttls, smtp_send, unique_addr, wait_for, write_secret};
use futures::TryStreamExt as _;
use mail_parser::{MessageParser, MimeHeaders as _};
use serde_json::Value;
use world::*;

// ------------------------------------------------------------------ helpers

/// How long a whole batch (all fixtures, a 50 MiB message) may take.
const BATCH_TIMEOUT: Duration = Duration::from_secs(120);

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/world")
}

/// `haystack` with every `needle` replaced (fixtures are bytes: several are
/// in 8-bit legacy charsets that are not UTF-8).
fn replace_bytes(haystack: &[u8], needle: &str, with: &str) -> Vec<u8> {
    let n = needle.as_bytes();
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(n) {
            out.extend_from_slice(with.as_bytes());
            i += n.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}

/// The decoded Subject (RFC 2047) of a raw message, as a mail client shows it.
fn decoded_subject(raw: &[u8]) -> String {
    MessageParser::default()
        .parse(raw)
        .and_then(|m| m.subject().map(str::to_string))
        .unwrap_or_default()
}

/// `subject` without one leading `Re:` (any case), as the ack's `Re: ` must
/// not double it.
fn strip_re(subject: &str) -> &str {
    let t = subject.trim_start();
    match t.get(..3) {
        Some(p) if p.eq_ignore_ascii_case("re:") => t[3..].trim_start(),
        _ => t,
    }
}

fn events(case: &Value) -> Vec<(String, String)> {
    case["events"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| (e["kind"].as_str().unwrap_or("").to_string(), e["detail"].as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn has_event(case: &Value, kind: &str) -> bool {
    events(case).iter().any(|(k, _)| k == kind)
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Polls `cases --all --json` until `done` holds; on timeout panics with the
/// cases seen and the daemon log tail (so a failure says what *did* happen).
async fn wait_cases(w: &World, d: &Daemon, what: &str, timeout: Duration, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let cases = cases_json(&w.config, true);
        if done(&cases) {
            return cases;
        }
        if tokio::time::Instant::now() >= deadline {
            let list: Vec<String> = cases
                .iter()
                .map(|c| format!("  {} reporter={} subject={:?}", c["id"], c["reporter"], c["subject"]))
                .collect();
            panic!(
                "timed out after {timeout:?} waiting for {what}; cases now:\n{}\ndaemon log tail:\n{}",
                list.join("\n"),
                tail(&d.log(), 60)
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Like [`wait_for_mail`], with the daemon's log tail in the panic message.
async fn wait_mail(d: &Daemon, user: &str, n: usize, what: &str) -> Vec<Vec<u8>> {
    match poll(ACK_TIMEOUT, || async {
        let m = inbox(user).await;
        (m.len() >= n).then_some(m)
    })
    .await
    {
        Some(m) => m,
        None => panic!("timed out after {ACK_TIMEOUT:?} waiting for {what}; daemon log tail:\n{}", tail(&d.log(), 40)),
    }
}

async fn imap_session(user: &str) -> ImapSession {
    imap_connect_starttls(user).await
}

/// IMAP APPEND of `raw` into `user`'s `folder`, for messages the harness
/// Postfix would alter in transit (see the hostile test).
async fn imap_append(user: &str, folder: &str, raw: &[u8]) {
    let mut s = imap_session(user).await;
    tokio::time::timeout(NET_TIMEOUT * 4, s.append(folder, None, None, raw))
        .await
        .unwrap_or_else(|_| panic!("IMAP APPEND of {} bytes timed out", raw.len()))
        .unwrap_or_else(|e| panic!("IMAP APPEND of {} bytes into {user} {folder}: {e}", raw.len()));
    let _ = s.logout().await;
}

/// Every folder of `user`'s mailbox.
async fn imap_folders(user: &str) -> Vec<String> {
    let mut s = imap_session(user).await;
    let names: Vec<String> = {
        let stream = s.list(Some(""), Some("*")).await.expect("IMAP LIST");
        let names: Vec<_> = stream.try_collect().await.expect("IMAP LIST responses");
        names.iter().map(|n| n.name().to_string()).collect()
    };
    let _ = s.logout().await;
    names
}

/// The header section of `raw`, unfolded, one `name: value` per entry.
fn header_fields(raw: &[u8]) -> Vec<String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n"))
        .unwrap_or(raw.len());
    let text = String::from_utf8_lossy(&raw[..end]);
    let mut out: Vec<String> = Vec::new();
    for line in text.split('\n') {
        let line = line.trim_end_matches('\r');
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.push(' ');
                last.push_str(line.trim_start());
            }
        } else {
            out.push(line.to_string());
        }
    }
    out
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len() / 3 * 4 + 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 { T[(n >> 6) as usize & 63] as char } else { '=' });
        out.push(if chunk.len() > 2 { T[n as usize & 63] as char } else { '=' });
    }
    out
}

/// Base64 in 76-character CRLF lines (RFC 2045 §6.8).
fn base64_lines(data: &[u8]) -> String {
    let flat = base64(data);
    let mut out = String::with_capacity(flat.len() + flat.len() / 76 * 2 + 2);
    for line in flat.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push_str("\r\n");
    }
    out
}

/// Quoted-printable (RFC 2045 §6.7) with CRLF line breaks kept as such and
/// soft breaks every 76 characters.
fn quoted_printable(data: &[u8]) -> String {
    let mut out = String::new();
    let mut col = 0;
    let mut i = 0;
    while i < data.len() {
        if data[i..].starts_with(b"\r\n") {
            out.push_str("\r\n");
            col = 0;
            i += 2;
            continue;
        }
        let b = data[i];
        let inner_blank = (b == b' ' || b == b'\t') && !data[i + 1..].starts_with(b"\r\n") && i + 1 < data.len();
        let enc = if inner_blank || ((33..=126).contains(&b) && b != b'=') {
            (b as char).to_string()
        } else {
            format!("={b:02X}")
        };
        if col + enc.len() > 75 {
            out.push_str("=\r\n");
            col = 0;
        }
        col += enc.len();
        out.push_str(&enc);
        i += 1;
    }
    out
}

// ------------------------------------------------------------------ world mail

/// Where `{{REPORTER}}` points for one fixture.
#[derive(Clone, Copy, Debug)]
enum Reporter {
    /// A fresh harness address, as is.
    Plain,
    /// `base+detail@example.test`: Dovecot's LMTP strips the detail
    /// (recipient_delimiter `+`), so the ack lands in `base`'s INBOX.
    Plus(&'static str),
    /// The whole address upper-cased (`FOO@EXAMPLE.TEST`); Dovecot lower-cases
    /// user names, so the ack lands in the lower-case mailbox.
    Upper,
    /// `jean-luc.picard--<fresh>`: hyphens and dots in the local part.
    Hyphenated,
    /// A 64-octet local part, the RFC 5321 maximum.
    LongLocal,
    /// `o'brien-<fresh>@example.test`: valid, and lettre sends to it, but the
    /// harness cannot deliver it (Dovecot's auth_username_chars has no `'`),
    /// so the ack bounces: undeliverable by design.
    Apostrophe,
    /// `<fresh>@lab.sec-research.example.test`: hyphenated subdomains; the
    /// harness Postfix delivers only to example.test itself, so the ack
    /// bounces: undeliverable by design.
    Subdomain,
    /// The fixture's From is literal and not substituted: an address
    /// mail-parser accepts but lettre refuses to send to, so no ack can go out.
    LettreRefused(&'static str),
}

struct Fixture {
    file: &'static str,
    /// The Subject a mail client shows (what the encoded words decode to).
    subject: &'static str,
    reporter: Reporter,
}

const FIXTURES: &[Fixture] = &[
    Fixture { file: "ru-koi8r-b", subject: "Уязвимость в модуле авторизации: обход проверки токена", reporter: Reporter::Plain },
    Fixture { file: "el-iso8859-7-q", subject: "Ευπάθεια XSS στη σελίδα αναζήτησης", reporter: Reporter::Upper },
    Fixture { file: "ar-windows1256-b", subject: "ثغرة حقن SQL في صفحة تسجيل الدخول", reporter: Reporter::Hyphenated },
    Fixture { file: "he-utf8-q", subject: "פגיעות עקיפת אימות בממשק הניהול", reporter: Reporter::Plus("hackerone") },
    Fixture {
        file: "vi-utf8-b-combining",
        // Decomposed (NFD): base letters followed by combining marks.
        subject: "Lo\u{302}\u{303} ho\u{302}\u{309}ng ba\u{309}o ma\u{323}\u{302}t nghie\u{302}m tro\u{323}ng o\u{31b}\u{309} trang đa\u{306}ng nha\u{323}\u{302}p",
        reporter: Reporter::LongLocal,
    },
    Fixture { file: "zh-gb2312-b", subject: "远程代码执行漏洞报告", reporter: Reporter::Plain },
    Fixture { file: "ja-iso2022jp-b", subject: "認証回避の脆弱性について（緊急）", reporter: Reporter::Plain },
    Fixture { file: "ko-euckr-b", subject: "원격 코드 실행 취약점 제보", reporter: Reporter::Plus("bugbounty") },
    Fixture {
        file: "th-utf8-b",
        subject: "ช\u{e48}องโหว\u{e48}การย\u{e37}นย\u{e31}นต\u{e31}วตนในแอปม\u{e37}อถ\u{e37}อ",
        reporter: Reporter::Plain,
    },
    Fixture {
        file: "hi-utf8-q",
        subject: "प\u{94d}रम\u{93e}ण\u{940}करण म\u{947}\u{902} ग\u{902}भ\u{940}र स\u{941}रक\u{94d}ष\u{93e} ख\u{93e}म\u{940}",
        reporter: Reporter::Hyphenated,
    },
    Fixture { file: "emoji-first", subject: "🔥 RCE in the avatar upload handler 🔥", reporter: Reporter::Plain },
    Fixture { file: "fullwidth-latin", subject: "ＸＳＳ in ｓｅａｒｃｈ (ＣＶＳＳ ９.１)", reporter: Reporter::Upper },
    Fixture { file: "re-cyrillic", subject: "Re: Уязвимость", reporter: Reporter::Plain },
    Fixture {
        file: "zh-long-folded",
        subject: "关于贵公司网站用户中心存在多个高危安全漏洞（包括存储型跨站脚本、服务端请求伪造以及任意文件读取）的详细报告及修复建议，烦请尽快安排处理并回复确认",
        reporter: Reporter::LongLocal,
    },
    Fixture { file: "ascii-baseline", subject: "Heap overflow in the PNG decoder", reporter: Reporter::Plus("sec") },
    Fixture {
        file: "apostrophe-undeliverable",
        subject: "Stored XSS in the profile \"display name\" field",
        reporter: Reporter::Apostrophe,
    },
    Fixture { file: "subdomain-undeliverable", subject: "Open redirect in /login?next=", reporter: Reporter::Subdomain },
    Fixture {
        file: "lettre-refused-dots",
        subject: "パスワード再設定メールの脆弱性",
        reporter: Reporter::LettreRefused("taro..yamada@docomo.ne.jp"),
    },
    Fixture {
        file: "lettre-refused-quoted",
        subject: "CSRF on the account deletion endpoint",
        reporter: Reporter::LettreRefused("\"john doe\"@example.org"),
    },
];

/// One fixture made ready for this test.
struct Prepared {
    fx: &'static Fixture,
    raw: Vec<u8>,
    msgid: String,
    /// What `{{REPORTER}}` became (`None` when not substituted).
    address: Option<String>,
    /// The harness mailbox the ack lands in (`None`: nowhere, by design).
    ack_mailbox: Option<String>,
}

fn local_and_domain(addr: &str) -> (&str, &str) {
    addr.split_once('@').expect("address with @")
}

fn prepare(fx: &'static Fixture, security: &str) -> Prepared {
    let path = fixture_dir().join(format!("{}.eml", fx.file));
    let template = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let fresh = unique_addr(&format!("w-{}", fx.file.split('-').next().unwrap()));
    let (local, domain) = local_and_domain(&fresh);
    let (address, ack_mailbox) = match fx.reporter {
        Reporter::Plain => (Some(fresh.clone()), Some(fresh.clone())),
        Reporter::Plus(detail) => (Some(format!("{local}+{detail}@{domain}")), Some(fresh.clone())),
        Reporter::Upper => (Some(fresh.to_uppercase()), Some(fresh.clone())),
        Reporter::Hyphenated => {
            let a = format!("jean-luc.picard--{local}@{domain}");
            (Some(a.clone()), Some(a))
        }
        Reporter::LongLocal => {
            let pad = "security.researcher.with.a.rather.long.mailbox.name.";
            let mut l = pad[..64usize.saturating_sub(local.len()).min(pad.len())].to_string();
            l.push_str(local);
            assert!(l.len() <= 64, "{l}");
            let a = format!("{l}@{domain}");
            (Some(a.clone()), Some(a))
        }
        Reporter::Apostrophe => (Some(format!("o'brien-{local}@{domain}")), None),
        Reporter::Subdomain => (Some(format!("{local}@lab.sec-research.{domain}")), None),
        Reporter::LettreRefused(_) => (None, None),
    };
    let msgid = format!("{}.{}", fx.file, unique_addr("world"));
    let mut raw = replace_bytes(&template, "{{SECURITY}}", security);
    raw = replace_bytes(&raw, "{{MSGID}}", &msgid);
    let has_token = template.windows(12).any(|w| w == b"{{REPORTER}}");
    match (&address, fx.reporter) {
        (Some(a), _) => {
            assert!(has_token, "{}: no {{{{REPORTER}}}} to substitute", fx.file);
            raw = replace_bytes(&raw, "{{REPORTER}}", a);
        }
        (None, Reporter::LettreRefused(lit)) => {
            assert!(!has_token, "{}: a literal sender must not be substituted", fx.file);
            assert!(String::from_utf8_lossy(&raw).contains(lit), "{}: From is not {lit}", fx.file);
        }
        _ => unreachable!(),
    }
    Prepared { fx, raw, msgid, address, ack_mailbox }
}

/// The fixture set is what the table says: every file is listed, every
/// listed file exists, subjects are distinct, and every subject decodes (by
/// mail-parser, the parser secmail uses) to the table's text. So a later
/// mismatch in secmail's output is secmail's, not the fixture's.
#[test]
fn world_fixtures_decode_to_the_subjects_they_claim() {
    let mut on_disk: BTreeSet<String> = BTreeSet::new();
    for e in std::fs::read_dir(fixture_dir()).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().to_string();
        if let Some(stem) = name.strip_suffix(".eml") {
            on_disk.insert(stem.to_string());
        }
    }
    let listed: BTreeSet<String> = FIXTURES.iter().map(|f| f.file.to_string()).collect();
    assert_eq!(on_disk, listed, "fixtures/world/*.eml and FIXTURES differ");
    let subjects: BTreeSet<&str> = FIXTURES.iter().map(|f| f.subject).collect();
    assert_eq!(subjects.len(), FIXTURES.len(), "subjects must be distinct (cases are matched by subject)");
    let mut wrong = Vec::new();
    for fx in FIXTURES {
        let p = prepare(fx, "security@example.test");
        let m = MessageParser::default().parse(&p.raw).unwrap_or_else(|| panic!("{}: unparseable", fx.file));
        if m.subject() != Some(fx.subject) {
            wrong.push(format!("{} ({}): decodes to {:?}", fx.file, header(&p.raw, "Subject"), m.subject()));
        }
        let raw_subject = header(&p.raw, "Subject");
        if !fx.subject.is_ascii() {
            assert!(raw_subject.contains("=?"), "{}: a non-ASCII subject must be RFC 2047 encoded", fx.file);
        }
        for line in p.raw.split(|b| *b == b'\n') {
            assert!(line.len() <= 1000, "{}: a line over 998 octets", fx.file);
        }
        let from = m.from().and_then(|a| a.first()).and_then(|a| a.address.as_deref()).map(str::to_string);
        match fx.reporter {
            Reporter::LettreRefused(lit) => {
                // What secmail would send the ack to: the address as
                // mail-parser hands it over (quotes gone), lower-cased.
                let from = from.unwrap_or_else(|| panic!("{}: mail-parser must accept the From {lit}", fx.file));
                let to = from.trim().to_ascii_lowercase();
                println!("{}: From {lit} reads as {to:?}", fx.file);
                assert!(to.parse::<lettre::Address>().is_err(), "{}: lettre accepts {to:?} (From {lit})", fx.file);
            }
            _ => assert_eq!(from.as_deref(), p.address.as_deref(), "{}: From address", fx.file),
        }
    }
    // Multi-byte legacy charsets (ISO-2022-JP, Shift_JIS, EUC-KR, GB2312) are
    // decoded by mail-parser only with its `full_encoding` feature; without
    // it they come out as lossy UTF-8, and so would secmail's case subjects.
    assert!(
        wrong.is_empty(),
        "subjects mail-parser (as this crate builds it) does not decode as claimed \
         (multi-byte legacy charsets need mail-parser's `full_encoding` feature):\n{}",
        wrong.join("\n")
    );
}

/// Polls `f` until it yields `Some` or `timeout` passes (`None`): for checks
/// that should be reported together with others rather than end the test.
async fn poll<T, F, Fut>(timeout: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every fixture over SMTP; each becomes a case with the decoded subject, each
/// deliverable reporter gets exactly one ack `[SEC-n] Re: <subject>`, the two
/// lettre-refused senders get a case, no ack and a `no-ack` event, the team
/// hears of every case. Checks are collected and reported together, so one
/// run shows every fixture that fails and why.
#[tokio::test(flavor = "multi_thread")]
async fn every_world_report_becomes_a_case_with_one_ack() {
    let w = world("world", Mode::IdleStarttls);
    // Envelope sender of every fixture: deliverable, so Postfix has somewhere
    // to put a bounce.
    let mta = unique_addr("world-mta");
    let mut d = Daemon::start(&w.config);
    d.wait_for_log("secmail running", Duration::from_secs(30)).await;

    let prepared: Vec<Prepared> = FIXTURES.iter().map(|fx| prepare(fx, &w.security)).collect();
    for p in &prepared {
        smtp_send(&mta, &[&w.security], &p.raw).await;
    }

    let mut failures: Vec<String> = Vec::new();
    // One case per fixture, matched by the decoded subject.
    let all_there = |c: &[Value]| prepared.iter().all(|p| c.iter().any(|c| c["subject"] == p.fx.subject));
    let cases = match poll(BATCH_TIMEOUT, || async {
        let c = cases_json(&w.config, true);
        all_there(&c).then_some(c)
    })
    .await
    {
        Some(c) => c,
        None => {
            let c = cases_json(&w.config, true);
            let list: Vec<String> = c.iter().map(|c| format!("    {} reporter={} subject={:?}", c["id"], c["reporter"], c["subject"])).collect();
            failures.push(format!("after {BATCH_TIMEOUT:?} not every fixture has a case; cases:\n{}", list.join("\n")));
            c
        }
    };

    for p in &prepared {
        let found: Vec<&Value> = cases.iter().filter(|c| c["subject"] == p.fx.subject).collect();
        let [c] = found.as_slice() else {
            failures.push(format!("{}: {} cases with subject {:?}, want 1", p.fx.file, found.len(), p.fx.subject));
            continue;
        };
        let id = c["id"].as_str().unwrap().to_string();
        if let Some(a) = &p.address
            && c["reporter"] != a.to_lowercase().as_str()
        {
            failures.push(format!("{}: {id} reporter {} != {}", p.fx.file, c["reporter"], a.to_lowercase()));
        }
        match (&p.ack_mailbox, p.fx.reporter) {
            (Some(mailbox), _) => {
                let Some(acks) = poll(ACK_TIMEOUT, || async {
                    let m = inbox(mailbox).await;
                    (!m.is_empty()).then_some(m)
                })
                .await
                else {
                    failures.push(format!("{}: no ack in {mailbox} within {ACK_TIMEOUT:?}", p.fx.file));
                    continue;
                };
                let got = decoded_subject(&acks[0]);
                let want = format!("[{id}] Re: {}", strip_re(p.fx.subject));
                if got != want {
                    failures.push(format!("{}: ack Subject {got:?}, want {want:?}", p.fx.file));
                }
                if header(&acks[0], "In-Reply-To") != format!("<{}>", p.msgid) {
                    failures.push(format!("{}: ack In-Reply-To {:?}", p.fx.file, header(&acks[0], "In-Reply-To")));
                }
            }
            (None, Reporter::LettreRefused(lit)) => {
                let Some(detail) = poll(ACK_TIMEOUT, || async { try_case_json(&w.config, &id).filter(|c| has_event(c, "no-ack")) }).await
                else {
                    let evs = try_case_json(&w.config, &id).map(|c| events(&c)).unwrap_or_default();
                    failures.push(format!("{}: no no-ack event on {id} ({lit}); events: {evs:?}", p.fx.file));
                    continue;
                };
                let evs = events(&detail);
                let why = evs.iter().find(|(k, _)| k == "no-ack").map(|(_, d)| d.clone()).unwrap();
                println!("[world] {}: no-ack detail: {why}", p.fx.file);
                if why.trim().is_empty() {
                    failures.push(format!("{}: the no-ack event does not say why", p.fx.file));
                }
                if evs.iter().any(|(k, _)| k == "ack-queued" || k == "ack-sent") {
                    failures.push(format!("{}: an ack was queued for {lit}: {evs:?}", p.fx.file));
                }
            }
            (None, _) => {
                // Postfix takes the ack and the harness cannot deliver it (it
                // bounces): the case must record it as sent.
                if poll(ACK_TIMEOUT, || async { try_case_json(&w.config, &id).filter(|c| has_event(c, "ack-sent")) }).await.is_none() {
                    let evs = try_case_json(&w.config, &id).map(|c| events(&c)).unwrap_or_default();
                    failures.push(format!("{}: no ack-sent event on {id}; events: {evs:?}", p.fx.file));
                }
            }
        }
    }

    // The team heard of every case.
    let ids: Vec<String> = cases.iter().map(|c| c["id"].as_str().unwrap().to_string()).collect();
    let notified = |notes: &[Vec<u8>]| -> Vec<String> {
        let subjects: Vec<String> = notes.iter().map(|n| decoded_subject(n)).collect();
        ids.iter().filter(|id| !subjects.iter().any(|s| s.starts_with(&format!("[{id}]")))).cloned().collect()
    };
    if poll(ACK_TIMEOUT, || async { notified(&inbox(&w.member).await).is_empty().then_some(()) }).await.is_none() {
        failures.push(format!("no team notice for {:?}", notified(&inbox(&w.member).await)));
    }

    // Everything filed, nothing beyond one case per fixture, and still
    // exactly one ack per deliverable reporter (re-read after everything
    // else, the outbox included, had time to act).
    if poll(ACK_TIMEOUT, || async { inbox(&w.security).await.is_empty().then_some(()) }).await.is_none() {
        failures.push(format!("{} message(s) never left the security INBOX", inbox(&w.security).await.len()));
    }
    let n = cases_json(&w.config, true).len();
    if n != prepared.len() {
        failures.push(format!("{n} cases, want one per fixture ({})", prepared.len()));
    }
    for p in &prepared {
        if let Some(mailbox) = &p.ack_mailbox {
            let n = inbox(mailbox).await.len();
            if n > 1 {
                failures.push(format!("{}: {n} messages in {mailbox}, want exactly one ack", p.fx.file));
            }
        }
    }
    assert!(d.try_exit_status().is_none(), "the daemon died; log tail:\n{}", tail(&d.log(), 60));
    assert!(
        failures.is_empty(),
        "world mail failures:\n{}\n\ndaemon log tail:\n{}",
        failures.join("\n"),
        tail(&d.log(), 30)
    );
    assert!(d.stop().success(), "clean exit on SIGTERM; log:\n{}", tail(&d.log(), 40));
}

// ------------------------------------------------------------------ hostile mail

/// `[limits]` of the hostile test's config, spelled out so the messages below
/// can be sized against them.
const MAX_MIME_DEPTH: usize = 50;
const MAX_MIME_PARTS: usize = 1000;
const MAX_MESSAGE_SIZE: usize = 50 << 20;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Via {
    /// Over SMTP to the harness Postfix, like any sender.
    Smtp,
    /// IMAP APPEND straight into security@'s INBOX: the harness Postfix
    /// truncates a header section at `header_size_limit` (102400 bytes), so
    /// over SMTP the message would not arrive as sent.
    ImapAppend,
}

struct Hostile {
    name: &'static str,
    raw: Vec<u8>,
    via: Via,
    /// The `[limits]` keys this message exceeds: the case's `over-limit`
    /// event must name one of them (empty: not over any limit).
    over_limit: &'static [&'static str],
}

fn hostile_head(from: &str, to: &str, name: &str, msgid: &str) -> String {
    format!(
        "From: Mallory <{from}>\r\nTo: {to}\r\nSubject: hostile: {name}\r\nMessage-ID: <{msgid}>\r\n\
Date: Wed, 25 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
    )
}

/// `depth` nested `message/rfc822` entities, each just a Content-Type.
fn rfc822_chain(depth: usize) -> Vec<u8> {
    let layer = b"Content-Type: message/rfc822\r\n\r\n";
    let mut out = Vec::with_capacity(layer.len() * depth + 16);
    for _ in 0..depth {
        out.extend_from_slice(layer);
    }
    out.extend_from_slice(b"Subject: the bottom\r\n\r\nbottom\r\n");
    out
}

fn hostile_messages(from: &str, to: &str, victim: &str) -> Vec<Hostile> {
    let mid = |name: &str| format!("{name}.{}", unique_addr("hostile"));
    let head = |name: &str| hostile_head(from, to, name, &mid(name));
    let mut v = Vec::new();

    // ~40,000 nested message/rfc822 in 1.3 MB: recursion without a depth bound
    // overflows the stack.
    // (40,001 entities: over max_mime_parts as well.)
    let name = "rfc822-bomb-40000";
    let mut raw = head(name).into_bytes();
    raw.extend_from_slice(&rfc822_chain(40_000));
    assert!(raw.len() > 1_250_000, "{}", raw.len());
    v.push(Hostile { name, raw, via: Via::Smtp, over_limit: &["limits.max_mime_depth", "limits.max_mime_parts"] });

    // The same bomb at 10x the depth limit, hidden once in a base64 and once
    // in a quoted-printable message/rfc822 layer: the limit must hold after
    // decoding too. (501 entities: under max_mime_parts, so only the depth
    // limit can catch these.)
    let inner = rfc822_chain(MAX_MIME_DEPTH * 10);
    const { assert!(MAX_MIME_DEPTH * 10 + 2 < MAX_MIME_PARTS) };
    for (name, cte, body) in [
        ("rfc822-bomb-in-base64", "base64", base64_lines(&inner)),
        ("rfc822-bomb-in-quoted-printable", "quoted-printable", quoted_printable(&inner)),
    ] {
        let raw = format!("{}Content-Type: message/rfc822\r\nContent-Transfer-Encoding: {cte}\r\n\r\n{body}", head(name)).into_bytes();
        v.push(Hostile { name, raw, via: Via::Smtp, over_limit: &["limits.max_mime_depth"] });
    }

    // 5,000 nested multiparts (5,001 parts: over max_mime_parts as well).
    let name = "multipart-5000-deep";
    let mut body = String::from("Content-Type: text/plain\r\n\r\nbottom\r\n");
    for i in (0..5000).rev() {
        body = format!("Content-Type: multipart/mixed; boundary=\"d{i}\"\r\n\r\n--d{i}\r\n{body}\r\n--d{i}--\r\n");
    }
    let raw = format!("{}{body}", head(name)).into_bytes();
    v.push(Hostile { name, raw, via: Via::Smtp, over_limit: &["limits.max_mime_depth", "limits.max_mime_parts"] });

    // 10,000 parts in one multipart.
    let name = "multipart-10000-parts";
    let mut raw = format!("{}Content-Type: multipart/mixed; boundary=\"p\"\r\n\r\n", head(name));
    for i in 0..10_000 {
        raw.push_str(&format!("--p\r\nContent-Type: text/plain\r\n\r\npart {i}\r\n"));
    }
    raw.push_str("--p--\r\n");
    const { assert!(10_000 > MAX_MIME_PARTS * 5) };
    v.push(Hostile { name, raw: raw.into_bytes(), via: Via::Smtp, over_limit: &["limits.max_mime_parts"] });

    // One 2 MB header field (folded into 70-octet lines).
    let name = "header-2mb";
    let line = "a".repeat(70);
    let lines = (2 << 20) / (line.len() + 3) + 1;
    let field = format!("X-Padding: {}\r\n", vec![line.as_str(); lines].join("\r\n "));
    assert!(field.len() >= 2 << 20);
    let raw = format!("{}{field}Content-Type: text/plain\r\n\r\nbody\r\n", head(name)).into_bytes();
    v.push(Hostile { name, raw, via: Via::ImapAppend, over_limit: &["limits.max_header_size"] });

    // 100,000 message ids in References.
    let name = "references-100000";
    let refs: Vec<String> = (0..100_000).map(|i| format!("<r{i}.x@mallory.example>")).collect();
    let raw = format!("{}References: {}\r\nContent-Type: text/plain\r\n\r\nbody\r\n", head(name), refs.join("\r\n ")).into_bytes();
    v.push(Hostile { name, raw, via: Via::ImapAppend, over_limit: &["limits.max_references"] });

    // Charsets: an unknown name (subject and body), invalid UTF-8 in a utf-8
    // part (and raw in the Subject), broken base64.
    let name = "unknown-charset";
    let mut raw = format!(
        "{}Content-Type: text/plain; charset=\"x-klingon-2000\"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
        head(name).replace("Subject: hostile: unknown-charset", "Subject: hostile: unknown-charset =?x-klingon-2000?Q?Qapla=27_=FF=FE?=")
    )
    .into_bytes();
    raw.extend_from_slice(b"\xc0\xc1 tlhIngan Hol \xfe\xff\r\n");
    v.push(Hostile { name, raw, via: Via::Smtp, over_limit: &[] });

    let name = "invalid-utf8";
    // Raw invalid UTF-8 in the Subject itself, and in a utf-8 body.
    let mut raw = head(name).replace("Subject: hostile: invalid-utf8\r\n", "").into_bytes();
    raw.extend_from_slice(b"Subject: hostile: invalid-utf8 \xff\xfe\xc3\x28\r\n");
    raw.extend_from_slice(b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n");
    raw.extend_from_slice(b"overlong \xc0\xaf, surrogate \xed\xa0\x80, truncated \xe2\x82, stray \x80\x80, bom \xef\xbb\xbf\r\n");
    v.push(Hostile { name, raw, via: Via::Smtp, over_limit: &[] });

    let name = "broken-base64";
    let raw = format!(
        "{}Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: base64\r\n\r\nSGVsbG8gV29ybGQ=!!!***====\r\nZm9v YmFy=YmF6\r\n@@@@\r\nQ\r\n--b\r\n\
Content-Type: application/octet-stream; name=\"poc.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n====\r\n\x7f\x7f\r\n--b--\r\n",
        head(name).replace("Subject: hostile: broken-base64", "Subject: hostile: broken-base64 =?UTF-8?B?SGVsbG8*?= =?UTF-8?B?====?=")
    );
    v.push(Hostile { name, raw: raw.into_bytes(), via: Via::Smtp, over_limit: &[] });

    // Header injection: encoded words that decode to CRLF + Bcc. Whatever
    // secmail writes the subject into (ack, notice) must not grow a Bcc.
    let inj = format!("hi\r\nBcc: {victim}");
    let name = "crlf-subject-base64";
    let raw = format!("{}Content-Type: text/plain\r\n\r\nbody\r\n", head(name))
        .replace("Subject: hostile: crlf-subject-base64", &format!("Subject: =?UTF-8?B?{}?=", base64(inj.as_bytes())));
    v.push(Hostile { name, raw: raw.into_bytes(), via: Via::Smtp, over_limit: &[] });
    let name = "crlf-subject-q";
    let q: String = inj
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else if b == b' ' { "_".into() } else { format!("={b:02X}") })
        .collect();
    let raw = format!("{}Content-Type: text/plain\r\n\r\nbody\r\n", head(name))
        .replace("Subject: hostile: crlf-subject-q", &format!("Subject: =?UTF-8?Q?{q}?= =?UTF-8?Q?=0D=0ABcc=3A_{}?=", victim.replace('@', "=40").replace('-', "=2D")));
    v.push(Hostile { name, raw: raw.into_bytes(), via: Via::Smtp, over_limit: &[] });

    // Over max_message_size. The harness Postfix's message_size_limit is
    // 200 MiB (tests/harness/servers.sh), so this goes over SMTP like the rest.
    let name = "over-max-message-size";
    let mut raw = format!(
        "{}Content-Type: multipart/mixed; boundary=\"big\"\r\n\r\n--big\r\nContent-Type: text/plain\r\n\r\nsee attachment\r\n\
--big\r\nContent-Type: application/octet-stream; name=\"core.dump\"\r\nContent-Transfer-Encoding: base64\r\n\r\n",
        head(name)
    )
    .into_bytes();
    let line = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0\r\n";
    while raw.len() < MAX_MESSAGE_SIZE + (1 << 20) {
        raw.extend_from_slice(line);
    }
    raw.extend_from_slice(b"--big--\r\n");
    v.push(Hostile { name, raw, via: Via::Smtp, over_limit: &["limits.max_message_size"] });

    // Corrupt OpenPGP: truncated inline armor, and PGP/MIME with garbage.
    let name = "pgp-truncated-armor";
    let raw = format!(
        "{}Content-Type: text/plain; charset=us-ascii\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n\r\n\
hF4DkX3WmU1mBZ4SAQdAbW9yZSBnYXJiYWdlIHRoYW4gYSBrZXkgcGFja2V0IG91Z2h0IHRvIGJl\r\nMDEyMzQ1Njc4OWFi\r\n",
        head(name)
    );
    v.push(Hostile { name, raw: raw.into_bytes(), via: Via::Smtp, over_limit: &[] });
    let name = "pgp-mime-garbage";
    let garbage: Vec<u8> = (0u32..3000).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let raw = format!(
        "{}Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=\"enc\"\r\n\r\n\
--enc\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n--enc\r\n\
Content-Type: application/octet-stream; name=\"encrypted.asc\"\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n\r\n{}=XXXX\r\n\
-----END PGP MESSAGE-----\r\n\r\n--enc--\r\n",
        head(name),
        base64_lines(&garbage)
    );
    v.push(Hostile { name, raw: raw.into_bytes(), via: Via::Smtp, over_limit: &[] });
    v
}

/// A secret key copied into `dir` with mode 0600 (secmail insists).
fn pgp_fixture_copy(dir: &Path, name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pgp").join(name);
    write_secret(dir, name, &std::fs::read_to_string(p).unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_mail_is_kept_and_the_next_report_is_acked() {
    // The probe reporter sends one report per hostile message, and every
    // hostile message should get its ack too (the CRLF subject must reach the
    // ack): lift the per-sender rate limit. Spam scoring is out of the way so
    // every hostile message has to land on a case.
    let limits = format!(
        "[limits]\nauto_replies_per_sender_per_hour = 10000\nmax_mime_depth = {MAX_MIME_DEPTH}\n\
max_mime_parts = {MAX_MIME_PARTS}\nmax_message_size = \"50MiB\"\n\n[spam]\nthreshold = 1000.0\n"
    );
    let w = world_with("hostile", Mode::IdleStarttls, &limits);
    // A team key, so the corrupt OpenPGP really goes through decryption.
    let key = pgp_fixture_copy(&w.dir, "team-cv25519.sec.asc");
    let pass = write_secret(&w.dir, "team.pass", "fixture passphrase");
    let text = std::fs::read_to_string(&w.config).unwrap()
        + &format!("\n[openpgp]\nsecret_keys = [\"{}\"]\npassphrase_file = \"{}\"\n", key.display(), pass.display());
    std::fs::write(&w.config, text).unwrap();

    let attacker = unique_addr("mallory");
    let victim = unique_addr("victim");
    let mut all = hostile_messages(&attacker, &w.security, &victim);
    // SECMAIL_HOSTILE_ONLY=name,name runs a subset (to look at one in isolation).
    if let Ok(only) = std::env::var("SECMAIL_HOSTILE_ONLY") {
        let only: Vec<&str> = only.split(',').map(str::trim).collect();
        all.retain(|h| only.contains(&h.name));
        assert!(!all.is_empty(), "SECMAIL_HOSTILE_ONLY matches no hostile message");
    }

    let mut d = Daemon::start(&w.config);
    d.wait_for_log("secmail running", Duration::from_secs(30)).await;
    // Probe subjects: how the probes' cases are told apart.
    let probe_subject = |i: usize| format!("Probe report {i} after hostile mail");
    let is_probe = |c: &Value| c["reporter"] == w.reporter.as_str() && c["subject"].as_str().is_some_and(|s| s.starts_with("Probe report "));

    let mut seen_cases: BTreeSet<String> = BTreeSet::new();
    let mut hostile_case: Vec<(&'static str, &'static [&'static str], String)> = Vec::new();
    for (i, h) in all.iter().enumerate() {
        println!("[hostile] {} ({} bytes, via {:?})", h.name, h.raw.len(), h.via);
        match h.via {
            Via::Smtp => smtp_send(&attacker, &[&w.security], &h.raw).await,
            Via::ImapAppend => imap_append(&w.security, "INBOX", &h.raw).await,
        }
        // A fresh normal report right behind it must be acked.
        let subject = probe_subject(i + 1);
        let msgid = format!("probe{}.{}", i + 1, unique_addr("p"));
        smtp_send(&w.reporter, &[&w.security], &report(&w.reporter, &w.security, &subject, &msgid, "", "normal report")).await;
        let deadline = tokio::time::Instant::now() + ACK_TIMEOUT + Duration::from_secs(if h.raw.len() > 10 << 20 { 60 } else { 0 });
        loop {
            if let Some(status) = d.try_exit_status() {
                panic!("the daemon exited ({status}) after hostile message {}; log tail:\n{}", h.name, tail(&d.log(), 40));
            }
            let acks = inbox(&w.reporter).await;
            if acks.len() > i + 1 {
                panic!("more acks than probe reports after {}: {}", h.name, acks.len());
            }
            if acks.len() == i + 1 {
                let last = acks.iter().map(|a| header(a, "In-Reply-To")).collect::<Vec<_>>();
                assert!(last.contains(&format!("<{msgid}>")), "the ack after {} answers {last:?}", h.name);
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "no ack for the normal report sent after hostile message {} (acks so far: {}); daemon alive: {}; log tail:\n{}",
                    h.name,
                    acks.len(),
                    d.try_exit_status().is_none(),
                    tail(&d.log(), 40)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(d.try_exit_status().is_none(), "the daemon died after {}", h.name);

        // The hostile message is on a case of its own.
        let cases = wait_cases(&w, &d, &format!("a case for hostile message {}", h.name), ACK_TIMEOUT, |c| {
            c.iter().any(|c| !is_probe(c) && !seen_cases.contains(c["id"].as_str().unwrap_or("")))
        })
        .await;
        let new: Vec<String> = cases
            .iter()
            .filter(|c| !is_probe(c) && !seen_cases.contains(c["id"].as_str().unwrap_or("")))
            .map(|c| c["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(new.len(), 1, "one new case for {}: {new:?}", h.name);
        hostile_case.push((h.name, h.over_limit, new[0].clone()));
        seen_cases.extend(cases.iter().map(|c| c["id"].as_str().unwrap().to_string()));
    }

    // Every message filed: the security INBOX ends empty.
    wait_for("the security INBOX emptied", ACK_TIMEOUT, || async { inbox(&w.security).await.is_empty().then_some(()) }).await;
    let cases = cases_json(&w.config, true);
    assert!(cases.len() >= 2 * all.len(), "{} cases for {} hostile messages and as many probes", cases.len(), all.len());

    // Over-limit messages say which limit.
    let mut failures = Vec::new();
    for (name, limit, id) in &hostile_case {
        let c = case_json(&w.config, id);
        let evs = events(&c);
        println!("[hostile] {name} -> {id}: {evs:?}");
        if !limit.is_empty() && !evs.iter().any(|(k, d)| k == "over-limit" && limit.iter().any(|key| d.contains(key))) {
            failures.push(format!("{name} ({id}): no over-limit event naming {}; events: {evs:?}", limit.join(" or ")));
        }
    }

    // The header injection reached nobody.
    assert!(inbox(&victim).await.is_empty(), "the Bcc victim received mail");
    let mut boxes: Vec<(String, String)> = Vec::new();
    for user in [&attacker, &w.reporter, &w.member, &victim] {
        boxes.push((user.clone(), "INBOX".into()));
    }
    for f in imap_folders(&w.security).await {
        boxes.push((w.security.clone(), f));
    }
    for (user, folder) in &boxes {
        for raw in common::imap_fetch_all(user, folder).await {
            for f in header_fields(&raw) {
                let lower = f.to_ascii_lowercase();
                if lower.starts_with("bcc:") && lower.contains(&victim) {
                    failures.push(format!("{user} {folder}: a message carries {f:?}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "hostile mail failures:\n{}", failures.join("\n"));
    assert!(d.try_exit_status().is_none(), "the daemon died; log:\n{}", tail(&d.log(), 40));
    assert!(d.stop().success(), "clean exit on SIGTERM; log:\n{}", tail(&d.log(), 40));
}

// ------------------------------------------------------------------ expired member key

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_member_key_degrades_to_a_metadata_notice() {
    use sequoia_openpgp as openpgp;
    use openpgp::cert::prelude::*;
    use openpgp::policy::StandardPolicy;
    use openpgp::serialize::SerializeInto as _;

    let w = world("expired", Mode::IdleStarttls);
    // Made two years ago, valid for one: expired a year ago.
    let year = Duration::from_secs(365 * 24 * 3600);
    let (cert, _) = CertBuilder::new()
        .add_userid(format!("Alice <{}>", w.member))
        .set_creation_time(SystemTime::now() - 2 * year)
        .set_validity_period(Some(year))
        .add_transport_encryption_subkey()
        .generate()
        .expect("generate the member's cert");
    let policy = StandardPolicy::new();
    assert!(cert.with_policy(&policy, None).expect("valid under the policy").alive().is_err(), "the cert must be expired now");
    let armored = String::from_utf8(cert.armored().to_vec().unwrap()).unwrap();
    let key_file = write_secret(&w.dir, "alice.pub.asc", &armored);
    // A team key, so a member key would be used to seal the notice.
    let team_key = pgp_fixture_copy(&w.dir, "team-cv25519.sec.asc");
    let pass = write_secret(&w.dir, "team.pass", "fixture passphrase");
    let text = std::fs::read_to_string(&w.config).unwrap()
        + &format!(
            "\n[[team.member]]\naddress = \"{}\"\nkey_file = \"{}\"\n\n[openpgp]\nsecret_keys = [\"{}\"]\npassphrase_file = \"{}\"\n",
            w.member,
            key_file.display(),
            team_key.display(),
            pass.display()
        );
    std::fs::write(&w.config, text).unwrap();

    let mut d = Daemon::start(&w.config);
    d.wait_for_log("secmail running", Duration::from_secs(30)).await;
    let secret = format!("SECRET-POC-{}", std::process::id());
    smtp_send(&w.reporter, &[&w.security], &report(&w.reporter, &w.security, "Auth bypass in the admin API", "exp1@example.test", "", &secret)).await;

    let acks = wait_mail(&d, &w.reporter, 1, "the ack").await;
    assert_eq!(decoded_subject(&acks[0]), "[SEC-1] Re: Auth bypass in the admin API");

    // The member is also the coordinator: besides the notice, one alert says
    // that their key has expired.
    let mail = wait_for("the (degraded) team notice and the key alert", ACK_TIMEOUT, || async {
        let m = inbox(&w.member).await;
        let notice = m.iter().any(|x| decoded_subject(x).starts_with("[SEC-1]"));
        let alert = m.iter().any(|x| decoded_subject(x).contains("has expired"));
        (notice && alert).then_some(m)
    })
    .await;
    assert_eq!(mail.iter().filter(|x| decoded_subject(x).contains("has expired")).count(), 1, "one key alert");
    let note = mail.iter().find(|x| decoded_subject(x).starts_with("[SEC-1]")).unwrap();
    assert!(decoded_subject(note).starts_with("[SEC-1]"), "notice subject {:?}", decoded_subject(note));
    let text = String::from_utf8_lossy(note);
    assert!(!text.contains(&secret), "metadata only: no report text in the notice");
    assert!(!text.contains("-----BEGIN PGP MESSAGE-----"), "not encrypted to an expired key");
    let parsed = MessageParser::default().parse(note).unwrap();
    let ctype = parsed.content_type().map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or(""))).unwrap_or_default();
    assert_ne!(ctype, "multipart/encrypted", "not encrypted to an expired key");

    let c = wait_for("a notice-degraded event on SEC-1", ACK_TIMEOUT, || async {
        try_case_json(&w.config, "SEC-1").filter(|c| has_event(c, "notice-degraded"))
    })
    .await;
    println!("[expired] events: {:?}", events(&c));
    assert!(d.try_exit_status().is_none(), "the daemon died; log:\n{}", d.log());
    assert!(d.stop().success(), "clean exit on SIGTERM; log:\n{}", tail(&d.log(), 40));
}

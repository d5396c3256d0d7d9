//! Incoming mail, parsed into what the rules need (pure: bytes in, [`Parsed`] out).
//!
//! Parsing never fails: a message that cannot be understood still yields a
//! [`Parsed`] with [`Parsed::malformed`] saying why, so the pipeline keeps it raw
//! instead of losing it. Also spots automatic mail (RFC 3834 §2, RFC 3464).

use std::sync::LazyLock;

use chrono::{DateTime, TimeZone, Utc};
use mail_parser::{MessageParser, MimeHeaders};
use regex::Regex;
use sha2::{Digest, Sha256};

/// What the rules need to know about one incoming message.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    /// Message-ID without angle brackets; synthesized from the content hash when
    /// the message has none, so threading and dedupe still work.
    pub message_id: String,
    /// Whether `message_id` came from the message itself.
    pub has_message_id: bool,
    /// In-Reply-To then References, without angle brackets, oldest first.
    pub refs: Vec<String>,
    /// From address, lowercased.
    pub from: Option<String>,
    /// From display name.
    pub from_name: Option<String>,
    /// Reply-To address, lowercased.
    pub reply_to: Option<String>,
    /// Subject as sent (outer header), empty if none.
    pub subject: String,
    pub date: Option<DateTime<Utc>>,
    /// Why this is automatic mail that must never be answered (RFC 3834), if it is.
    pub automatic: Option<String>,
    /// Best-effort plain text of the body, for display to the team.
    pub text: String,
    /// Whether the message carries OpenPGP encryption (PGP/MIME or inline).
    pub encrypted: bool,
    /// The top-level Content-Type, lowercased `type/subtype` (`text/plain`
    /// when absent, RFC 2045 §5.2): a signature or encryption covers the whole
    /// message only when it is the root (`multipart/signed`, `multipart/encrypted`).
    pub root_type: String,
    /// Key that makes a second fetch of the same message a no-op: hash of the
    /// Message-ID, From, Subject and body. A duplicate delivery (same message,
    /// other Received/Delivered-To headers) has the same key.
    pub dedupe_key: String,
    /// Why the message could not be fully understood, if so.
    pub malformed: Option<String>,
    /// The `[limits]` bound it broke, if any ([`crate::prescan`]): then only its
    /// top-level headers were parsed and it is kept raw, flagged.
    pub over_limit: Option<crate::prescan::Broken>,
    /// Upstream spam signals, raw header values (SPEC §5.4).
    pub x_spam_flag: Vec<String>,
    pub x_spam_status: Vec<String>,
    pub authentication_results: Vec<String>,
    /// What the body spam signals look at ([`crate::body`]); empty for an
    /// encrypted message or one over a limit (never scored on content).
    pub shape: crate::body::BodyShape,
}

impl Parsed {
    /// Where a reply goes: Reply-To, else From (RFC 5322 §3.6.2).
    pub fn reply_address(&self) -> Option<&str> {
        self.reply_to.as_deref().or(self.from.as_deref())
    }
}

/// Limits on what is parsed (SPEC §9 `[limits]`), checked by
/// [`crate::prescan`] before mail-parser sees the bytes.
pub type ParseLimits = crate::prescan::Limits;

impl From<&crate::config::LimitsConfig> for ParseLimits {
    fn from(l: &crate::config::LimitsConfig) -> Self {
        ParseLimits {
            max_message_size: l.max_message_size,
            max_header_size: l.max_header_size,
            max_headers: l.max_headers,
            max_references: l.max_references,
            max_mime_depth: l.max_mime_depth,
            max_mime_parts: l.max_mime_parts,
        }
    }
}

/// How much body text is kept for display.
const MAX_TEXT_CHARS: usize = 256 * 1024;

/// Parse raw bytes. Never fails; see [`Parsed::malformed`]. A message over a
/// limit ([`crate::prescan`]) is parsed from its top-level header block only
/// (cut at `max_header_size`), so the parser never sees what broke the limit.
pub fn parse(raw: &[u8], limits: &ParseLimits) -> Parsed {
    let mut out = Parsed::default();
    let over = crate::prescan::scan(raw, limits).err();
    let body_start = crate::prescan::body_start(raw);
    let body = &raw[body_start..];
    let head_only;
    let to_parse: &[u8] = match &over {
        None => raw,
        Some(_) => {
            head_only = header_only(&raw[..body_start], limits.max_header_size);
            &head_only
        }
    };

    let parser = MessageParser::default();
    let parsed = if over.is_some() { parser.parse_headers(to_parse) } else { parser.parse(to_parse) };
    let Some(msg) = parsed else {
        let mut p = unparseable(raw, "not an RFC 5322 message (no headers could be parsed)");
        if let Some(b) = over {
            p.malformed = Some(format!("over a limit ({b}); kept raw, no headers could be parsed"));
            p.over_limit = Some(b);
        }
        return p;
    };

    out.has_message_id = msg.message_id().is_some_and(|m| !m.trim().is_empty());
    let first_addr = |a: Option<&mail_parser::Address<'_>>| {
        a.and_then(|a| a.first())
            .and_then(|a| a.address.as_deref())
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| s.contains('@'))
    };
    out.from = first_addr(msg.from());
    out.from_name = msg
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.name.as_deref())
        .map(str::to_string);
    out.reply_to = first_addr(msg.reply_to());
    out.subject = msg.subject().unwrap_or("").trim().to_string();
    out.date = msg.date().and_then(|d| Utc.timestamp_opt(d.to_timestamp(), 0).single());
    let mut seen_refs = std::collections::HashSet::new();
    for h in [msg.in_reply_to(), msg.references()] {
        if let Some(list) = h.as_text_list() {
            for r in list {
                let r = r.trim().trim_matches(['<', '>']);
                if out.refs.len() < limits.max_references && !r.is_empty() && seen_refs.insert(r.to_string()) {
                    out.refs.push(r.to_string());
                }
            }
        }
    }
    let raw_all = |name: &str| -> Vec<String> {
        msg.headers()
            .iter()
            .filter(|h| h.name().eq_ignore_ascii_case(name))
            .filter_map(|h| {
                let (s, e) = (h.offset_start() as usize, h.offset_end() as usize);
                to_parse.get(s..e).map(|v| unfold(&String::from_utf8_lossy(v)))
            })
            .collect()
    };
    out.x_spam_flag = raw_all("X-Spam-Flag");
    out.x_spam_status = raw_all("X-Spam-Status");
    out.authentication_results = raw_all("Authentication-Results");

    out.automatic = automatic_reason(&msg, &out, &raw_all);

    let ct = msg.root_part().content_type();
    out.root_type = match ct {
        Some(c) => format!("{}/{}", c.ctype(), c.subtype().unwrap_or("")).to_ascii_lowercase(),
        None => "text/plain".into(),
    };
    let is_pgp_mime = ct.is_some_and(|c| {
        c.ctype().eq_ignore_ascii_case("multipart")
            && c.subtype().is_some_and(|s| s.eq_ignore_ascii_case("encrypted"))
    });
    out.encrypted = is_pgp_mime || (over.is_none() && memchr::memmem::find(body, b"-----BEGIN PGP MESSAGE-----").is_some());

    let mut problems: Vec<String> = Vec::new();
    if let Some(b) = &over {
        problems.push(format!("over a limit ({b}); kept raw, body not parsed"));
    } else if !out.encrypted {
        out.shape = crate::body::shape(&msg);
        out.text = msg
            .body_text(0)
            .map(|t| t.into_owned())
            .or_else(|| msg.body_html(0).map(|h| strip_tags(&h)))
            .unwrap_or_default();
        if let Some((cut, _)) = out.text.char_indices().nth(MAX_TEXT_CHARS) {
            out.text.truncate(cut);
            out.text.push_str("\n[... truncated by secmail ...]\n");
        }
    }
    out.over_limit = over;
    if out.from.is_none() {
        problems.push("no usable From address".into());
    }
    if !out.has_message_id {
        problems.push("no Message-ID".into());
    }
    if !problems.is_empty() {
        out.malformed = Some(problems.join("; "));
    }

    let mid = msg.message_id().unwrap_or("").trim().to_string();
    out.dedupe_key = if out.has_message_id {
        hash(&[mid.as_bytes(), b"\0", out.from.as_deref().unwrap_or("").as_bytes(), b"\0", out.subject.as_bytes(), b"\0", body])
    } else {
        raw_hash(raw)
    };
    out.message_id = if out.has_message_id {
        mid.trim_matches(['<', '>']).to_string()
    } else {
        format!("{}@secmail.invalid", &out.dedupe_key[..32])
    };
    // DSNs and other automatic mail quote the message they are about; its ids thread
    // the bounce onto our case (RFC 3464 §2.1: text/rfc822-headers or message/rfc822).
    if out.automatic.is_some() {
        for id in embedded_ids(body) {
            if out.refs.len() < limits.max_references && seen_refs.insert(id.clone()) {
                out.refs.push(id);
            }
        }
    }
    out
}

/// From and Subject read straight off the top-level header block, without
/// mail-parser (for a message that may be what made the parser fail): the
/// first address-like token of From, lowercased, and the raw Subject on one
/// line (encoded words left as they are).
#[derive(Debug, Default, Clone)]
pub struct Peek {
    pub from: Option<String>,
    pub subject: String,
}

pub fn peek_headers(raw: &[u8]) -> Peek {
    static ADDR: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"[^\s<>\x22(),;:]+@[^\s<>\x22(),;:]+").expect("static regex"));
    let head = &raw[..crate::prescan::body_start(raw).min(64 * 1024)];
    let text = String::from_utf8_lossy(head);
    let mut out = Peek::default();
    let mut current: Option<(&str, String)> = None;
    let finish = |cur: Option<(&str, String)>, out: &mut Peek| match cur {
        Some(("from", v)) if out.from.is_none() => out.from = ADDR.find(&v).map(|m| m.as_str().to_ascii_lowercase()),
        Some(("subject", v)) if out.subject.is_empty() => out.subject = crate::compose::one_line(&v),
        _ => {}
    };
    for line in text.split_inclusive('\n') {
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = current.as_mut() {
                v.push_str(line);
            }
            continue;
        }
        finish(current.take(), &mut out);
        if let Some((name, v)) = line.split_once(':') {
            let name = name.trim();
            if name.eq_ignore_ascii_case("from") {
                current = Some(("from", v.to_string()));
            } else if name.eq_ignore_ascii_case("subject") {
                current = Some(("subject", v.to_string()));
            }
        }
    }
    finish(current, &mut out);
    out
}

/// The hex SHA-256 of a message's raw bytes: the dedupe key of a message kept
/// unparsed, and what processing attempts are counted under (one key, so a
/// message given up on is recognised when it is offered again).
pub fn raw_hash(raw: &[u8]) -> String {
    hash(&[raw])
}

/// A message kept without mail-parser (see [`unparseable`]), with the From and
/// Subject that [`peek_headers`] reads off it, for the case and the team.
pub fn kept_raw(raw: &[u8], why: &str) -> Parsed {
    let peek = peek_headers(raw);
    Parsed { from: peek.from, subject: peek.subject, ..unparseable(raw, why) }
}

/// What is known of a message that could not be parsed at all: its bytes, a
/// synthetic Message-ID from their hash, and why.
pub fn unparseable(raw: &[u8], why: &str) -> Parsed {
    let dedupe_key = raw_hash(raw);
    Parsed {
        message_id: format!("{}@secmail.invalid", &dedupe_key[..32]),
        dedupe_key,
        malformed: Some(why.to_string()),
        ..Parsed::default()
    }
}

/// RFC 3834 §2 and common practice: why this message is automatic, if it is.
fn automatic_reason(
    msg: &mail_parser::Message<'_>,
    p: &Parsed,
    raw_all: &dyn Fn(&str) -> Vec<String>,
) -> Option<String> {
    for v in raw_all("Auto-Submitted") {
        let v = v.trim().to_ascii_lowercase();
        let word = v.split(';').next().unwrap_or("").trim();
        if word != "no" {
            return Some(format!("Auto-Submitted: {word}"));
        }
    }
    for v in raw_all("Precedence") {
        let v = v.trim().to_ascii_lowercase();
        if matches!(v.as_str(), "bulk" | "junk" | "list" | "auto_reply") {
            return Some(format!("Precedence: {v}"));
        }
    }
    if !raw_all("List-Id").is_empty() {
        return Some("List-Id present (mailing list)".into());
    }
    for name in ["X-Autoreply", "X-Autorespond", "X-Loop", "List-Unsubscribe", "Feedback-ID"] {
        if !raw_all(name).is_empty() {
            return Some(format!("{name} present ({})", bulk_kind(name)));
        }
    }
    // Microsoft's "do not auto-reply to this" (MS-OXCMAIL §2.1.3.2.20): set
    // on Exchange out-of-office replies, which carry no Auto-Submitted.
    for v in raw_all("X-Auto-Response-Suppress") {
        if v.split(',').map(str::trim).any(|w| ["all", "oof", "autoreply"].iter().any(|s| w.eq_ignore_ascii_case(s))) {
            return Some(format!("X-Auto-Response-Suppress: {}", v.trim()));
        }
    }
    if OOF_SUBJECT.is_match(&p.subject) {
        return Some(format!("out-of-office subject ({})", crate::compose::one_line(&p.subject)));
    }
    if let Some(ct) = msg.root_part().content_type()
        && ct.ctype().eq_ignore_ascii_case("multipart")
            && ct.subtype().is_some_and(|s| s.eq_ignore_ascii_case("report"))
        {
            return Some("delivery or disposition report (multipart/report)".into());
        }
    if let Some(rp) = raw_all("Return-Path").last()
        && rp.trim() == "<>" {
            return Some("empty return path (Return-Path: <>)".into());
        }
    if let Some(from) = &p.from {
        let local = from.split('@').next().unwrap_or("");
        if matches!(
            local,
            "mailer-daemon" | "postmaster" | "noreply" | "no-reply" | "donotreply" | "do-not-reply" | "bounce" | "bounces"
        ) || local.starts_with("owner-")
            || local.ends_with("-request")
            || local.starts_with("bounce")
        {
            return Some(format!("automatic sender address ({local}@...)"));
        }
    }
    None
}

/// What a bulk or automatic header says about the mail.
fn bulk_kind(name: &str) -> &'static str {
    match name {
        "X-Loop" => "it passed an auto-responder or list already",
        "List-Unsubscribe" | "Feedback-ID" => "bulk mail",
        _ => "an auto-responder",
    }
}

/// Out-of-office and auto-reply subjects as Exchange, Outlook, Gmail,
/// Thunderbird and common webmails write them, in the common languages: the
/// phrase opens the subject (after `Re:`-style prefixes) and is followed by a
/// colon or ends it, so "Auto-reply loop in the mailer" is not one.
static OOF_SUBJECT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^\s*(?:(?:re|aw|sv|vs|tr|wg|fw|fwd|antw|odp|ynt)\s*[:：]\s*)*(?:automatic reply|auto[- ]?reply|auto[- ]?response|autoresponse|out of (?:the )?office(?: reply| autoreply| auto reply)?|away from (?:the )?office|vacation reply|abwesenheitsnotiz|automatische antwort|abwesend|réponse automatique|reponse automatique|absence du bureau|absent(?:e)? du bureau|message d'absence|respuesta automática|respuesta automatica|fuera de la oficina|resposta automática|resposta automatica|ausente do escritório|fora do escritório|risposta automatica|risposta automatica fuori sede|fuori sede|fuori ufficio|automatisch antwoord|afwezigheidsbericht|niet aanwezig|afwezig|automatisk svar|autosvar|fraværende|frånvaro|automaattinen vastaus|poissa|automatyczna odpowiedź|poza biurem|automatická odpověď|mimo kancelář|otomatik yanıt|otomatik cevap|ofis dışında|automatikus válasz|αυτόματη απάντηση|автоматический ответ|автоответ|нет на месте|вне офиса|автоматична відповідь|自動応答|自動返信|不在通知|自动回复|自動回覆|自动答复|자동 응답|부재중)\s*(?:[:：\-–—]|$)",
    )
    .expect("static regex")
});

static SUBJECT_TAG: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\[([A-Za-z0-9]{1,16})-([0-9]{1,18})\]").expect("static regex"));

/// The case number of the first `[PREFIX-n]` tag in a subject with our prefix.
pub fn subject_tag(subject: &str, prefix: &str) -> Option<i64> {
    SUBJECT_TAG
        .captures_iter(subject)
        .find(|c| c[1].eq_ignore_ascii_case(prefix))
        .and_then(|c| c[2].parse().ok())
}

static EMBEDDED_ID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?mi)^(?:Message-ID|In-Reply-To|References):[ \t]*((?:<[^>\s]+>[ \t]*)+)").expect("static regex")
});

fn embedded_ids(body: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(body);
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for c in EMBEDDED_ID.captures_iter(&text) {
        for id in c[1].split_whitespace() {
            let id = id.trim_matches(['<', '>']).to_string();
            if !id.is_empty() && seen.insert(id.clone()) {
                out.push(id);
            }
        }
    }
    out
}

fn hash(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The header value of a raw `Name: value` line, unfolded.
fn unfold(line: &str) -> String {
    let v = line.split_once(':').map(|(_, v)| v).unwrap_or(line);
    v.split(['\r', '\n']).map(str::trim).filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" ")
}

/// The top-level header block with at most `max` bytes of fields, closed with
/// an empty line, for a header-only parse. A field that does not fit (a 2 MB
/// Subject, say) is left out with its continuation lines, so the fields after
/// it (From, Message-ID) still address the ack and thread the message.
fn header_only(head: &[u8], max: usize) -> Vec<u8> {
    let mut h = Vec::with_capacity(head.len().min(max) + 4);
    let mut pos = 0;
    let mut skipping = false;
    while pos < head.len() {
        let end = memchr::memchr(b'\n', &head[pos..]).map(|i| pos + i + 1).unwrap_or(head.len());
        let line = &head[pos..end];
        let continuation = line.first().is_some_and(|c| *c == b' ' || *c == b'\t');
        if !continuation {
            // A whole field, with its continuation lines.
            let mut fend = end;
            while fend < head.len() && matches!(head[fend], b' ' | b'\t') {
                fend = memchr::memchr(b'\n', &head[fend..]).map(|i| fend + i + 1).unwrap_or(head.len());
            }
            skipping = h.len() + (fend - pos) > max;
        }
        if !skipping {
            h.extend_from_slice(line);
        }
        pos = end;
    }
    while h.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        h.pop();
    }
    h.extend_from_slice(b"\r\n\r\n");
    h
}

/// The attachments of a MIME entity (a team member's signed or decrypted
/// mail), to travel on with a relayed answer. Signatures
/// (`application/pgp-signature`) are not attachments; the entity was
/// prescanned by the caller's parse, so it is within the `[limits]`.
pub fn attachments(entity: &[u8]) -> Vec<crate::compose::Attachment> {
    let Some(msg) = MessageParser::default().parse(entity) else {
        return Vec::new();
    };
    msg.attachments()
        .filter_map(|a| {
            let ct = a.content_type().map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or("octet-stream")).to_ascii_lowercase());
            let ct = ct.unwrap_or_else(|| "application/octet-stream".into());
            if ct == "application/pgp-signature" || ct == "application/pgp-encrypted" {
                return None;
            }
            let filename = a.attachment_name().map(str::to_string).unwrap_or_else(|| "attachment".into());
            Some(crate::compose::Attachment { filename, content_type: ct, data: a.contents().to_vec() })
        })
        .collect()
}

fn strip_tags(html: &str) -> String {
    static TAG: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?s)<[^>]*>").expect("static regex"));
    TAG.replace_all(html, "").into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(raw: &str) -> Parsed {
        parse(raw.as_bytes(), &ParseLimits::default())
    }

    const REPORT: &str = "From: Rita Reporter <Rita@Example.org>\r\nTo: security@example.org\r\n\
Subject: Heap overflow in parser\r\nMessage-ID: <abc@example.org>\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\n\r\n\
The parser overflows.\r\n";

    #[test]
    fn plain_report() {
        let m = p(REPORT);
        assert_eq!(m.from.as_deref(), Some("rita@example.org"));
        assert_eq!(m.from_name.as_deref(), Some("Rita Reporter"));
        assert_eq!(m.subject, "Heap overflow in parser");
        assert_eq!(m.message_id, "abc@example.org");
        assert!(m.automatic.is_none());
        assert!(m.malformed.is_none());
        assert!(m.text.contains("overflows"));
        assert!(!m.encrypted);
    }

    #[test]
    fn duplicate_delivery_has_the_same_key() {
        let again = format!("Received: from x by y\r\nDelivered-To: security@example.org\r\n{REPORT}");
        assert_eq!(p(REPORT).dedupe_key, p(&again).dedupe_key);
        let other = REPORT.replace("overflows", "underflows");
        assert_ne!(p(REPORT).dedupe_key, p(&other).dedupe_key);
    }

    #[test]
    fn threading_headers_and_tags() {
        let m = p("From: a@b.c\r\nSubject: Re: [SEC-12] Heap\r\nIn-Reply-To: <x@y>\r\nReferences: <w@y> <x@y>\r\nMessage-ID: <z@y>\r\n\r\nhi\r\n");
        assert_eq!(m.refs, vec!["x@y".to_string(), "w@y".to_string()]);
        assert_eq!(subject_tag(&m.subject, "SEC"), Some(12));
        assert_eq!(subject_tag("[OTHER-3] [sec-4]", "SEC"), Some(4));
        assert_eq!(subject_tag("SEC-12 no brackets", "SEC"), None);
    }

    #[test]
    fn automatic_mail_is_recognised() {
        for (hdr, why) in [
            ("Auto-Submitted: auto-replied", "Auto-Submitted"),
            ("Precedence: bulk", "Precedence"),
            ("List-Id: <dev.lists.example.org>", "List-Id"),
            ("Return-Path: <>", "empty return path"),
        ] {
            let m = p(&format!("{hdr}\r\n{REPORT}"));
            assert!(m.automatic.as_deref().unwrap_or("").contains(why), "{hdr}: {:?}", m.automatic);
        }
        assert!(p(&format!("Auto-Submitted: no\r\n{REPORT}")).automatic.is_none());
        let daemon = REPORT.replace("Rita Reporter <Rita@Example.org>", "MAILER-DAEMON@example.org");
        assert!(p(&daemon).automatic.is_some());
    }

    /// See: issue 15. Automatic mail as real systems send it, without
    /// Auto-Submitted.
    #[test]
    fn automatic_mail_as_real_systems_send_it() {
        for (hdr, why) in [
            ("X-Auto-Response-Suppress: All", "X-Auto-Response-Suppress"),
            ("X-Auto-Response-Suppress: DR, OOF, AutoReply", "X-Auto-Response-Suppress"),
            ("X-Autoreply: yes", "X-Autoreply"),
            ("X-Autorespond: on vacation", "X-Autorespond"),
            ("X-Loop: security@example.org", "X-Loop"),
            ("List-Unsubscribe: <mailto:unsub@news.example>", "bulk"),
            ("Feedback-ID: 1234:campaign:mailer", "bulk"),
        ] {
            let m = p(&format!("{hdr}\r\n{REPORT}"));
            assert!(m.automatic.as_deref().unwrap_or("").contains(why), "{hdr}: {:?}", m.automatic);
        }
        // Delivery and read receipts only: not a "do not auto-reply".
        assert!(p(&format!("X-Auto-Response-Suppress: DR, RN, NRN\r\n{REPORT}")).automatic.is_none());
        for subject in [
            "Automatic reply: Heap overflow in parser",
            "Autoreply: your message",
            "Out of Office: XSS",
            "Out of office",
            "Abwesenheitsnotiz: Sicherheitslücke",
            "AW: Automatische Antwort: Test",
            "Réponse automatique : faille XSS",
            "Respuesta automática: informe",
            "Fuera de la oficina: informe",
            "Resposta automática: relatório",
            "Risposta automatica: segnalazione",
            "Automatisch antwoord: melding",
            "自動応答: 脆弱性",
            "自动回复：漏洞报告",
            "Автоматический ответ: уязвимость",
        ] {
            let m = p(&REPORT.replace("Heap overflow in parser", subject));
            assert!(m.automatic.as_deref().unwrap_or("").contains("out-of-office"), "{subject}: {:?}", m.automatic);
        }
        for subject in ["Auto-reply loop in the mailer causes a DoS", "Automatic replies can be forged", "RCE in the out of office module"] {
            let m = p(&REPORT.replace("Heap overflow in parser", subject));
            assert!(m.automatic.is_none(), "{subject}: {:?}", m.automatic);
        }
    }

    #[test]
    fn dsn_threads_by_the_quoted_message_id() {
        let dsn = "From: MAILER-DAEMON@mx.example.org\r\nTo: security@example.org\r\nSubject: Undelivered Mail\r\n\
Message-ID: <dsn1@mx>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\nfailed\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nStatus: 5.1.1\r\n\
--b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <ack-1@example.org>\r\nSubject: [SEC-1] Re: x\r\n--b--\r\n";
        let m = p(dsn);
        assert!(m.automatic.is_some());
        assert!(m.refs.contains(&"ack-1@example.org".to_string()), "{:?}", m.refs);
    }

    #[test]
    fn garbage_is_kept_with_a_reason() {
        let m = parse(&[0xff, 0xfe, 0x00, 0x01], &ParseLimits::default());
        assert!(m.malformed.is_some());
        assert!(m.message_id.ends_with("@secmail.invalid"));
        let m = p("Subject: no from, no id\r\n\r\nbody\r\n");
        let why = m.malformed.unwrap();
        assert!(why.contains("From") && why.contains("Message-ID"), "{why}");
    }

    #[test]
    fn oversize_is_flagged_not_parsed() {
        let big = format!("{REPORT}{}", "A".repeat(2000));
        let m = parse(big.as_bytes(), &ParseLimits { max_message_size: 1000, ..Default::default() });
        assert!(m.malformed.unwrap().contains("max_message_size"));
        assert_eq!(m.over_limit.unwrap().key, "limits.max_message_size");
        assert_eq!(m.from.as_deref(), Some("rita@example.org"));
        assert!(m.text.is_empty());
    }

    /// See: fuzz/regressions/parse-mailparser-debug-assert-nested-rfc822 (a
    /// debug assertion in mail-parser panicked on this in debug builds).
    #[test]
    fn forwarded_messages_parse_in_debug_builds_too() {
        let raw = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/regressions/parse-mailparser-debug-assert-nested-rfc822")).unwrap();
        let _ = parse(&raw, &ParseLimits::default());
        let seed = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/seeds/hostile-nested-rfc822.eml")).unwrap();
        let m = parse(&seed, &ParseLimits::default());
        assert!(m.over_limit.is_none() && m.from.is_some(), "{:?}", m.malformed);
    }

    /// See: fuzz/regressions/parse-over-limit-flag-lost-long-first-line.
    #[test]
    fn an_overlong_first_field_is_left_out_and_the_limit_kept() {
        let raw = format!("Subject: {}\r\nFrom: r@example.org\r\nMessage-ID: <long@x>\r\n\r\nbody\r\n", "A".repeat(2 << 20));
        let m = parse(raw.as_bytes(), &ParseLimits::default());
        assert_eq!(m.over_limit.unwrap().key, "limits.max_header_size");
        assert_eq!(m.from.as_deref(), Some("r@example.org"));
        assert_eq!(m.message_id, "long@x");
        let only = format!("X-Long: {}", "A".repeat(5000));
        let m = parse(only.as_bytes(), &ParseLimits { max_header_size: 4096, ..Default::default() });
        assert!(m.over_limit.is_some(), "the limit is kept even when no header is left");
    }

    #[test]
    fn pgp_is_detected() {
        let m = p(&REPORT.replace("The parser overflows.", "-----BEGIN PGP MESSAGE-----\r\nabc\r\n-----END PGP MESSAGE-----"));
        assert!(m.encrypted);
        assert!(m.text.is_empty());
    }
}

//! Outgoing messages (pure): the ack to the reporter and the team notifications,
//! built as RFC 5322 bytes ready for the outbox. Values and `now` in, bytes out.
//!
//! Rules carried here: acks are RFC 3834 auto-replies (`Auto-Submitted:
//! auto-replied`, In-Reply-To/References set) and never quote the report; every
//! mail about a case carries `[SEC-n]` in its Subject; team mail carries report
//! text only when `allow_plaintext_to_team` says so (until it can be encrypted).

use std::time::SystemTime;

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use lettre::message::header::{ContentTransferEncoding, ContentType, HeaderName, HeaderValue};
use lettre::message::{Body, Mailbox, Message, MessageBuilder, MultiPart, SinglePart};

use crate::case::{CaseView, Notice, case_id};
use crate::config::Config;
use crate::crypto::{self, Cert, TeamKeys};
use crate::deadline;
use crate::mail::Parsed;

/// A message held in quarantine, as the digest lists it.
#[derive(Debug, Clone)]
pub struct Held {
    pub qid: i64,
    pub held_at: DateTime<Utc>,
    pub score: f64,
    pub from: Option<String>,
    pub subject: Option<String>,
    /// JSON array of `{rule, score}`.
    pub rules: String,
}

/// A composed mail: what the outbox needs.
#[derive(Debug, Clone)]
pub struct Composed {
    /// Message-ID without angle brackets (recorded so replies thread).
    pub message_id: String,
    pub to: Vec<String>,
    pub subject: String,
    pub raw: Vec<u8>,
    /// Sealed to the recipient's key (PGP/MIME).
    pub encrypted: bool,
}

/// A fresh Message-ID on our own domain (RFC 5322 §3.6.4).
pub fn new_message_id(mailbox_address: &str) -> String {
    let domain = mailbox_address.rsplit_once('@').map(|(_, d)| d).unwrap_or("localhost");
    format!("secmail.{}@{domain}", uuid::Uuid::new_v4().simple())
}

/// The `[SEC-n] ...` subject of mail about a case: the tag first, then the
/// original subject (with `Re: ` when replying), never doubling tag or `Re:`.
/// Decoded text (any script) is handled by characters, never by byte index.
pub fn case_subject(prefix: &str, n: i64, subject: &str, reply: bool) -> String {
    let tag = format!("[{}]", case_id(prefix, n));
    let mut rest = one_line(&subject.replace(&tag, ""));
    let re = rest.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("re:"));
    if rest.is_empty() {
        rest = "your security report".into();
    }
    if reply && !re {
        format!("{tag} Re: {rest}")
    } else {
        format!("{tag} {rest}")
    }
}

/// Header-safe text: control characters (CR, LF, NUL, ESC, ...) become spaces
/// and runs of whitespace one space, so decoded text such as an encoded word
/// that hides `\r\nBcc: ...` can never start a header of its own.
pub fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether the SMTP library takes this address: one that mail-parser accepts
/// (`taro..yamada@docomo.ne.jp`, a quoted local part) may still be refused, and
/// that refusal will not heal. `Err` says why.
pub fn check_address(addr: &str) -> Result<(), String> {
    addr.parse::<lettre::Address>().map(|_| ()).map_err(|e| format!("the address {addr:?} is refused by the SMTP library ({e})"))
}

fn header(name: &'static str, value: impl Into<String>) -> HeaderValue {
    HeaderValue::new(HeaderName::new_from_ascii_str(name), value.into())
}

fn mailbox(addr: &str, name: Option<&str>) -> Result<Mailbox> {
    let address = addr.parse().with_context(|| format!("bad address {addr:?}"))?;
    Ok(Mailbox::new(name.map(str::to_string), address))
}

fn system_time(t: DateTime<Utc>) -> SystemTime {
    SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(t.timestamp_millis().max(0) as u64)
}

/// The headers every mail of ours carries: From (our address, with `from_name`),
/// To, Subject, Date, Message-ID and `Auto-Submitted` (RFC 3834 §5: `auto-replied`
/// for answers, `auto-generated` for everything else).
fn base(
    cfg: &Config,
    from_name: &str,
    to: &str,
    subject: &str,
    message_id: &str,
    auto_submitted: &'static str,
    now: DateTime<Utc>,
) -> Result<lettre::message::MessageBuilder> {
    Ok(Message::builder()
        .from(mailbox(&cfg.mailbox.address, Some(from_name))?)
        .to(mailbox(to, None)?)
        .subject(one_line(subject))
        .date(system_time(now))
        .message_id(Some(format!("<{message_id}>")))
        .raw_header(header("Auto-Submitted", auto_submitted)))
}

/// Encrypt a mail to this key and sign it with the team key (PGP/MIME, RFC 3156).
#[derive(Clone, Copy)]
pub struct Seal<'a> {
    pub to: &'a Cert,
    pub team: &'a TeamKeys,
}

/// Finish a message with a text body: plain text, or, with a [`Seal`], a
/// PGP/MIME message whose encrypted entity carries the text and the protected
/// `Subject` (which therefore may say more than the outer one).
fn finish(b: MessageBuilder, body: String, protected_subject: &str, seal: Option<Seal<'_>>, now: DateTime<Utc>) -> Result<Vec<u8>> {
    let Some(seal) = seal else {
        return Ok(b.header(ContentType::TEXT_PLAIN).body(body)?.formatted());
    };
    let crlf = body.replace("\r\n", "\n").replace('\n', "\r\n");
    let inner = format!(
        "Content-Type: text/plain; charset=utf-8; protected-headers=\"v1\"\r\n\
         Content-Transfer-Encoding: 8bit\r\n\
         Subject: {}\r\n\r\n{crlf}",
        protected_subject.replace(['\r', '\n'], " ")
    );
    let (ct, sealed) = crypto::encrypt_and_sign_mime(inner.as_bytes(), std::slice::from_ref(seal.to), seal.team, now)?;
    let ct = ContentType::parse(&ct).context("content type from the OpenPGP layer")?;
    let body = Body::new_with_encoding(sealed, ContentTransferEncoding::SevenBit)
        .map_err(|_| anyhow::anyhow!("PGP/MIME body is not 7-bit"))?;
    Ok(b.header(ct).body(body)?.formatted())
}

/// Fill `{name}` placeholders; unknown ones are left as they are.
pub fn render(template: &str, vars: &[(&str, String)]) -> String {
    let mut out = template.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

/// How the report's encryption went, as the ack tells the reporter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckNote<'a> {
    /// Not encrypted, or nothing to say.
    None,
    /// Decrypted fine.
    Decrypted,
    /// Could not be read: ask to re-encrypt to this fingerprint (if any key).
    Unreadable { team_fingerprint: Option<&'a str> },
}

/// The ack to the reporter of a new case (SPEC §5.5, RFC 3834 §3). With a
/// `seal` it is encrypted to the reporter's key and signed by the team key.
#[allow(clippy::too_many_arguments)]
pub fn ack(
    cfg: &Config,
    case: &CaseView,
    msg: &Parsed,
    to: &str,
    first_response_due: DateTime<Utc>,
    note: AckNote<'_>,
    seal: Option<Seal<'_>>,
    message_id: String,
    now: DateTime<Utc>,
) -> Result<Composed> {
    let prefix = &cfg.mailbox.case_prefix;
    let subject = case_subject(prefix, case.id, &msg.subject, true);
    let fingerprint_note = match note {
        AckNote::None => String::new(),
        AckNote::Decrypted => "\nYour message was encrypted and has been decrypted with the team key.\n".to_string(),
        AckNote::Unreadable { team_fingerprint: Some(fpr) } => format!(
            "\nWe could NOT decrypt your message. Please send it again, encrypted to the\n\
             team's OpenPGP key with fingerprint\n\n    {fpr}\n\n\
             (and to no other key). Your original message has been kept.\n"
        ),
        AckNote::Unreadable { team_fingerprint: None } => "\nWe could NOT decrypt your message: this mailbox has no OpenPGP key configured.\n\
             The team has been told and will contact you. Your original message has been kept.\n"
            .to_string(),
    };
    let body = render(
        &cfg.mailbox.ack_template_text,
        &[
            ("case_id", case_id(prefix, case.id)),
            ("first_response_due", first_response_due.format("%Y-%m-%d %H:%M UTC").to_string()),
            ("update_every", deadline::human(cfg.policy.update_every)),
            ("team_address", cfg.mailbox.address.clone()),
            ("fingerprint_note", fingerprint_note),
        ],
    );
    let mut refs: Vec<String> = msg.refs.iter().map(|r| format!("<{r}>")).collect();
    refs.push(format!("<{}>", msg.message_id));
    let b = base(cfg, &cfg.mailbox.name, to, &subject, &message_id, "auto-replied", now)?
        .in_reply_to(format!("<{}>", msg.message_id))
        .references(refs.join(" "))
        .raw_header(header("X-Auto-Response-Suppress", "All"))
        .raw_header(header("X-Secmail-Case", case_id(prefix, case.id)));
    let raw = finish(b, body, &subject, seal, now).context("building the ack")?;
    Ok(Composed { message_id, to: vec![to.to_string()], subject, raw, encrypted: seal.is_some() })
}

/// What the team may learn of a message's content.
#[derive(Debug, Clone, Copy)]
pub struct Content<'a> {
    /// The readable text (decrypted, or the plain body).
    pub text: &'a str,
    /// The protected (inner) Subject, only ever put inside encryption.
    pub protected_subject: Option<&'a str>,
    /// One line on encryption and signature, e.g. "decrypted; signature good".
    pub crypto: &'a str,
    /// What could not be done for this message (no ack, over a limit, ...).
    pub problems: &'a [String],
}

/// A notification to one team member about a message on a case. The message
/// text goes only inside encryption to the member's key (`seal`), or in clear
/// when `allow_plaintext_to_team` says so; otherwise metadata only.
#[allow(clippy::too_many_arguments)]
pub fn team_notice(
    cfg: &Config,
    case: &CaseView,
    msg: &Parsed,
    content: &Content<'_>,
    notice: &Notice,
    member: &str,
    seal: Option<Seal<'_>>,
    message_id: String,
    now: DateTime<Utc>,
) -> Result<Composed> {
    let prefix = &cfg.mailbox.case_prefix;
    let id = case_id(prefix, case.id);
    let from = msg.from.as_deref().unwrap_or("(no From)");
    let (what, headline) = match notice {
        Notice::NewCase => ("New report", format!("New report {id} from {from}.")),
        Notice::FollowUp => ("Follow-up", format!("New message on {id} from {from}.")),
        Notice::Flagged(why) => ("FLAGGED", format!("Message on {id} needs a look: {why}.")),
        Notice::UnverifiedTeamMail(why) => (
            "UNVERIFIED team mail",
            format!(
                "Mail on {id} from {from} claims to speak for the team but is not verified: {why}. \
                 It was stored as unverified; no command in it was applied and nothing was relayed \
                 to the reporter."
            ),
        ),
        Notice::TeamAnswer { by, relayed, applied } => {
            let mut h = if *relayed {
                format!("{by} answered the reporter of {id}; this is what the reporter received.")
            } else {
                format!("{by} wrote on {id} (internal: nothing was sent to the reporter).")
            };
            if !applied.is_empty() {
                h.push_str(&format!("\nApplied: {}.", applied.join("; ")));
            }
            ("Team answer", h)
        }
    };
    let case_subject = one_line(&case.subject);
    let subject = format!("[{id}] {what}: {}", if case_subject.is_empty() { "(no subject)" } else { &case_subject });
    let mut body = format!(
        "{headline}\n\n\
         Case:       {id}\n\
         State:      {state}\n\
         Reporter:   {reporter}\n\
         From:       {from}\n\
         Subject:    {subj}\n\
         Date:       {date}\n\
         Encrypted:  {enc}\n\
         OpenPGP:    {crypto}\n\
         Message-ID: <{mid}>\n",
        crypto = content.crypto,
        state = case.state,
        reporter = case.reporter,
        subj = one_line(&msg.subject),
        date = msg.date.map(|d| d.to_rfc3339()).unwrap_or_else(|| "(none)".into()),
        enc = if msg.encrypted { "yes" } else { "no" },
        mid = msg.message_id,
    );
    if let Some(why) = &msg.malformed {
        body.push_str(&format!("Problem:    {why}\n"));
    }
    for p in content.problems {
        body.push_str(&format!("Problem:    {p}\n"));
    }
    if seal.is_some() || cfg.team.allow_plaintext_to_team {
        if let (Some(ps), Some(_)) = (content.protected_subject, seal) {
            body.push_str(&format!("Protected subject: {ps}\n"));
        }
        body.push_str("\n----- message text -----\n");
        body.push_str(content.text);
        body.push_str("\n----- end of message text -----\n");
    } else {
        body.push_str(&format!(
            "\nThe message text is not in this mail: it would travel unencrypted.\n\
             Read it on the secmail host with:\n\n    secmail case {id}\n"
        ));
    }
    let b = base(cfg, "secmail", member, &subject, &message_id, "auto-generated", now)?
        .references(format!("<{}>", msg.message_id))
        .raw_header(header("X-Secmail-Case", id));
    let raw = finish(b, body, &subject, seal, now).context("building a team notification")?;
    Ok(Composed { message_id, to: vec![member.to_string()], subject, raw, encrypted: seal.is_some() })
}

/// A file travelling with a relayed answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub filename: String,
    pub content_type: String,
    pub data: Vec<u8>,
}

/// The MIME entity of a text with attachments (multipart/mixed), or `None`
/// when there are none (then the text alone is the body).
fn with_attachments(text: &str, attachments: &[Attachment]) -> Result<Option<MultiPart>> {
    if attachments.is_empty() {
        return Ok(None);
    }
    let mut mp = MultiPart::mixed().singlepart(SinglePart::plain(text.to_string()));
    for a in attachments {
        let ct = ContentType::parse(&a.content_type).unwrap_or(ContentType::parse("application/octet-stream")?);
        mp = mp.singlepart(lettre::message::Attachment::new(one_line(&a.filename)).body(a.data.clone(), ct));
    }
    Ok(Some(mp))
}

/// Finish a message whose body may carry attachments; sealed like [`finish`].
fn finish_with(b: MessageBuilder, text: String, attachments: &[Attachment], protected_subject: &str, seal: Option<Seal<'_>>, now: DateTime<Utc>) -> Result<Vec<u8>> {
    let Some(mp) = with_attachments(&text, attachments)? else {
        return finish(b, text, protected_subject, seal, now);
    };
    let Some(seal) = seal else {
        return Ok(b.multipart(mp)?.formatted());
    };
    // The protected Subject goes first among the entity's headers.
    let mut inner = format!("Subject: {}\r\n", protected_subject.replace(['\r', '\n'], " ")).into_bytes();
    inner.extend_from_slice(&mp.formatted());
    let (ct, sealed) = crypto::encrypt_and_sign_mime(&inner, std::slice::from_ref(seal.to), seal.team, now)?;
    let ct = ContentType::parse(&ct).context("content type from the OpenPGP layer")?;
    let body = Body::new_with_encoding(sealed, ContentTransferEncoding::SevenBit).map_err(|_| anyhow::anyhow!("PGP/MIME body is not 7-bit"))?;
    Ok(b.header(ct).body(body)?.formatted())
}

/// A team member's answer relayed to the reporter (SPEC §5.2): from security@,
/// in the case's thread (`[SEC-n] Re: <subject>`, In-Reply-To the reporter's
/// last message), commands already removed and the quoted notification
/// trimmed by the caller, attachments kept. Sealed to the reporter's pinned key
/// when there is one.
#[allow(clippy::too_many_arguments)]
pub fn relay(
    cfg: &Config,
    case: &CaseView,
    to: &str,
    text: &str,
    attachments: &[Attachment],
    in_reply_to: Option<&str>,
    seal: Option<Seal<'_>>,
    message_id: String,
    now: DateTime<Utc>,
) -> Result<Composed> {
    let prefix = &cfg.mailbox.case_prefix;
    let subject = case_subject(prefix, case.id, &case.subject, true);
    let mut b = base(cfg, &cfg.mailbox.name, to, &subject, &message_id, "no", now)?.raw_header(header("X-Secmail-Case", case_id(prefix, case.id)));
    if let Some(parent) = in_reply_to {
        b = b.in_reply_to(format!("<{parent}>")).references(format!("<{parent}>"));
    }
    let body = format!("{}\n", text.trim_end());
    let raw = finish_with(b, body, attachments, &subject, seal, now).context("building the relayed answer")?;
    Ok(Composed { message_id, to: vec![to.to_string()], subject, raw, encrypted: seal.is_some() })
}

/// The answer to a team member whose mail held an unknown or invalid command:
/// nothing from that mail was applied; which line, and why.
#[allow(clippy::too_many_arguments)]
pub fn command_error(cfg: &Config, case: &CaseView, member: &str, error: &str, their_message_id: &str, seal: Option<Seal<'_>>, message_id: String, now: DateTime<Utc>) -> Result<Composed> {
    let id = case_id(&cfg.mailbox.case_prefix, case.id);
    let subject = format!("[{id}] Command refused: nothing was applied");
    let body = format!(
        "Your mail <{their_message_id}> on {id} was verified, but it holds a command secmail\n\
         cannot apply:\n\n    {error}\n\n\
         Nothing from that mail was applied and nothing was sent to the reporter.\n\
         Fix the line and send the mail again (signed).\n\n\
         Commands (one per line, at the top of the mail): #comment, #assign ADDR,\n\
         #severity critical|important|moderate|minor, #state STATE, #not-security,\n\
         #duplicate {prefix}-N, #embargo RFC3339, #cve CVE-YYYY-NNNN, #release QID,\n\
         #close, #reopen.\n",
        prefix = cfg.mailbox.case_prefix
    );
    let b = base(cfg, "secmail", member, &subject, &message_id, "auto-replied", now)?
        .in_reply_to(format!("<{their_message_id}>"))
        .references(format!("<{their_message_id}>"))
        .raw_header(header("X-Secmail-Case", id));
    let raw = finish(b, body, &subject, seal, now).context("building a command error")?;
    Ok(Composed { message_id, to: vec![member.to_string()], subject, raw, encrypted: seal.is_some() })
}

/// Which deadline mail: a reminder before the deadline, or the `n`th
/// escalation after it lapsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadlineMail {
    Reminder,
    Escalation { n: u32 },
}

/// What a deadline mail says about its promise.
#[derive(Debug, Clone)]
pub struct Promise<'a> {
    /// `ack`, `first-response` or `update`.
    pub kind: &'a str,
    pub due: DateTime<Utc>,
    /// How long it has been lapsed (escalations), in the policy's time.
    pub lapsed_by: Option<std::time::Duration>,
    /// The handler, if anyone is assigned.
    pub handler: Option<&'a str>,
    /// The Message-ID the case's thread starts with.
    pub thread: Option<&'a str>,
}

/// A reminder before a deadline, or an escalation after it lapsed (SPEC §7),
/// to one team member: the case, its reporter and subject, which promise and
/// by how long, who holds it, and the exact reply that fixes it. Sealed to the
/// recipient's key when they have one; it never carries report text.
#[allow(clippy::too_many_arguments)]
pub fn deadline_mail(cfg: &Config, case: &CaseView, which: DeadlineMail, p: &Promise<'_>, to: &str, seal: Option<Seal<'_>>, message_id: String, now: DateTime<Utc>) -> Result<Composed> {
    let id = case_id(&cfg.mailbox.case_prefix, case.id);
    let promise = match p.kind {
        "ack" => "the acknowledgement to the reporter",
        "first-response" => "the first response to the reporter",
        "update" => "the next update to the reporter",
        other => other,
    };
    let due = p.due.format("%Y-%m-%d %H:%M UTC");
    let (tag, headline) = match which {
        DeadlineMail::Reminder => ("Reminder", format!("Reminder: {promise} on {id} is due at {due}.")),
        DeadlineMail::Escalation { n } => (
            "ESCALATION",
            format!(
                "ESCALATION{}: {promise} on {id} was due at {due} and is lapsed by {}.",
                if n > 1 { format!(" #{n}") } else { String::new() },
                p.lapsed_by.map(deadline::human_approx).unwrap_or_else(|| "some time".into())
            ),
        ),
    };
    let holder = match p.handler {
        Some(h) => format!("{h} (the handler)"),
        None => "nobody is assigned: the whole team".into(),
    };
    let fix = if p.kind == "ack" {
        "The ack is sent automatically: check the SMTP server (secmail's log says why it waits).".to_string()
    } else {
        format!(
            "Fix it now: reply to the last secmail notice of {id} with your answer to the\n\
             reporter, signed with your OpenPGP key (it is relayed to them, encrypted), or on\n\
             the secmail host: secmail case {id} reply --file answer.txt\n\
             To hand it over: a signed mail with the line  #assign ADDRESS  (or\n\
             secmail case {id} assign ADDRESS)."
        )
    };
    let body = format!(
        "{headline}\n\n\
         Case:      {id}\n\
         State:     {state}\n\
         Reporter:  {reporter}\n\
         Subject:   {subject}\n\
         Promise:   {promise}, due {due}\n\
         Held by:   {holder}\n\n\
         {fix}\n",
        state = case.state,
        reporter = case.reporter,
        subject = one_line(&case.subject),
    );
    let subject = format!("[{id}] {tag}: {} due {}", p.kind, p.due.format("%Y-%m-%d %H:%M UTC"));
    let mut b = base(cfg, "secmail", to, &subject, &message_id, "auto-generated", now)?.raw_header(header("X-Secmail-Case", id));
    if let Some(root) = p.thread {
        b = b.references(format!("<{root}>"));
    }
    let raw = finish(b, body, &subject, seal, now).context("building a deadline mail")?;
    Ok(Composed { message_id, to: vec![to.to_string()], subject, raw, encrypted: seal.is_some() })
}

/// The polite notice to a reporter who has not answered the team's question
/// for `policy.close_if_silent`: the case is closed, and can be reopened by writing.
pub fn closed_silent(cfg: &Config, case: &CaseView, to: &str, in_reply_to: Option<&str>, seal: Option<Seal<'_>>, message_id: String, now: DateTime<Utc>) -> Result<Composed> {
    let prefix = &cfg.mailbox.case_prefix;
    let subject = case_subject(prefix, case.id, &case.subject, true);
    let body = format!(
        "Hello,\n\n\
         we asked you a question about your report {id} and have not heard back for\n\
         {silent}, so we are closing it for now. Thank you for writing to us.\n\n\
         If you have more to tell us, just answer this mail: the team will see it on\n\
         {id}.\n\n\
         -- \n{name} <{addr}>\n",
        id = case_id(prefix, case.id),
        silent = deadline::human(cfg.policy.close_if_silent),
        name = cfg.mailbox.name,
        addr = cfg.mailbox.address,
    );
    let mut b = base(cfg, &cfg.mailbox.name, to, &subject, &message_id, "auto-generated", now)?.raw_header(header("X-Secmail-Case", case_id(prefix, case.id)));
    if let Some(parent) = in_reply_to {
        b = b.in_reply_to(format!("<{parent}>")).references(format!("<{parent}>"));
    }
    let raw = finish(b, body, &subject, seal, now).context("building the closing notice")?;
    Ok(Composed { message_id, to: vec![to.to_string()], subject, raw, encrypted: seal.is_some() })
}

/// A mail about a case whose body the caller wrote (embargo steps, the
/// `#not-security` answer, reminders to publish): from security@ (`from_name`),
/// `[SEC-n]` in the Subject, sealed when `seal` is given. `signed_only` instead
/// signs it in clear (PGP/MIME `multipart/signed`): for what is public, like an
/// advisory at the lift, but must be provably ours.
#[allow(clippy::too_many_arguments)]
pub fn note(
    cfg: &Config,
    case: &CaseView,
    to: &str,
    subject: &str,
    body: &str,
    in_reply_to: Option<&str>,
    seal: Option<Seal<'_>>,
    signed_only: Option<&TeamKeys>,
    message_id: String,
    now: DateTime<Utc>,
) -> Result<Composed> {
    let id = case_id(&cfg.mailbox.case_prefix, case.id);
    let subject = if subject.contains(&format!("[{id}]")) { subject.to_string() } else { format!("[{id}] {subject}") };
    let mut b = base(cfg, &cfg.mailbox.name, to, &subject, &message_id, "auto-generated", now)?.raw_header(header("X-Secmail-Case", id));
    if let Some(parent) = in_reply_to {
        b = b.in_reply_to(format!("<{parent}>")).references(format!("<{parent}>"));
    }
    let raw = match (seal, signed_only) {
        (None, Some(team)) => {
            // Encoded by lettre (quoted-printable for long or non-ASCII
            // lines): the signed entity is 7-bit and relays leave it alone.
            let entity = seven_bit_text(body)?;
            let (ct, signed) = crypto::sign_mime(&entity, team, now)?;
            let ct = ContentType::parse(&ct).context("content type from the OpenPGP layer")?;
            signed_message(b.header(ct), signed)?
        }
        _ => finish(b, body.to_string(), &subject, seal, now).context("building a case mail")?,
    };
    Ok(Composed { message_id, to: vec![to.to_string()], subject, raw, encrypted: seal.is_some() })
}

/// The message with a `multipart/signed` body appended as is: lettre's own
/// 7-bit check wants lines under 76 octets, while quoted-printable (RFC 2045
/// §6.7) allows 76 plus CRLF; the body is 7-bit either way.
fn signed_message(b: MessageBuilder, signed: Vec<u8>) -> Result<Vec<u8>> {
    anyhow::ensure!(signed.is_ascii(), "a signed body must be 7-bit");
    let mut raw = b.body(String::new())?.formatted();
    raw.extend_from_slice(&signed);
    Ok(raw)
}

/// A `text/plain` MIME entity in quoted-printable: 7-bit, short lines, so a
/// signature over it survives every relay (RFC 3156 §3).
fn seven_bit_text(text: &str) -> Result<Vec<u8>> {
    let body = Body::new_with_encoding(text.to_string(), ContentTransferEncoding::QuotedPrintable).map_err(|_| anyhow::anyhow!("text cannot be quoted-printable"))?;
    Ok(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(body).formatted())
}

/// An operational alert (or the note that it ended) to a team member: no case,
/// no report text; sealed to their key when they have one.
pub fn alert(cfg: &Config, to: &str, subject: &str, body: &str, seal: Option<Seal<'_>>, message_id: String, now: DateTime<Utc>) -> Result<Composed> {
    let b = base(cfg, "secmail", to, subject, &message_id, "auto-generated", now)?;
    let raw = finish(b, body.to_string(), subject, seal, now).context("building an alert")?;
    Ok(Composed { message_id, to: vec![to.to_string()], subject: subject.to_string(), raw, encrypted: seal.is_some() })
}

/// The canary: from the mailbox to itself, signed by the team key in clear
/// (it carries only its token), so it comes back provably ours.
pub fn canary(cfg: &Config, subject: &str, team: &TeamKeys, message_id: String, now: DateTime<Utc>) -> Result<Composed> {
    let b = Message::builder()
        .from(mailbox(&cfg.mailbox.address, Some("secmail canary"))?)
        .to(mailbox(&cfg.mailbox.address, None)?)
        .subject(one_line(subject))
        .date(system_time(now))
        .message_id(Some(format!("<{message_id}>")))
        .raw_header(header("Auto-Submitted", "auto-generated"));
    let text = format!("secmail sends this to itself to prove that mail to\n{} arrives and is read.\n{subject}\n", cfg.mailbox.address);
    // lettre encodes the part (quoted-printable when needed), so the signed
    // entity is 7-bit with short lines and survives every relay unchanged.
    let entity = seven_bit_text(&text)?;
    let (ct, signed) = crypto::sign_mime(&entity, team, now)?;
    let ct = ContentType::parse(&ct).context("content type from the OpenPGP layer")?;
    let raw = signed_message(b.header(ct), signed)?;
    Ok(Composed { message_id, to: vec![cfg.mailbox.address.clone()], subject: subject.to_string(), raw, encrypted: false })
}

/// The digest of messages held in quarantine since the last one (SPEC §5.4),
/// to one team member. Spam subjects travelled in clear anyway; no body is shown.
pub fn quarantine_digest(
    cfg: &Config,
    held: &[Held],
    member: &str,
    message_id: String,
    now: DateTime<Utc>,
) -> Result<Composed> {
    let subject = format!("secmail: {} message(s) held in quarantine", held.len());
    let mut body = format!(
        "These messages to {} were judged spam and held: no case was opened and no\n\
         ack was sent. Nothing was deleted. To treat one as a report, run\n\n    \
         secmail release QID\n\n",
        cfg.mailbox.address
    );
    for q in held {
        body.push_str(&format!(
            "Q{:<6} {}  score {:>5.1}  from {}\n        subject: {}\n        rules: {}\n",
            q.qid,
            q.held_at.format("%Y-%m-%d %H:%M"),
            q.score,
            q.from.as_deref().unwrap_or("(none)"),
            one_line(q.subject.as_deref().unwrap_or("")),
            rules_summary(&q.rules),
        ));
    }
    let m = base(cfg, "secmail", member, &subject, &message_id, "auto-generated", now)?
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .context("building the quarantine digest")?;
    Ok(Composed { message_id, to: vec![member.to_string()], subject, raw: m.formatted(), encrypted: false })
}

/// `rule (+score), ...` from the stored JSON list of rule hits.
pub fn rules_summary(rules_json: &str) -> String {
    let hits: Vec<serde_json::Value> = serde_json::from_str(rules_json).unwrap_or_default();
    hits.iter()
        .map(|h| format!("{} ({:+.1})", h["rule"].as_str().unwrap_or("?"), h["score"].as_f64().unwrap_or(0.0)))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::{ParseLimits, parse};

    fn t0() -> DateTime<Utc> {
        "2026-11-25T10:00:00Z".parse().unwrap()
    }

    fn setup() -> (Config, CaseView, Parsed) {
        let d = tempfile::tempdir().unwrap();
        let cfg = Config::builtin(d.path()).unwrap();
        let msg = parse(
            b"From: r@example.org\r\nSubject: Heap overflow\r\nMessage-ID: <m1@example.org>\r\n\r\nSECRET-DETAILS\r\n",
            &ParseLimits::default(),
        );
        let case = CaseView { id: 4, state: "new".into(), reporter: "r@example.org".into(), subject: "Heap overflow".into() };
        (cfg, case, msg)
    }

    /// The advisory at the lift is signed in clear: long and non-ASCII lines
    /// are encoded inside the signed part, which verifies with the team key.
    #[test]
    fn a_signed_note_with_long_lines_verifies() {
        use sequoia_openpgp::parse::Parse as _;
        let (cfg, case, _) = setup();
        let cert = crate::crypto::Cert::from_file(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/pgp/team-cv25519.sec.asc")).unwrap();
        let team = TeamKeys::from_certs(vec![cert], None).unwrap();
        let body = format!("{}\nÜmlaut line — and more\n", "word ".repeat(60));
        let m = note(&cfg, &case, "announce@example.org", "Security advisory", &body, None, None, Some(&team), "n@x".into(), t0()).unwrap();
        let text = String::from_utf8_lossy(&m.raw);
        assert!(text.contains("multipart/signed") && text.lines().all(|l| l.len() <= 998));
        let status = crypto::verify_mime_signature(&m.raw, &team.public_certs(), t0());
        assert_eq!(status.signer(), Some(team.signing_fingerprint().as_str()), "{status:?}");
    }

    #[test]
    fn ack_is_an_rfc3834_reply_that_never_quotes() {
        let (cfg, case, msg) = setup();
        let now = t0();
        let a = ack(&cfg, &case, &msg, "r@example.org", now, AckNote::None, None, "id1@localhost".into(), now).unwrap();
        let text = String::from_utf8(a.raw).unwrap();
        assert!(text.contains("Subject: [SEC-4] Re: Heap overflow"), "{text}");
        assert!(text.contains("Auto-Submitted: auto-replied"));
        assert!(text.contains("In-Reply-To: <m1@example.org>"));
        assert!(text.contains("References: <m1@example.org>"));
        assert!(text.contains("Message-ID: <id1@localhost>"));
        assert!(text.contains("SEC-4"));
        assert!(!text.contains("SECRET-DETAILS"));
    }

    #[test]
    fn team_notice_carries_no_text_unless_allowed() {
        let (mut cfg, case, msg) = setup();
        let now = t0();
        let content = Content { text: &msg.text, protected_subject: None, crypto: "not encrypted", problems: &[] };
        let n = team_notice(&cfg, &case, &msg, &content, &Notice::NewCase, "a@example.org", None, "n1@x".into(), now).unwrap();
        let text = String::from_utf8(n.raw).unwrap();
        assert!(text.contains("Subject: [SEC-4] New report: Heap overflow"));
        assert!(!text.contains("SECRET-DETAILS"));
        cfg.team.allow_plaintext_to_team = true;
        let n = team_notice(&cfg, &case, &msg, &content, &Notice::NewCase, "a@example.org", None, "n2@x".into(), now).unwrap();
        assert!(String::from_utf8(n.raw).unwrap().contains("SECRET-DETAILS"));
    }

    #[test]
    fn ack_body_comes_from_the_template_file() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("ack.txt"), "Case {case_id}; answer by {first_response_due}; updates every {update_every}.{unknown}\n").unwrap();
        let text = "[mailbox]\naddress = \"security@example.org\"\nack_template = \"ack.txt\"\n[maildir]\npath = \"md\"\n[outbox_dir]\npath = \"out\"\n[team]\ncoordinator = \"a@example.org\"\n";
        let cfg = Config::parse(text, d.path()).unwrap();
        let (_, case, msg) = setup();
        let now = t0();
        let a = ack(&cfg, &case, &msg, "r@example.org", now, AckNote::None, None, "i@x".into(), now).unwrap();
        let m = mail_parser::MessageParser::default().parse(&a.raw).unwrap();
        assert_eq!(m.body_text(0).unwrap().trim(), "Case SEC-4; answer by 2026-11-25 10:00 UTC; updates every 5 days.{unknown}");
    }

    #[test]
    fn subjects() {
        assert_eq!(case_subject("SEC", 1, "XSS", true), "[SEC-1] Re: XSS");
        assert_eq!(case_subject("SEC", 1, "Re: [SEC-1] XSS", true), "[SEC-1] Re: XSS");
        assert_eq!(case_subject("SEC", 1, "", true), "[SEC-1] Re: your security report");
    }

    /// See: issue 7 (`rest[..3]` panicked inside a multi-byte character).
    #[test]
    fn subjects_in_any_script() {
        for s in ["Уязвимость", "Ευπάθεια", "ثغرة أمنية", "פגיעות", "Lỗ hổng bảo mật", "🔥 RCE", "漏洞", "ＸＳＳ", "é", "ü!", "Ré: x", "RE"] {
            let out = case_subject("SEC", 7, s, true);
            assert!(out.starts_with("[SEC-7] Re: "), "{out}");
            assert!(out.ends_with(s), "{out}");
        }
        assert_eq!(case_subject("SEC", 7, "RE: Уязвимость", true), "[SEC-7] RE: Уязвимость");
    }

    #[test]
    fn decoded_crlf_never_makes_a_header() {
        let (cfg, case, mut msg) = setup();
        msg.subject = "hi\r\nBcc: victim@example.org".into();
        let a = ack(&cfg, &case, &msg, "r@example.org", t0(), AckNote::None, None, "i@x".into(), t0()).unwrap();
        let text = String::from_utf8(a.raw).unwrap();
        assert!(!text.to_ascii_lowercase().contains("\nbcc:"), "{text}");
        let case = CaseView { subject: msg.subject.clone(), ..case };
        let content = Content { text: "", protected_subject: None, crypto: "not encrypted", problems: &[] };
        let n = team_notice(&cfg, &case, &msg, &content, &Notice::NewCase, "a@example.org", None, "n@x".into(), t0()).unwrap();
        assert!(!String::from_utf8(n.raw).unwrap().to_ascii_lowercase().contains("\nbcc:"));
    }

    #[test]
    fn addresses_the_smtp_library_refuses_are_named() {
        assert!(check_address("r@example.org").is_ok());
        for bad in ["taro..yamada@docomo.ne.jp", "@example.org"] {
            assert!(check_address(bad).unwrap_err().contains("refused"), "{bad}");
        }
    }
}

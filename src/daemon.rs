//! The daemon: the receive pipeline (one store transaction per message) and the
//! long-running tasks: the source (inbox), the outbox sender, and the systemd
//! watchdog. Shutdown is passed in as a [`CancellationToken`]; the message in
//! hand finishes.
//!
//! Side effects: everything the edges do (store, source, transport), plus
//! sd_notify readiness and watchdog pings.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use futures::StreamExt as _;
use chrono::{DateTime, Utc};
use rusqlite::Connection;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::case::{self, Action, Context, KnownCase, case_id};
use crate::clock::SharedClock;
use crate::compose::{self, AckNote, Content, Seal};
use crate::crypto::{self, Cert};
use crate::keys::{self, Keys, Reading};
use crate::config::{Config, LimitsConfig, SourceConfig};
use crate::deadline;
use crate::mail::{self, ParseLimits, Parsed};
use crate::source::{self, Disposition, Handler};
use crate::spam::{SpamFilter, SpamInput, Verdict};
use crate::store::{self, OutMail, Store};
use crate::transport::{SendError, Transport};

/// Flag on stored team notifications: kept for threading, not listed as case mail.
pub const TEAM_NOTICE_FLAG: &str = "team-notice";

/// First retry delay of a failed send; doubles up to [`SEND_RETRY_MAX`].
const SEND_RETRY_START: Duration = Duration::from_secs(30);
const SEND_RETRY_MAX: Duration = Duration::from_secs(3600);
/// How many queued mails one sender pass takes.
const SEND_BATCH: usize = 64;
/// How many SMTP conversations run at once.
const SEND_CONCURRENCY: usize = 8;
/// Longest the sender sleeps without looking at the queue (clock jumps, missed
/// notifications).
/// Short, because the CLI (`secmail release`) queues mail from another process.
const SENDER_IDLE_MAX: Duration = Duration::from_secs(2);

/// The receive pipeline: raw bytes in, effects committed, disposition out.
#[derive(Clone)]
pub struct Pipeline {
    cfg: Arc<Config>,
    /// Team, member and reporter keys, loaded once.
    keys: Arc<Keys>,
    /// Compiled once from `[spam]`.
    spam: Arc<SpamFilter>,
    store: Store,
    clock: SharedClock,
    /// Woken when mail is queued, so acks leave at once.
    outbox: Arc<Notify>,
}

/// A message as the pipeline sees it: the outer headers, what its encryption
/// gave, and the decrypted entity parsed.
#[derive(Debug, Clone)]
pub struct Seen {
    pub msg: Parsed,
    pub reading: Reading,
    pub inner: Option<Parsed>,
}

impl Seen {
    /// The readable text: decrypted, or the plain body.
    pub fn text(&self) -> &str {
        match &self.inner {
            Some(i) => &i.text,
            None => &self.msg.text,
        }
    }

    /// The protected Subject from inside the encryption, if it has one. Used
    /// inside secmail only; never put in a cleartext header.
    pub fn protected_subject(&self) -> Option<&str> {
        self.inner.as_ref().map(|i| i.subject.as_str()).filter(|s| !s.is_empty())
    }

    /// `none`, `good`, `bad` or `unknown-key` (SPEC §2).
    pub fn signature(&self) -> &str {
        match &self.reading {
            Reading::Decrypted { signature, .. } => signature,
            _ => "none",
        }
    }

    /// Why the message could not be read, if it is encrypted and could not.
    pub fn problem(&self) -> Option<&str> {
        match &self.reading {
            Reading::Unreadable { reason, .. } => Some(reason),
            _ => None,
        }
    }

    /// One line on encryption and signature for the team.
    pub fn crypto_line(&self) -> String {
        match &self.reading {
            Reading::Plain => "not encrypted".into(),
            Reading::Decrypted { signature, .. } => format!("decrypted; signature: {signature}"),
            Reading::Unreadable { reason, .. } => format!("NOT decrypted: {reason}"),
        }
    }
}

/// Parse a raw message and read its encryption: what the pipeline decides on
/// and what `secmail case` shows (decrypt on read). A parser or decryption
/// library that panics on hostile input costs the message its parsing, not the
/// daemon: the raw bytes are kept on a case with the reason.
pub fn see(raw: &[u8], keys: &Keys, limits: &LimitsConfig, now: DateTime<Utc>) -> Seen {
    let parse_limits = ParseLimits::from(limits);
    let read = || {
        let msg = mail::parse(raw, &parse_limits);
        let reading = keys::read(raw, msg.encrypted, keys, &keys::crypto_limits(limits), now);
        let inner = match &reading {
            Reading::Decrypted { inner, .. } => Some(mail::parse(inner, &parse_limits)),
            _ => None,
        };
        Seen { msg, reading, inner }
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(read)) {
        Ok(seen) => seen,
        Err(_) => {
            tracing::error!(bytes = raw.len(), "parsing a message panicked; keeping it raw");
            Seen {
                msg: mail::unparseable(raw, "secmail could not parse this message (parser failure); kept raw"),
                reading: Reading::Plain,
                inner: None,
            }
        }
    }
}

/// What one message got (for logs and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub disposition: Disposition,
    /// The case it ended up on, if any.
    pub case: Option<i64>,
    /// Whether this was a repeat of a message already processed.
    pub duplicate: bool,
    /// Short description of what was done.
    pub summary: String,
}

impl Pipeline {
    pub fn new(cfg: Arc<Config>, keys: Arc<Keys>, store: Store, clock: SharedClock, outbox: Arc<Notify>) -> Result<Self> {
        let spam = Arc::new(SpamFilter::new(&cfg.spam)?);
        Ok(Pipeline { cfg, keys, spam, store, clock, outbox })
    }

    /// Parse a raw message and read its encryption (see [`see`]).
    pub fn see(&self, raw: &[u8], now: DateTime<Utc>) -> Seen {
        see(raw, &self.keys, &self.cfg.limits, now)
    }

    /// Process one message; on return its effects are committed.
    pub async fn handle(&self, raw: Vec<u8>) -> Result<Outcome> {
        let this = self.clone();
        let outcome = self.store.call(move |conn| this.process(conn, &raw)).await?;
        tracing::info!(
            case = outcome.case.map(|n| case_id(&self.cfg.mailbox.case_prefix, n)).as_deref().unwrap_or("-"),
            duplicate = outcome.duplicate,
            "message processed: {}",
            outcome.summary
        );
        self.outbox.notify_one();
        Ok(outcome)
    }

    /// The [`Handler`] a source calls.
    pub fn handler(self: &Arc<Self>) -> Handler {
        let me = self.clone();
        Arc::new(move |raw| {
            let me = me.clone();
            Box::pin(async move { Ok(me.handle(raw).await?.disposition) })
        })
    }

    /// Parse, decide and perform, in one transaction.
    pub fn process(&self, conn: &mut Connection, raw: &[u8]) -> Result<Outcome> {
        let now = self.clock.now();
        let seen = self.see(raw, now);
        let msg = &seen.msg;
        let tx = conn.transaction()?;
        if store::message_seen(&tx, "in", &msg.dedupe_key)? {
            return Ok(Outcome {
                disposition: Disposition::Processed,
                case: None,
                duplicate: true,
                summary: "already processed (duplicate delivery); nothing changed".into(),
            });
        }
        let verdict = self.spam.judge(&SpamInput {
            subject: Some(&msg.subject),
            x_spam_flag: &msg.x_spam_flag,
            x_spam_status: &msg.x_spam_status,
            authentication_results: &msg.authentication_results,
            encrypted: msg.encrypted,
            on_existing_case: false,
        });
        let ctx = self.context(&tx, &seen, now, verdict.spam)?;
        let actions = case::decide(msg, &ctx);
        let outcome = self.perform(&tx, &seen, raw, &actions, None, Some(&verdict), now)?;
        tx.commit()?;
        Ok(outcome)
    }

    /// Release a quarantined message into normal processing (case + ack), as
    /// `secmail release QID` and the `#release QID` team command do. `by` says
    /// who released it (for the record).
    pub fn release(&self, conn: &mut Connection, qid: i64, by: &str) -> Result<Outcome> {
        let now = self.clock.now();
        let tx = conn.transaction()?;
        let q = store::get_quarantine(&tx, qid)?.with_context(|| format!("no quarantined message Q{qid}"))?;
        if let Some(at) = q.released_at {
            anyhow::bail!(
                "Q{qid} was already released at {at}{}",
                q.released_case.map(|n| format!(" as {}", case_id(&self.cfg.mailbox.case_prefix, n))).unwrap_or_default()
            );
        }
        let raw = store::message_raw(&tx, q.message_pk)?;
        let seen = self.see(&raw, now);
        let ctx = self.context(&tx, &seen, now, false)?;
        let actions = case::decide(&seen.msg, &ctx);
        let outcome = self.perform(&tx, &seen, &raw, &actions, Some(q.message_pk), None, now)?;
        if let Some(id) = outcome.case {
            store::add_event(&tx, id, now, "released", Some(by), &format!("released from quarantine (Q{qid}, score {:.1}) by {by}", q.score))?;
        }
        store::mark_released(&tx, qid, outcome.case, by, now)?;
        tx.commit()?;
        self.outbox.notify_one();
        Ok(outcome)
    }

    fn context(&self, c: &Connection, seen: &Seen, now: DateTime<Utc>, spam: bool) -> Result<Context> {
        let msg = &seen.msg;
        let known = |id: i64| -> Result<Option<KnownCase>> {
            Ok(store::get_case(c, id)?.map(|k| KnownCase { id: k.id, reporter: k.reporter }))
        };
        let by_reference = match store::case_for_message_ids(c, &msg.refs)? {
            Some(id) => known(id)?,
            None => None,
        };
        let prefix = &self.cfg.mailbox.case_prefix;
        let tag = mail::subject_tag(&msg.subject, prefix)
            .or_else(|| seen.protected_subject().and_then(|s| mail::subject_tag(s, prefix)));
        let by_tag = match tag {
            Some(id) if by_reference.is_none() => known(id)?,
            _ => None,
        };
        let auto_replies_last_hour = match msg.reply_address() {
            Some(a) => store::auto_replies_since(c, a, now - chrono::Duration::hours(1))?,
            None => 0,
        };
        Ok(Context {
            by_reference,
            by_tag,
            own_message: self.is_own_message(c, msg)?,
            sender_is_team: msg.from.as_deref().is_some_and(|f| self.cfg.team.is_member(f)),
            auto_replies_last_hour,
            auto_reply_limit: self.cfg.limits.auto_replies_per_sender_per_hour,
            spam,
        })
    }

    fn is_own_message(&self, c: &Connection, msg: &Parsed) -> Result<bool> {
        if !msg.has_message_id {
            return Ok(false);
        }
        let domain = self.cfg.mailbox.address.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
        if msg.message_id.starts_with("secmail.") && msg.message_id.ends_with(&format!("@{domain}")) {
            return Ok(true);
        }
        Ok(c.query_row(
            "SELECT 1 FROM messages WHERE direction = 'out' AND message_id = ?1",
            [&msg.message_id],
            |_| Ok(()),
        )
        .map(|_| true)
        .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(false) } else { Err(e) })?)
    }

    /// Perform the actions. `existing` is the stored message being released
    /// from quarantine (refiled instead of inserted).
    #[allow(clippy::too_many_arguments)]
    fn perform(
        &self,
        c: &Connection,
        seen: &Seen,
        raw: &[u8],
        actions: &[Action],
        existing: Option<i64>,
        verdict: Option<&Verdict>,
        now: DateTime<Utc>,
    ) -> Result<Outcome> {
        let cfg = &*self.cfg;
        let mut case: Option<i64> = None;
        let mut summary: Vec<String> = Vec::new();
        let mut stored = false;
        let mut disposition = Disposition::Processed;
        let msg = &seen.msg;
        let signature = seen.signature();
        let crypto_flag = seen.problem().map(|p| format!("undecryptable: {p}"));
        let store_in = |case_id: Option<i64>, flags: &str| -> Result<i64> {
            let joined;
            let flags = match &crypto_flag {
                Some(f) if flags.is_empty() => f.as_str(),
                Some(f) => {
                    joined = format!("{flags}; {f}");
                    joined.as_str()
                }
                None => flags,
            };
            if let Some(pk) = existing {
                store::refile_message(c, pk, case_id, flags)?;
                return Ok(pk);
            }
            store::insert_message(
                c,
                &store::NewMessage {
                    case_id,
                    direction: "in",
                    message_id: &msg.message_id,
                    dedupe_key: &msg.dedupe_key,
                    from: msg.from.as_deref(),
                    date: msg.date,
                    subject: Some(&msg.subject),
                    encrypted: msg.encrypted,
                    signature,
                    flags,
                    raw,
                },
                now,
            )
        };
        for a in actions {
            match a {
                Action::Ignore { reason } => {
                    store_in(None, &format!("ignored: {reason}"))?;
                    stored = true;
                    summary.push(format!("ignored ({reason})"));
                }
                Action::OpenCase => {
                    let reporter = msg.reply_address().or(msg.from.as_deref()).unwrap_or("(unknown)");
                    let subject = if msg.subject.is_empty() { "(no subject)" } else { &msg.subject };
                    let id = store::insert_case(c, reporter, subject, msg.encrypted, now)?;
                    store_in(Some(id), msg.malformed.as_deref().map(|m| format!("malformed: {m}")).as_deref().unwrap_or(""))?;
                    stored = true;
                    store::add_event(c, id, now, "opened", msg.from.as_deref(), &format!("case opened by message <{}>", msg.message_id))?;
                    for (kind, due) in deadline::on_open(&cfg.policy, now) {
                        store::add_deadline(c, id, kind.as_str(), due)?;
                    }
                    if let Some(p) = seen.problem() {
                        store::add_event(c, id, now, "undecryptable", None, p)?;
                    }
                    case = Some(id);
                    summary.push(format!("opened {}", case_id(&cfg.mailbox.case_prefix, id)));
                }
                Action::Append { case_id: id, flag } => {
                    store_in(Some(*id), flag.as_deref().unwrap_or(""))?;
                    stored = true;
                    case = Some(*id);
                    summary.push(format!("appended to {}", case_id(&cfg.mailbox.case_prefix, *id)));
                }
                Action::Event { kind, detail } => {
                    if let Some(id) = case {
                        store::add_event(c, id, now, kind, msg.from.as_deref(), detail)?;
                    }
                }
                Action::Ack { to } => {
                    let id = case.context("ack without a case")?;
                    let row = store::get_case(c, id)?.context("case vanished")?;
                    let due = store::deadlines(c, id)?
                        .into_iter()
                        .find(|d| d.kind == deadline::Kind::FirstResponse.as_str())
                        .map(|d| d.due_at)
                        .unwrap_or(now);
                    let fpr = self.keys.team.as_ref().map(|t| t.signing_fingerprint());
                    let note = match &seen.reading {
                        Reading::Plain => AckNote::None,
                        Reading::Decrypted { .. } => AckNote::Decrypted,
                        Reading::Unreadable { .. } => AckNote::Unreadable { team_fingerprint: fpr.as_deref() },
                    };
                    let reporter_key = self.reporter_key(seen, raw, to, now);
                    let seal = match (&reporter_key, &self.keys.team) {
                        (Some(k), Some(team)) => Some(Seal { to: k, team }),
                        _ => None,
                    };
                    let mid = compose::new_message_id(&cfg.mailbox.address);
                    let m = compose::ack(cfg, &row, msg, to, due, note, seal, mid, now)?;
                    if self.queue(c, Some(id), format!("ack:{id}"), "ack", &m, "", now)? {
                        store::record_auto_reply(c, to, now)?;
                        store::add_event(c, id, now, "ack-queued", None, &format!("ack to {to} queued"))?;
                        summary.push(format!("ack to {to} queued"));
                    }
                }
                Action::Quarantine => {
                    let pk = store_in(None, "quarantined")?;
                    let v = verdict.context("quarantine without a spam verdict")?;
                    let rules: Vec<serde_json::Value> =
                        v.matched.iter().map(|h| serde_json::json!({"rule": h.rule, "score": h.score})).collect();
                    let qid = store::quarantine(c, pk, v.score, &serde_json::to_string(&rules)?, now)?;
                    stored = true;
                    disposition = Disposition::Quarantine;
                    summary.push(format!("held as spam: Q{qid}, score {:.1} ({})", v.score, v.matched.iter().map(|h| h.rule.as_str()).collect::<Vec<_>>().join(", ")));
                }
                Action::Notify(notice) => {
                    let id = case.context("notification without a case")?;
                    let row = store::get_case(c, id)?.context("case vanished")?;
                    let crypto_line = seen.crypto_line();
                    let content = Content {
                        text: seen.text(),
                        protected_subject: seen.protected_subject(),
                        crypto: &crypto_line,
                    };
                    for member in cfg.team.recipients() {
                        let seal = match (self.keys.member_cert(&member), &self.keys.team) {
                            (Some(k), Some(team)) => Some(Seal { to: k, team }),
                            _ => None,
                        };
                        let mid = compose::new_message_id(&cfg.mailbox.address);
                        let m = compose::team_notice(cfg, &row, msg, &content, notice, &member, seal, mid, now)?;
                        let decision = format!("notify:{}:{}", msg.dedupe_key, member.to_ascii_lowercase());
                        self.queue(c, Some(id), decision, "team-notice", &m, TEAM_NOTICE_FLAG, now)?;
                    }
                    summary.push("team notified".into());
                }
            }
        }
        if !stored {
            store_in(None, "")?;
        }
        Ok(Outcome {
            disposition,
            case,
            duplicate: false,
            summary: summary.join(", "),
        })
    }

    /// The reporter's key to encrypt to: from the keyring, the message, or
    /// inside its encryption (SPEC §4).
    fn reporter_key(&self, seen: &Seen, raw: &[u8], to: &str, now: DateTime<Utc>) -> Option<Cert> {
        crypto::reporter_cert(raw, to, &self.keys.reporter_keyring, now).or_else(|| match &seen.reading {
            Reading::Decrypted { inner, .. } => crypto::reporter_cert(inner, to, &[], now),
            _ => None,
        })
    }

    /// Queue a composed mail for a decision and record it as an outgoing message
    /// (so replies to it thread). `false` if the decision was already queued.
    #[allow(clippy::too_many_arguments)]
    fn queue(&self, c: &Connection, case: Option<i64>, decision: String, kind: &str, m: &compose::Composed, flags: &str, now: DateTime<Utc>) -> Result<bool> {
        let out = OutMail {
            case_id: case,
            decision,
            kind: kind.into(),
            message_id: m.message_id.clone(),
            envelope_from: self.cfg.mailbox.address.clone(),
            recipients: m.to.clone(),
            raw: m.raw.clone(),
        };
        if !store::enqueue(c, &out, now)? {
            return Ok(false);
        }
        store::insert_message(
            c,
            &store::NewMessage {
                case_id: case,
                direction: "out",
                message_id: &m.message_id,
                dedupe_key: &m.message_id,
                from: Some(&self.cfg.mailbox.address),
                date: Some(now),
                subject: Some(&m.subject),
                encrypted: m.encrypted,
                signature: "none",
                flags,
                raw: &m.raw,
            },
            now,
        )?;
        Ok(true)
    }
}

/// The outbox sender: sends what is due, retries with backoff, records results.
pub async fn outbox_sender(
    store: Store,
    transport: Transport,
    clock: SharedClock,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let mut backoff = source::BACKOFF_START;
    loop {
        let failed = match send_due(&store, &transport, &clock).await {
            Ok(()) => {
                backoff = source::BACKOFF_START;
                false
            }
            Err(err) => {
                tracing::warn!("outbox pass failed: {err:#}; retrying in {backoff:?}");
                true
            }
        };
        let next = store.call(|c| store::outbox_next_due(c)).await.ok().flatten();
        let wait = match next {
            // A failing pass (e.g. the database) must not spin on mail that is due.
            _ if failed => {
                let w = backoff;
                backoff = source::next_backoff(backoff);
                w
            }
            Some(t) => (t - clock.now()).to_std().unwrap_or(Duration::ZERO).min(SENDER_IDLE_MAX),
            None => SENDER_IDLE_MAX,
        };
        if wait.is_zero() && next.is_some() {
            // More is due already (a batch was full); go again, but let shutdown in.
            if shutdown.is_cancelled() {
                return;
            }
            continue;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

async fn send_due(store: &Store, transport: &Transport, clock: &SharedClock) -> Result<()> {
    let now = clock.now();
    let due = store.call(move |c| store::outbox_due(c, now, SEND_BATCH)).await?;
    // Several SMTP conversations at once (lettre pools the connections): a
    // flood's acks must not queue behind each other's round trips.
    let results: Vec<Result<()>> = futures::stream::iter(due)
        .map(|row| send_one(store, transport, clock, row))
        .buffer_unordered(SEND_CONCURRENCY)
        .collect()
        .await;
    results.into_iter().collect()
}

async fn send_one(store: &Store, transport: &Transport, clock: &SharedClock, row: store::OutboxRow) -> Result<()> {
    let res = transport.send(&row.envelope_from, &row.recipients, &row.raw).await;
    let now = clock.now();
    match res {
        Ok(()) => {
            let delay_ms = (now - row.created_at).num_milliseconds();
            tracing::info!(kind = %row.kind, to = ?row.recipients, delay_ms, "mail sent");
            store
                .call(move |c| {
                    let tx = c.transaction()?;
                    store::outbox_sent(&tx, row.id, now)?;
                    if let (Some(id), "ack") = (row.case_id, row.kind.as_str()) {
                        store::case_acknowledged(&tx, id, now)?;
                        store::meet_deadlines(&tx, id, deadline::Kind::Ack.as_str(), now)?;
                        store::add_event(&tx, id, now, "ack-sent", None, &format!("ack sent to {}", row.recipients.join(", ")))?;
                    }
                    tx.commit()?;
                    Ok(())
                })
                .await
        }
        Err(SendError::Permanent(e)) => {
            tracing::error!(kind = %row.kind, to = ?row.recipients, "mail rejected permanently: {e}");
            store
                .call(move |c| {
                    store::outbox_failed(c, row.id, now, &e)?;
                    if let Some(id) = row.case_id {
                        store::add_event(c, id, now, "send-failed", None, &format!("{} to {} rejected: {e}", row.kind, row.recipients.join(", ")))?;
                    }
                    Ok(())
                })
                .await
        }
        Err(SendError::Transient(e)) => {
            let delay = SEND_RETRY_START.saturating_mul(1u32 << row.attempts.min(16)).min(SEND_RETRY_MAX);
            let next = now + chrono::Duration::from_std(delay)?;
            tracing::warn!(kind = %row.kind, attempt = row.attempts + 1, retry_in = ?delay, "send failed: {e}");
            store.call(move |c| store::outbox_retry(c, row.id, next, &e)).await
        }
    }
}

/// Meta key of the last quarantine digest time.
const DIGEST_META: &str = "last_quarantine_digest";

/// Sends the team a digest of newly held spam every `spam.digest_every`
/// (nothing when nothing was held). The first period starts at first start.
pub async fn digest_loop(cfg: Arc<Config>, store: Store, clock: SharedClock, wake: Arc<Notify>, shutdown: CancellationToken) {
    loop {
        let wait = match digest_once(&cfg, &store, &clock).await {
            Ok(next) => (next - clock.now()).to_std().unwrap_or(Duration::ZERO).max(Duration::from_millis(200)),
            Err(err) => {
                tracing::warn!("quarantine digest failed: {err:#}");
                Duration::from_secs(60)
            }
        };
        wake.notify_one();
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Queue the digest if it is due; returns when the next one is due.
async fn digest_once(cfg: &Arc<Config>, store: &Store, clock: &SharedClock) -> Result<DateTime<Utc>> {
    let cfg = cfg.clone();
    let now = clock.now();
    store
        .call(move |c| {
            let every = chrono::Duration::from_std(cfg.spam.digest_every)?;
            let tx = c.transaction()?;
            let last = match store::meta_get(&tx, DIGEST_META)? {
                Some(s) => store::parse_ts(&s)?,
                None => {
                    store::meta_set(&tx, DIGEST_META, &store::ts(now))?;
                    tx.commit()?;
                    return Ok(now + every);
                }
            };
            if now < last + every {
                return Ok(last + every);
            }
            let held = store::list_quarantine(&tx, Some(last))?;
            if !held.is_empty() {
                for member in cfg.team.recipients() {
                    let mid = compose::new_message_id(&cfg.mailbox.address);
                    let m = compose::quarantine_digest(&cfg, &held, &member, mid, now)?;
                    let out = OutMail {
                        case_id: None,
                        decision: format!("digest:{}:{}", store::ts(now), member.to_ascii_lowercase()),
                        kind: "digest".into(),
                        message_id: m.message_id.clone(),
                        envelope_from: cfg.mailbox.address.clone(),
                        recipients: m.to.clone(),
                        raw: m.raw,
                    };
                    store::enqueue(&tx, &out, now)?;
                }
                tracing::info!(held = held.len(), "quarantine digest queued");
            }
            store::meta_set(&tx, DIGEST_META, &store::ts(now))?;
            tx.commit()?;
            Ok(now + every)
        })
        .await
}

/// Run the daemon until `shutdown` is cancelled.
pub async fn run(cfg: Config, clock: SharedClock, shutdown: CancellationToken) -> Result<()> {
    let cfg = Arc::new(cfg);
    let store = Store::open(&cfg.store.path)?;
    let transport = Transport::new(&cfg.transport)?;
    let wake = Arc::new(Notify::new());
    let keys = Arc::new(Keys::load(&cfg)?);
    if let Some(t) = &keys.team {
        tracing::info!(fingerprint = %t.signing_fingerprint(), "team key loaded");
    }
    let pipeline = Arc::new(Pipeline::new(cfg.clone(), keys, store.clone(), clock.clone(), wake.clone())?);
    let tracker = TaskTracker::new();

    tracker.spawn(outbox_sender(store.clone(), transport, clock.clone(), wake.clone(), shutdown.clone()));
    tracker.spawn(digest_loop(cfg.clone(), store.clone(), clock.clone(), wake, shutdown.clone()));

    let handler = pipeline.handler();
    let src_shutdown = shutdown.clone();
    let source_cfg = cfg.source.clone();
    let src_store = store.clone();
    let src_stop = shutdown.clone();
    let source_task = tracker.spawn(async move {
        let res = match source_cfg {
            SourceConfig::Imap(c) => source::imap::run(c, src_store, handler, src_shutdown).await,
            SourceConfig::Maildir(c) => source::maildir::run(c, handler, src_shutdown).await,
        };
        if let Err(err) = &res {
            tracing::error!("source stopped: {err:#}");
            src_stop.cancel();
        }
        res
    });

    let watchdog = watchdog_interval();
    tracing::info!(config = ?cfg.origin, "secmail running");
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    tracker.close();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(watchdog.unwrap_or(Duration::from_secs(3600))) => {
                if watchdog.is_some() {
                    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
                }
            }
        }
    }
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    tracing::info!("shutting down: finishing the message in hand");
    tracker.wait().await;
    // A source that could not run at all (e.g. an unusable Maildir) is a
    // failure of the daemon: exit non-zero so systemd restarts and reports it.
    source_task.await.context("source task panicked")?.context("the mail source failed")?;
    tracing::info!("stopped");
    Ok(())
}

/// Half the systemd watchdog period, if one is set (sd_watchdog_enabled(3)).
fn watchdog_interval() -> Option<Duration> {
    let mut usec = 0u64;
    if sd_notify::watchdog_enabled(false, &mut usec) && usec > 0 {
        Some(Duration::from_micros(usec / 2))
    } else {
        None
    }
}

/// Open the store for a CLI command.
pub fn open_store(cfg: &Config) -> Result<Store> {
    Store::open(&cfg.store.path).with_context(|| format!("opening the database {}", cfg.store.path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FakeClock;
    use std::path::Path;

    fn pipeline(dir: &std::path::Path) -> (Pipeline, Store) {
        let cfg = Arc::new(Config::builtin(dir).unwrap());
        let store = Store::open(&cfg.store.path).unwrap();
        let clock: SharedClock = Arc::new(FakeClock::new("2026-11-25T10:00:00Z".parse().unwrap()));
        let p = Pipeline::new(cfg, Arc::new(Keys::default()), store.clone(), clock, Arc::new(Notify::new())).unwrap();
        (p, store)
    }

    fn nested(depth: usize) -> Vec<u8> {
        let mut s = String::from("From: r@example.org\r\nSubject: deep\r\nMessage-ID: <deep@x>\r\nMIME-Version: 1.0\r\n");
        for i in 0..depth {
            s.push_str(&format!("Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n"));
        }
        s.push_str("Content-Type: text/plain\r\n\r\nbottom\r\n");
        for i in (0..depth).rev() {
            s.push_str(&format!("--b{i}--\r\n"));
        }
        s.into_bytes()
    }

    fn many_parts(n: usize) -> Vec<u8> {
        let mut s = String::from("From: r@example.org\r\nSubject: wide\r\nMessage-ID: <wide@x>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n");
        for i in 0..n {
            s.push_str(&format!("--b\r\nContent-Type: text/plain\r\n\r\npart {i}\r\n"));
        }
        s.push_str("--b--\r\n");
        s.into_bytes()
    }

    /// Bad input never stops the daemon and never loses a message: every
    /// fixture and every kind of garbage is stored (on a case, or ignored with
    /// a reason) and the pipeline returns Ok.
    #[test]
    fn every_input_is_kept_and_nothing_panics() {
        let d = tempfile::tempdir().unwrap();
        let (p, store) = pipeline(d.path());
        let mut inputs: Vec<(String, Vec<u8>)> = Vec::new();
        for dir in ["fixtures/pgp", "fixtures/eml"] {
            let Ok(rd) = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)) else { continue };
            for e in rd.flatten() {
                if e.path().extension().is_some_and(|x| x == "eml") {
                    inputs.push((e.path().display().to_string(), std::fs::read(e.path()).unwrap()));
                }
            }
        }
        assert!(inputs.len() > 10, "fixtures found");
        inputs.push(("empty".into(), Vec::new()));
        inputs.push(("binary".into(), (0..=255u8).cycle().take(10_000).collect()));
        inputs.push(("headers only".into(), b"From: a@b.c\r\nSubject: x".to_vec()));
        inputs.push(("nested 5000 deep".into(), nested(5000)));
        inputs.push(("3000 parts".into(), many_parts(3000)));
        inputs.push(("huge header".into(), format!("From: a@b.c\r\nSubject: {}\r\n\r\nx", "A".repeat(2_000_000)).into_bytes()));
        inputs.push(("truncated PGP".into(), b"From: a@b.c\r\nMessage-ID: <t@x>\r\n\r\n-----BEGIN PGP MESSAGE-----\r\nhQEMA\r\n".to_vec()));
        let n = inputs.len();
        for (name, raw) in &inputs {
            let out = store.call_sync(|c| p.process(c, raw)).unwrap_or_else(|e| panic!("{name}: {e:#}"));
            assert!(!out.duplicate || name.contains("fixtures"), "{name}: {}", out.summary);
        }
        let stored: i64 = store
            .call_sync(|c| Ok(c.query_row("SELECT count(DISTINCT dedupe_key) FROM messages WHERE direction = 'in'", [], |r| r.get(0))?))
            .unwrap();
        let distinct: std::collections::HashSet<String> = inputs.iter().map(|(_, r)| mail::parse(r, &ParseLimits::default()).dedupe_key).collect();
        assert_eq!(stored as usize, distinct.len(), "every distinct input stored ({n} inputs)");
    }

    #[test]
    fn our_own_mail_coming_back_is_never_a_new_report() {
        let d = tempfile::tempdir().unwrap();
        let (p, store) = pipeline(d.path());
        let report = b"From: r@example.org\r\nSubject: XSS\r\nMessage-ID: <r1@example.org>\r\n\r\nx\r\n";
        store.call_sync(|c| p.process(c, report)).unwrap();
        let sent: Vec<Vec<u8>> = store
            .call_sync(|c| {
                let mut st = c.prepare("SELECT raw FROM outbox ORDER BY id")?;
                let rows = st.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<Vec<Vec<u8>>>>()?;
                Ok(rows)
            })
            .unwrap();
        assert_eq!(sent.len(), 2, "ack and team notice");
        for raw in sent {
            // Even stripped of Auto-Submitted, our Message-ID gives it away.
            let text = String::from_utf8(raw).unwrap().replace("Auto-Submitted:", "X-Was-Auto-Submitted:");
            let out = store.call_sync(|c| p.process(c, text.as_bytes())).unwrap();
            assert!(out.summary.contains("our own message"), "{}", out.summary);
        }
        assert_eq!(store.call_sync(|c| store::list_cases(c, true)).unwrap().len(), 1);
    }

    #[test]
    fn quarantined_spam_is_released_into_a_case_with_an_ack() {
        let d = tempfile::tempdir().unwrap();
        let (p, store) = pipeline(d.path());
        let spam = b"From: s@spam.example\r\nSubject: Cheap Viagra pills, no prescription!!!\r\nMessage-ID: <sp@x>\r\n\r\nbuy\r\n";
        let out = store.call_sync(|c| p.process(c, spam)).unwrap();
        assert_eq!(out.disposition, Disposition::Quarantine);
        assert!(out.case.is_none());
        let out = store.call_sync(|c| p.release(c, 1, "test")).unwrap();
        assert_eq!(out.case, Some(1));
        let queued: i64 = store.call_sync(|c| Ok(c.query_row("SELECT count(*) FROM outbox WHERE kind = 'ack'", [], |r| r.get(0))?)).unwrap();
        assert_eq!(queued, 1);
        assert!(store.call_sync(|c| p.release(c, 1, "test")).is_err(), "released twice");
    }
}

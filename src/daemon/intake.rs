//! The intake task's pipeline: raw bytes in, effects committed, disposition
//! out. Every message ends somewhere in bounded attempts: on a case, in
//! quarantine, or ignored with a reason.
//!
//! 1. An attempt is counted in the database (so a crash or abort counts too).
//! 2. The message is seen ([`super::seen`]: prescan, parse, decrypt) on a
//!    thread of its own, outside the store lock: a slow message never holds up
//!    the outbox or the CLI.
//! 3. Rules decide ([`crate::case::decide`]) and [`super::perform`] acts, in one
//!    transaction that also clears the attempt.
//!
//! A failure that will not heal (a panic, a bug, a compose error no
//! degradation covers) is counted; after `limits.max_attempts` the message is
//! kept raw on a case flagged `processing failed: <reason>`, the team is told
//! (metadata only), and the source moves on. A transient failure (database
//! busy) is not counted and the source offers the message again.
//!
//! Side effects: the store; the outbox is woken when mail is queued.

use std::sync::Arc;

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use rusqlite::Connection;
use tokio::sync::Notify;

use super::perform::Perform;
use super::seen::{self, Seen};
use super::{Outcome, TEAM_NOTICE_FLAG};
use crate::case::{self, Context, KnownCase, Notice, TeamStatus, case_id};
use crate::commands::{self, CommandContext};
use crate::team::{self, TeamCheck};
use crate::clock::SharedClock;
use crate::compose::{self, Content};
use crate::config::Config;
use crate::deadline;
use crate::keys::Keys;
use crate::mail::{self, Parsed};
use crate::source::{Disposition, Handler};
use crate::spam::{SpamFilter, SpamInput, Verdict};
use crate::store::{self, OutMail, Store};

/// The receive pipeline.
#[derive(Clone)]
pub struct Pipeline {
    pub(super) cfg: Arc<Config>,
    /// Team, member and reporter keys, loaded once.
    pub(super) keys: Arc<Keys>,
    /// Compiled once from `[spam]`.
    spam: Arc<SpamFilter>,
    store: Store,
    clock: SharedClock,
    /// Woken when mail is queued, so acks leave at once.
    outbox: Arc<Notify>,
    /// Woken when a decision may have scheduled a timer job.
    timers: Arc<Notify>,
    /// Since when the database has refused writes (disk full, locked), if it
    /// does: logged once when it starts and once when it ends.
    store_down: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
}

/// What the spam filter looks at of a parsed message, the way the daemon
/// judges every new message (also used by the corpus measurement). The body
/// of an encrypted message, or one kept raw over a limit, is never scored.
pub fn spam_input<'a>(msg: &'a Parsed, mailbox: &crate::config::MailboxConfig) -> SpamInput<'a> {
    SpamInput {
        subject: Some(&msg.subject),
        x_spam_flag: &msg.x_spam_flag,
        x_spam_status: &msg.x_spam_status,
        authentication_results: &msg.authentication_results,
        encrypted: msg.encrypted,
        on_existing_case: false,
        body: (!msg.encrypted && msg.over_limit.is_none()).then_some(&msg.shape),
        from: msg.from.as_deref(),
        from_name: msg.from_name.as_deref(),
        from_ours: msg.from.as_deref().is_some_and(|f| mailbox.is_ours(f)),
    }
}

/// The text of a caught panic.
fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_else(|| "unknown panic".into())
}

impl Pipeline {
    pub fn new(cfg: Arc<Config>, keys: Arc<Keys>, store: Store, clock: SharedClock, outbox: Arc<Notify>) -> Result<Self> {
        let spam = Arc::new(SpamFilter::new(&cfg.spam)?.for_mailbox(&cfg.mailbox));
        Ok(Pipeline { cfg, keys, spam, store, clock, outbox, timers: Arc::new(Notify::new()), store_down: Default::default() })
    }

    pub(super) fn clock_now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub(super) fn wake_outbox(&self) {
        self.outbox.notify_one();
        self.timers.notify_one();
    }

    pub(super) fn store(&self) -> &Store {
        &self.store
    }

    /// The seal of mail to a team member: their configured key and the team
    /// key, when both exist.
    pub(super) fn member_seal(&self, addr: &str) -> Option<compose::Seal<'_>> {
        match (self.keys.member_cert(addr), &self.keys.team) {
            (Some(k), Some(team)) => Some(compose::Seal { to: k, team }),
            _ => None,
        }
    }

    /// Queue one mail per address in `to`, built by `build(address, seal)`
    /// and sealed to that member's key when they have one. A key that cannot
    /// encrypt gives them the same mail in clear: only for mail that never
    /// carries report text (reminders, alerts, digests, embargo notes).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn queue_to_members(
        &self,
        c: &Connection,
        case: Option<i64>,
        to: &[String],
        decision: &str,
        kind: &str,
        now: DateTime<Utc>,
        build: impl Fn(&str, Option<compose::Seal<'_>>) -> Result<compose::Composed>,
    ) -> Result<()> {
        for member in to {
            let seal = self.member_seal(member);
            let m = match build(member, seal) {
                Ok(m) => m,
                Err(_) if seal.is_some() => build(member, None)?,
                Err(e) => return Err(e),
            };
            self.queue(c, case, format!("{decision}:{}", member.to_ascii_lowercase()), kind, &m, TEAM_NOTICE_FLAG, now)?;
        }
        Ok(())
    }

    /// Woken when a decision may have scheduled a timer job.
    pub(super) fn timers(&self) -> Arc<Notify> {
        self.timers.clone()
    }

    /// Parse a raw message and read its encryption (see [`seen::see`]).
    pub fn see(&self, raw: &[u8], now: DateTime<Utc>) -> Seen {
        seen::see(raw, &self.keys, &self.cfg.limits, now)
    }

    /// Process one message; on `Ok` its effects are committed. An `Err` means
    /// nothing was committed and the source should offer it again later.
    pub async fn handle(&self, raw: Vec<u8>) -> Result<Outcome> {
        let res = self.handle_counted(raw).await;
        let mut down = self.store_down.lock().unwrap_or_else(|p| p.into_inner());
        match (&res, down.as_ref()) {
            (Err(e), None) if store::is_transient(e) => {
                tracing::warn!("the database refuses writes: {e:#}; messages stay in the mailbox (nothing is lost) and are offered again until it recovers");
                *down = Some(std::time::Instant::now());
            }
            (Ok(_), Some(since)) => {
                tracing::info!("the database takes writes again after {:?}; processing resumes", since.elapsed());
                *down = None;
            }
            _ => {}
        }
        res
    }

    /// [`Pipeline::handle`] with its attempt counted.
    async fn handle_counted(&self, raw: Vec<u8>) -> Result<Outcome> {
        let raw = Arc::new(raw);
        let key = mail::raw_hash(&raw);
        let now = self.clock.now();
        let max = self.cfg.limits.max_attempts;
        let k = key.clone();
        let (count, last_error) = self.store.call(move |c| store::begin_attempt(c, &k, now)).await?;
        let outcome = if count > max {
            let why = last_error.unwrap_or_else(|| format!("secmail stopped while processing it {max} times (a crash?)"));
            self.give_up(raw, key, why).await?
        } else {
            let seen = seen::see_apart(raw.clone(), self.keys.clone(), self.cfg.limits.clone(), now).await?;
            let this = self.clone();
            let (r, k) = (raw.clone(), key.clone());
            let res = self
                .store
                .call(move |c| {
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| this.process_seen(c, &seen, &r, Some(&k))))
                        .unwrap_or_else(|p| Err(anyhow::anyhow!("processing panicked: {}", panic_text(p.as_ref()))))
                })
                .await;
            match res {
                Ok(o) => o,
                Err(e) if store::is_transient(&e) => {
                    let k = key.clone();
                    let _ = self.store.call(move |c| store::attempt_uncounted(c, &k)).await;
                    return Err(e);
                }
                Err(e) => {
                    let why = format!("{e:#}");
                    tracing::error!(attempt = count, max, "processing a message failed: {why}");
                    let (k, w) = (key.clone(), why.clone());
                    let _ = self.store.call(move |c| store::attempt_failed(c, &k, &w)).await;
                    if count < max {
                        return Err(e);
                    }
                    self.give_up(raw, key, why).await?
                }
            }
        };
        tracing::info!(
            case = outcome.case.map(|n| case_id(&self.cfg.mailbox.case_prefix, n)).as_deref().unwrap_or("-"),
            duplicate = outcome.duplicate,
            "message processed: {}",
            outcome.summary
        );
        self.wake_outbox();
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

    /// See, decide and perform on this thread (tests, benches): what
    /// [`Pipeline::handle`] does, without attempts.
    pub fn process(&self, conn: &mut Connection, raw: &[u8]) -> Result<Outcome> {
        let seen = self.see(raw, self.clock.now());
        self.process_seen(conn, &seen, raw, None)
    }

    /// Decide and perform for a message already seen, in one transaction
    /// (which also clears its attempt row, when it has one).
    fn process_seen(&self, conn: &mut Connection, seen: &Seen, raw: &[u8], attempt: Option<&str>) -> Result<Outcome> {
        let now = self.clock.now();
        let msg = &seen.msg;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if let Some(k) = attempt {
            store::attempts_done(&tx, k)?;
        }
        // A message given up on earlier is stored under its raw hash.
        let given_up = match attempt {
            Some(k) => store::message_seen(&tx, "in", k)?,
            None => false,
        };
        if given_up || store::message_seen(&tx, "in", &msg.dedupe_key)? {
            let disposition = if store::is_quarantined(&tx, &msg.dedupe_key)? { Disposition::Quarantine } else { Disposition::Processed };
            tx.commit()?;
            return Ok(Outcome {
                disposition,
                case: None,
                duplicate: true,
                summary: "already processed (duplicate delivery); nothing changed".into(),
            });
        }
        if let Some(summary) = super::canary::returned(self, &tx, seen, raw, now)? {
            tx.commit()?;
            return Ok(Outcome { disposition: Disposition::Processed, case: None, duplicate: false, summary });
        }
        let verdict = self.spam.judge(&spam_input(msg, &self.cfg.mailbox));
        let ctx = self.context(&tx, seen, raw, now, Some(&verdict))?;
        let actions = case::decide(msg, &ctx);
        let outcome = Perform::new(self, &tx, seen, raw, now).verdict(&verdict).team(&ctx.team).run(&actions)?;
        tx.commit()?;
        Ok(outcome)
    }

    /// Release a quarantined message into normal processing (case + ack), as
    /// `secmail release QID` and the `#release QID` team command do. `by` says
    /// who released it (for the record).
    pub fn release(&self, conn: &mut Connection, qid: i64, by: &str) -> Result<Outcome> {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let outcome = self.release_in(&tx, qid, by)?;
        tx.commit()?;
        self.outbox.notify_one();
        Ok(outcome)
    }

    /// [`Pipeline::release`] inside the caller's transaction (the `#release`
    /// command applies it with the rest of its mail).
    pub(super) fn release_in(&self, tx: &Connection, qid: i64, by: &str) -> Result<Outcome> {
        let now = self.clock.now();
        let q = store::get_quarantine(tx, qid)?.with_context(|| format!("no quarantined message Q{qid}"))?;
        if let Some(at) = q.released_at {
            anyhow::bail!(
                "Q{qid} was already released at {at}{}",
                q.released_case.map(|n| format!(" as {}", case_id(&self.cfg.mailbox.case_prefix, n))).unwrap_or_default()
            );
        }
        let raw = store::message_raw(tx, q.message_pk)?;
        let seen = self.see(&raw, now);
        let ctx = self.context(tx, &seen, &raw, now, None)?;
        let actions = case::decide(&seen.msg, &ctx);
        let outcome = Perform::new(self, tx, &seen, &raw, now).refile(q.message_pk).team(&ctx.team).run(&actions)?;
        if let Some(id) = outcome.case {
            store::add_event(tx, id, now, "released", Some(by), &format!("released from quarantine (Q{qid}, score {:.1}) by {by}", q.score))?;
        }
        store::mark_released(tx, qid, outcome.case, by, now)?;
        Ok(outcome)
    }

    /// A message that failed `limits.max_attempts` times: kept raw on a case
    /// of its own, flagged, the team told (metadata only). Nothing of it is
    /// parsed by mail-parser here (it may be what failed).
    async fn give_up(&self, raw: Arc<Vec<u8>>, key: String, why: String) -> Result<Outcome> {
        let this = self.clone();
        tracing::error!("giving up on a message after limits.max_attempts: {why}");
        self.store.call(move |c| this.file_failed(c, &raw, &key, &why)).await
    }

    fn file_failed(&self, conn: &mut Connection, raw: &[u8], key: &str, why: &str) -> Result<Outcome> {
        let now = self.clock.now();
        let cfg = &*self.cfg;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        store::attempts_done(&tx, key)?;
        let msg = mail::kept_raw(raw, &format!("processing failed: {why}"));
        if store::message_seen(&tx, "in", &msg.dedupe_key)? {
            tx.commit()?;
            return Ok(Outcome { disposition: Disposition::Processed, case: None, duplicate: true, summary: "already kept as failed".into() });
        }
        let reporter = msg.from.clone().unwrap_or_else(|| "(unknown)".into());
        let subject = if msg.subject.is_empty() { "(processing failed)".to_string() } else { msg.subject.clone() };
        let id = store::insert_case(&tx, &reporter, &subject, false, now)?;
        let flags = format!("processing failed: {why}");
        store::insert_message(
            &tx,
            &store::NewMessage {
                case_id: Some(id),
                direction: "in",
                message_id: &msg.message_id,
                dedupe_key: &msg.dedupe_key,
                from: msg.from.as_deref(),
                date: None,
                subject: Some(&msg.subject),
                encrypted: false,
                signature: "none",
                flags: &flags,
                raw,
            },
            now,
        )?;
        store::add_event(&tx, id, now, "processing-failed", None, &format!("{flags}; kept raw; no ack was sent"))?;
        for (kind, due) in deadline::on_open(&cfg.policy, now) {
            super::timers::schedule(&tx, cfg, id, kind, due)?;
        }
        let row = store::get_case(&tx, id)?.context("case vanished")?.view();
        let problems = [format!("processing failed after {} attempts: {why}; no ack was sent to the reporter", cfg.limits.max_attempts)];
        let content = Content { text: "", protected_subject: None, crypto: "not read", problems: &problems };
        let notice = Notice::Flagged("secmail could not process this message".into());
        for member in cfg.team.recipients() {
            let mid = compose::new_message_id(&cfg.mailbox.address);
            match compose::team_notice(cfg, &row, &msg, &content, &notice, &member, None, mid, now) {
                Ok(m) => {
                    self.queue(&tx, Some(id), format!("failed:{}:{}", msg.dedupe_key, member.to_ascii_lowercase()), "team-notice", &m, TEAM_NOTICE_FLAG, now)?;
                }
                Err(e) => store::add_event(&tx, id, now, "notice-degraded", None, &format!("no notice to {member}: {e:#}"))?,
            }
        }
        tx.commit()?;
        Ok(Outcome {
            disposition: Disposition::Processed,
            case: Some(id),
            duplicate: false,
            summary: format!("processing failed; kept raw on {}", case_id(&cfg.mailbox.case_prefix, id)),
        })
    }

    /// What the rules look at besides the message. `verdict` is the spam
    /// judgment; `None` for a message a human released from quarantine (they
    /// vouch for it: not spam, not forged).
    fn context(&self, c: &Connection, seen: &Seen, raw: &[u8], now: DateTime<Utc>, verdict: Option<&Verdict>) -> Result<Context> {
        let msg = &seen.msg;
        let known = |id: i64| -> Result<Option<KnownCase>> {
            Ok(store::get_case(c, id)?.map(|k| KnownCase { id: k.id, reporter: k.reporter, state: k.state }))
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
        let on_case = by_reference.as_ref().or(by_tag.as_ref()).map(|k| k.id);
        let team = match on_case {
            Some(case) => self.team_status(c, seen, raw, case, now)?,
            None => TeamStatus::NotTeam,
        };
        let team_addresses = self.cfg.team.recipients();
        let alert_to = match &self.cfg.team.coordinator {
            Some(a) => vec![a.clone()],
            None => team_addresses.clone(),
        };
        Ok(Context {
            by_reference,
            by_tag,
            own_message: self.is_own_message(c, msg)?,
            team,
            alert_to,
            team_addresses,
            auto_replies_last_hour,
            auto_reply_limit: self.cfg.limits.auto_replies_per_sender_per_hour,
            spam: verdict.is_some_and(|v| v.spam),
            forged_from: verdict.is_some() && msg.from.as_deref().is_some_and(|f| self.cfg.mailbox.is_ours(f)),
            unauthenticated: verdict.and_then(|v| v.unauthenticated.clone()),
            reply_refused: msg.reply_address().and_then(|a| self.cfg.mailbox.never_send_to(a)),
        })
    }

    /// Whether a message on a case speaks for the team ([`team::check`]), is a
    /// replay of a signature already applied, and what its commands say.
    fn team_status(&self, c: &Connection, seen: &Seen, raw: &[u8], case: i64, now: DateTime<Utc>) -> Result<TeamStatus> {
        let signer = match team::check(seen, raw, &self.keys, &self.cfg.team, now) {
            TeamCheck::NotTeam => return Ok(TeamStatus::NotTeam),
            TeamCheck::Refused { why } => {
                let member = seen.msg.from.clone().filter(|f| self.cfg.team.is_member(f));
                return Ok(TeamStatus::Refused { why, member });
            }
            TeamCheck::Verified(v) => v,
        };
        if let Some(earlier) = store::signature_applied(c, &signer.signature_id)? {
            let on = earlier.case_id.map(|n| format!(" on {}", case_id(&self.cfg.mailbox.case_prefix, n))).unwrap_or_default();
            let why = format!(
                "a replay: this signature was already applied{on} at {} (message <{}>); a signed mail is applied once",
                earlier.applied_at.to_rfc3339(),
                earlier.message_id
            );
            return Ok(TeamStatus::Refused { why, member: Some(signer.member) });
        }
        let team_addresses = self.cfg.team.recipients();
        let cmd_ctx = CommandContext { case_prefix: &self.cfg.mailbox.case_prefix, case_id: case, team: &team_addresses, now };
        let mail = commands::parse_team_mail(seen.text(), &cmd_ctx);
        Ok(TeamStatus::Verified { signer, mail })
    }

    fn is_own_message(&self, c: &Connection, msg: &Parsed) -> Result<bool> {
        if !msg.has_message_id {
            return Ok(false);
        }
        let domain = self.cfg.mailbox.address.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
        if msg.message_id.starts_with("secmail.") && msg.message_id.ends_with(&format!("@{domain}")) {
            return Ok(true);
        }
        store::is_outgoing_message_id(c, &msg.message_id)
    }

    /// Queue a composed mail for a decision and record it as an outgoing message
    /// (so replies to it thread). `false` if the decision was already queued.
    #[allow(clippy::too_many_arguments)]
    ///
    /// Never to ourselves: a recipient that is the mailbox, an alias, or a
    /// postmaster/mailer-daemon is dropped from the envelope (the canary
    /// alone goes to the mailbox, on purpose); with no recipient left nothing
    /// is queued.
    pub(super) fn queue(&self, c: &Connection, case: Option<i64>, decision: String, kind: &str, m: &compose::Composed, flags: &str, now: DateTime<Utc>) -> Result<bool> {
        let mut recipients = m.to.clone();
        if kind != "canary" {
            recipients.retain(|to| match self.cfg.mailbox.never_send_to(to) {
                Some(why) => {
                    tracing::warn!(kind, "not sending to {to}: it is {why}");
                    false
                }
                None => true,
            });
            if recipients.is_empty() {
                return Ok(false);
            }
        }
        let out = OutMail {
            case_id: case,
            decision,
            kind: kind.into(),
            message_id: m.message_id.clone(),
            envelope_from: self.cfg.mailbox.address.clone(),
            recipients,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{FakeClock, SharedClock};
    use crate::config::Config;
    use crate::keys::Keys;
    use crate::mail::{self, ParseLimits};
    use crate::source::Disposition;
    use crate::store::{self, Store};
    use std::path::Path;
    use std::sync::Arc;
    use tokio::sync::Notify;

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

    fn events(store: &Store, kind: &str) -> Vec<String> {
        store
            .call_sync(|c| {
                let mut st = c.prepare("SELECT detail FROM events WHERE kind = ?1 ORDER BY id")?;
                let rows = st.query_map([kind], |r| r.get(0))?.collect::<rusqlite::Result<Vec<String>>>()?;
                Ok(rows)
            })
            .unwrap()
    }

    fn count(store: &Store, sql: &str) -> i64 {
        store.call_sync(|c| Ok(c.query_row(sql, [], |r| r.get(0))?)).unwrap()
    }

    /// See: issue 7. The rfc822 nesting bomb at 10x the limit (it used to
    /// overflow the stack inside mail-parser and abort the process) is kept
    /// on a case, flagged with the limit, and its reporter still gets an ack.
    #[test]
    fn the_nesting_bomb_is_kept_on_a_case_with_the_limit_it_broke() {
        let d = tempfile::tempdir().unwrap();
        let (p, store) = pipeline(d.path());
        let mut bomb = String::from("From: r@example.org\r\nSubject: nested\r\nMessage-ID: <bomb@x>\r\n");
        for _ in 0..40_000 {
            bomb.push_str("Content-Type: message/rfc822\r\n\r\n");
        }
        let out = store.call_sync(|c| p.process(c, bomb.as_bytes())).unwrap();
        assert_eq!(out.case, Some(1), "{}", out.summary);
        assert!(events(&store, "over-limit")[0].contains("limits.max_mime_depth"));
        assert_eq!(count(&store, "SELECT count(*) FROM outbox WHERE kind = 'ack'"), 1);
        let notice: Vec<u8> = store.call_sync(|c| Ok(c.query_row("SELECT raw FROM outbox WHERE kind = 'team-notice'", [], |r| r.get(0))?)).unwrap();
        assert!(String::from_utf8_lossy(&notice).contains("over-limit: limits.max_mime_depth"));
    }

    #[test]
    fn world_subjects_and_refused_senders_each_open_a_case() {
        let d = tempfile::tempdir().unwrap();
        let (p, store) = pipeline(d.path());
        let subjects = ["=?UTF-8?B?0KPRj9C30LLQuNC80L7RgdGC0Yw=?=", "=?UTF-8?Q?=F0=9F=94=A5_RCE?=", "=?UTF-8?B?16TXkteZ16LXldeq?=", "Lỗ hổng"];
        for (i, s) in subjects.iter().enumerate() {
            let raw = format!("From: r{i}@example.org\r\nSubject: {s}\r\nMessage-ID: <w{i}@x>\r\n\r\nx\r\n");
            assert_eq!(store.call_sync(|c| p.process(c, raw.as_bytes())).unwrap().case, Some(i as i64 + 1));
        }
        let raw = b"From: taro..yamada@docomo.ne.jp\r\nSubject: XSS\r\nMessage-ID: <jp@x>\r\n\r\nx\r\n";
        assert_eq!(store.call_sync(|c| p.process(c, raw)).unwrap().case, Some(5));
        assert_eq!(count(&store, "SELECT count(*) FROM outbox WHERE kind = 'ack'"), 4);
        assert!(events(&store, "no-ack")[0].contains("refused by the SMTP library"));
        let cases = store.call_sync(|c| store::list_cases(c, true)).unwrap();
        assert!(cases.iter().any(|c| c.subject == "🔥 RCE"));
    }

    fn boom_trigger(store: &Store) {
        // A failure that will not heal: every normal insert of this message fails.
        store
            .call_sync(|c| {
                c.execute_batch(
                    "CREATE TRIGGER boom BEFORE INSERT ON messages
                     WHEN NEW.direction = 'in' AND NEW.flags NOT LIKE 'processing failed%'
                     BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
                )?;
                Ok(())
            })
            .unwrap();
    }

    /// A message that keeps failing is given up after `limits.max_attempts`:
    /// kept raw on a case flagged with the reason, the team told, no retry.
    #[tokio::test]
    async fn a_message_that_keeps_failing_ends_on_a_flagged_case() {
        let d = tempfile::tempdir().unwrap();
        let (p, store) = pipeline(d.path());
        boom_trigger(&store);
        let raw = b"From: r@example.org\r\nSubject: boom\r\nMessage-ID: <boom@x>\r\n\r\nSECRET\r\n".to_vec();
        for attempt in 1..=2 {
            let e = p.handle(raw.clone()).await.unwrap_err();
            assert!(format!("{e:#}").contains("injected failure"), "attempt {attempt}: {e:#}");
        }
        let out = p.handle(raw.clone()).await.unwrap();
        assert_eq!(out.disposition, Disposition::Processed);
        assert_eq!(out.case, Some(1));
        let why = &events(&store, "processing-failed")[0];
        assert!(why.contains("injected failure") && why.contains("no ack"), "{why}");
        let flags: String = store.call_sync(|c| Ok(c.query_row("SELECT flags FROM messages WHERE direction = 'in'", [], |r| r.get(0))?)).unwrap();
        assert!(flags.starts_with("processing failed: "), "{flags}");
        assert_eq!(count(&store, "SELECT count(*) FROM outbox WHERE kind = 'team-notice'"), 1);
        assert_eq!(count(&store, "SELECT count(*) FROM outbox WHERE kind = 'ack'"), 0);
        assert_eq!(count(&store, "SELECT count(*) FROM attempts"), 0);
        let case = store.call_sync(|c| store::get_case(c, 1)).unwrap().unwrap();
        assert_eq!((case.reporter.as_str(), case.subject.as_str()), ("r@example.org", "boom"));
        // Delivered again: a duplicate, not a second case.
        assert!(p.handle(raw).await.unwrap().duplicate);
    }

    /// Attempts are counted before processing, so crashes while a message was
    /// in hand (an abort no handler sees) count across restarts.
    #[tokio::test]
    async fn crashes_while_in_hand_count_as_attempts() {
        let d = tempfile::tempdir().unwrap();
        let (p, store) = pipeline(d.path());
        let raw = b"From: r@example.org\r\nSubject: crash\r\nMessage-ID: <crash@x>\r\n\r\nx\r\n".to_vec();
        let key = mail::raw_hash(&raw);
        let now = "2026-11-25T10:00:00Z".parse().unwrap();
        for _ in 0..3 {
            store.call_sync(|c| store::begin_attempt(c, &key, now)).unwrap();
        }
        let out = p.handle(raw).await.unwrap();
        assert_eq!(out.case, Some(1));
        assert!(events(&store, "processing-failed")[0].contains("stopped while processing it 3 times"));
        // An ordinary message is not affected, and clears its attempt.
        let ok = p.handle(b"From: r@example.org\r\nSubject: XSS\r\nMessage-ID: <ok@x>\r\n\r\nx\r\n".to_vec()).await.unwrap();
        assert_eq!(ok.case, Some(2));
        assert_eq!(count(&store, "SELECT count(*) FROM attempts"), 0);
    }

    /// An expired member key no longer stops intake: that member gets a
    /// metadata-only notice, and the case says why.
    #[test]
    fn an_expired_member_key_degrades_to_a_metadata_notice() {
        use sequoia_openpgp::cert::CertBuilder;
        let d = tempfile::tempdir().unwrap();
        let cfg = Arc::new(Config::builtin(d.path()).unwrap());
        let store = Store::open(&cfg.store.path).unwrap();
        let now: chrono::DateTime<chrono::Utc> = "2026-11-25T10:00:00Z".parse().unwrap();
        let long_ago = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let (expired, _) = CertBuilder::general_purpose(Some("<coordinator@localhost>"))
            .set_creation_time(long_ago)
            .set_validity_period(std::time::Duration::from_secs(86_400))
            .generate()
            .unwrap();
        let (team, _) = CertBuilder::general_purpose(Some("<security@localhost>")).set_creation_time(long_ago).generate().unwrap();
        let keys = Keys::new(
            Some(crate::crypto::TeamKeys::from_certs(vec![team], None).unwrap()),
            vec![("coordinator@localhost".into(), expired)],
            Vec::new(),
        );
        let clock: SharedClock = Arc::new(FakeClock::new(now));
        let p = Pipeline::new(cfg, Arc::new(keys), store.clone(), clock, Arc::new(Notify::new())).unwrap();
        let out = store.call_sync(|c| p.process(c, b"From: r@example.org\r\nSubject: XSS\r\nMessage-ID: <k@x>\r\n\r\nSECRET-TEXT\r\n")).unwrap();
        assert_eq!(out.case, Some(1));
        assert!(events(&store, "notice-degraded")[0].contains("coordinator@localhost"));
        let notice: Vec<u8> = store.call_sync(|c| Ok(c.query_row("SELECT raw FROM outbox WHERE kind = 'team-notice'", [], |r| r.get(0))?)).unwrap();
        assert!(!String::from_utf8_lossy(&notice).contains("SECRET-TEXT"), "metadata only");
        assert_eq!(count(&store, "SELECT count(*) FROM outbox WHERE kind = 'ack'"), 1);
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

    /// See: issue 15. Spam with our own address forged in From is held (no
    /// case, nothing sent to security@), and a report whose Reply-To points
    /// at the mailbox or a postmaster opens a case without an ack.
    #[test]
    fn nothing_of_ours_goes_to_ourselves() {
        let d = tempfile::tempdir().unwrap();
        let (p, store) = pipeline(d.path());
        let forged = b"From: Security Team <security@localhost>\r\nSubject: Invoice 2291 overdue\r\nMessage-ID: <forged@spam.example>\r\n\r\npay\r\n";
        let out = store.call_sync(|c| p.process(c, forged)).unwrap();
        assert_eq!(out.disposition, Disposition::Quarantine, "{}", out.summary);
        assert!(out.case.is_none());
        assert!(out.summary.contains("forged-own-address"), "{}", out.summary);
        assert_eq!(count(&store, "SELECT count(*) FROM outbox"), 0);
        for (i, reply_to) in ["security@localhost", "postmaster@example.org", "MAILER-DAEMON@example.org"].iter().enumerate() {
            let raw = format!("From: r{i}@example.org\r\nReply-To: {reply_to}\r\nSubject: XSS in search\r\nMessage-ID: <rt{i}@x>\r\n\r\nx\r\n");
            let out = store.call_sync(|c| p.process(c, raw.as_bytes())).unwrap();
            assert!(out.case.is_some(), "{reply_to}: {}", out.summary);
        }
        assert_eq!(count(&store, "SELECT count(*) FROM outbox WHERE kind = 'ack'"), 0);
        assert_eq!(events(&store, "no-ack").len(), 3);
        let to_us = count(&store, "SELECT count(*) FROM outbox WHERE recipients LIKE '%security@localhost%' OR lower(recipients) LIKE '%postmaster@%' OR lower(recipients) LIKE '%mailer-daemon@%'");
        assert_eq!(to_us, 0);
    }

    /// See: issue 15. A sender our MTA calls forged gets a case and a team
    /// notice that says so, but no ack; another authserv-id is not believed.
    #[test]
    fn an_unauthenticated_sender_gets_a_case_but_no_ack() {
        let d = tempfile::tempdir().unwrap();
        let mut cfg = Config::builtin(d.path()).unwrap();
        cfg.spam.trusted_authserv_id = Some("mx.localhost".into());
        let store = Store::open(&cfg.store.path).unwrap();
        let clock: SharedClock = Arc::new(FakeClock::new("2026-11-25T10:00:00Z".parse().unwrap()));
        let p = Pipeline::new(Arc::new(cfg), Arc::new(Keys::default()), store.clone(), clock, Arc::new(Notify::new())).unwrap();
        let raw = b"From: r@example.org\r\nAuthentication-Results: mx.localhost; dmarc=fail header.from=example.org\r\nSubject: XSS in search\r\nMessage-ID: <ar1@x>\r\n\r\nx\r\n";
        let out = store.call_sync(|c| p.process(c, raw)).unwrap();
        assert_eq!(out.case, Some(1), "{}", out.summary);
        assert_eq!(count(&store, "SELECT count(*) FROM outbox WHERE kind = 'ack'"), 0);
        assert!(events(&store, "ack-withheld")[0].contains("dmarc=fail"));
        let notice: Vec<u8> = store.call_sync(|c| Ok(c.query_row("SELECT raw FROM outbox WHERE kind = 'team-notice'", [], |r| r.get(0))?)).unwrap();
        assert!(String::from_utf8_lossy(&notice).contains("ack-withheld"), "the team notice says why");
        let untrusted = b"From: r2@example.org\r\nAuthentication-Results: mx.attacker.example; dmarc=fail\r\nSubject: XSS in search\r\nMessage-ID: <ar2@x>\r\n\r\nx\r\n";
        assert_eq!(store.call_sync(|c| p.process(c, untrusted)).unwrap().case, Some(2));
        assert_eq!(count(&store, "SELECT count(*) FROM outbox WHERE kind = 'ack'"), 1);
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

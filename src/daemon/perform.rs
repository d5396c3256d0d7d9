//! Performing the [`Action`]s that [`crate::case::decide`] returned for one
//! message, inside the caller's transaction: one small function per action.
//!
//! A step that cannot succeed for a reason that will not heal degrades instead
//! of failing the message: a reporter key that cannot encrypt gives a plain ack
//! (an ack never carries report text); a member key that cannot encrypt (expired,
//! revoked) gives that member a metadata-only notice. Each degradation is an
//! event on the case and a line in the team notice.
//!
//! Side effects: the store (through the caller's transaction).

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use rusqlite::Connection;

use super::intake::Pipeline;
use super::seen::Seen;
use super::{Outcome, TEAM_NOTICE_FLAG};
use crate::case::{Action, Notice, case_id};
use crate::compose::{self, AckNote, Composed, Content, Seal};
use crate::crypto::{self, Cert};
use crate::deadline;
use crate::keys::Reading;
use crate::source::Disposition;
use crate::spam::Verdict;
use crate::store;

/// Event kinds that the team notice repeats as a problem line.
const NOTED_EVENTS: &[&str] = &["no-ack", "over-limit", "malformed", "ack-degraded"];

/// One message's actions being performed, and what they gave so far.
pub(super) struct Perform<'a> {
    p: &'a Pipeline,
    c: &'a Connection,
    seen: &'a Seen,
    raw: &'a [u8],
    now: DateTime<Utc>,
    /// The stored message being released from quarantine (refiled, not inserted).
    existing: Option<i64>,
    /// The spam verdict, for a quarantine.
    verdict: Option<&'a Verdict>,
    /// The case the message is on, once opened or found.
    case: Option<i64>,
    /// Whether the message itself is stored yet.
    stored: bool,
    disposition: Disposition,
    summary: Vec<String>,
    /// What could not be done and was skipped or degraded, for the team.
    problems: Vec<String>,
}

impl<'a> Perform<'a> {
    pub(super) fn new(p: &'a Pipeline, c: &'a Connection, seen: &'a Seen, raw: &'a [u8], now: DateTime<Utc>) -> Self {
        Perform {
            p,
            c,
            seen,
            raw,
            now,
            existing: None,
            verdict: None,
            case: None,
            stored: false,
            disposition: Disposition::Processed,
            summary: Vec::new(),
            problems: Vec::new(),
        }
    }

    pub(super) fn verdict(mut self, v: &'a Verdict) -> Self {
        self.verdict = Some(v);
        self
    }

    pub(super) fn refile(mut self, message_pk: i64) -> Self {
        self.existing = Some(message_pk);
        self
    }

    /// Perform every action in order; the message is stored exactly once.
    pub(super) fn run(mut self, actions: &[Action]) -> Result<Outcome> {
        for a in actions {
            match a {
                Action::Ignore { reason } => self.ignore(reason)?,
                Action::OpenCase => self.open_case()?,
                Action::Append { case_id, flag } => self.append(*case_id, flag.as_deref())?,
                Action::Event { kind, detail } => self.event(kind, detail)?,
                Action::Ack { to } => self.ack(to)?,
                Action::Quarantine => self.quarantine()?,
                Action::Notify(notice) => self.notify(notice)?,
            }
        }
        if !self.stored {
            self.store_in(None, "")?;
        }
        Ok(Outcome { disposition: self.disposition, case: self.case, duplicate: false, summary: self.summary.join(", ") })
    }

    fn case_name(&self, id: i64) -> String {
        case_id(&self.p.cfg.mailbox.case_prefix, id)
    }

    /// Store the message (on a case or none) with these flags, plus the flag
    /// of an encryption problem.
    fn store_in(&mut self, case_id: Option<i64>, flags: &str) -> Result<i64> {
        let msg = &self.seen.msg;
        let flags = match (self.seen.problem(), flags.is_empty()) {
            (Some(p), true) => format!("undecryptable: {p}"),
            (Some(p), false) => format!("{flags}; undecryptable: {p}"),
            (None, _) => flags.to_string(),
        };
        self.stored = true;
        if let Some(pk) = self.existing {
            store::refile_message(self.c, pk, case_id, &flags)?;
            return Ok(pk);
        }
        store::insert_message(
            self.c,
            &store::NewMessage {
                case_id,
                direction: "in",
                message_id: &msg.message_id,
                dedupe_key: &msg.dedupe_key,
                from: msg.from.as_deref(),
                date: msg.date,
                subject: Some(&msg.subject),
                encrypted: msg.encrypted,
                signature: self.seen.signature(),
                flags: &flags,
                raw: self.raw,
            },
            self.now,
        )
    }

    fn ignore(&mut self, reason: &str) -> Result<()> {
        self.store_in(None, &format!("ignored: {reason}"))?;
        self.summary.push(format!("ignored ({reason})"));
        Ok(())
    }

    fn open_case(&mut self) -> Result<()> {
        let msg = &self.seen.msg;
        let reporter = msg.reply_address().or(msg.from.as_deref()).unwrap_or("(unknown)");
        let subject = if msg.subject.is_empty() { "(no subject)" } else { &msg.subject };
        let id = store::insert_case(self.c, reporter, &compose::one_line(subject), msg.encrypted, self.now)?;
        let flags = msg.malformed.as_deref().map(|m| format!("malformed: {m}")).unwrap_or_default();
        self.store_in(Some(id), &flags)?;
        store::add_event(self.c, id, self.now, "opened", msg.from.as_deref(), &format!("case opened by message <{}>", msg.message_id))?;
        for (kind, due) in deadline::on_open(&self.p.cfg.policy, self.now) {
            store::add_deadline(self.c, id, kind.as_str(), due)?;
        }
        if let Some(p) = self.seen.problem() {
            store::add_event(self.c, id, self.now, "undecryptable", None, p)?;
        }
        self.case = Some(id);
        self.summary.push(format!("opened {}", self.case_name(id)));
        Ok(())
    }

    fn append(&mut self, id: i64, flag: Option<&str>) -> Result<()> {
        self.store_in(Some(id), flag.unwrap_or(""))?;
        self.case = Some(id);
        self.summary.push(format!("appended to {}", self.case_name(id)));
        Ok(())
    }

    fn event(&mut self, kind: &'static str, detail: &str) -> Result<()> {
        if NOTED_EVENTS.contains(&kind) {
            self.problems.push(format!("{kind}: {detail}"));
        }
        if let Some(id) = self.case {
            store::add_event(self.c, id, self.now, kind, self.seen.msg.from.as_deref(), detail)?;
        }
        Ok(())
    }

    fn ack(&mut self, to: &str) -> Result<()> {
        let (p, seen, now) = (self.p, self.seen, self.now);
        let cfg = &*p.cfg;
        let id = self.case.context("ack without a case")?;
        let row = store::get_case(self.c, id)?.context("case vanished")?.view();
        let due = store::deadlines(self.c, id)?
            .into_iter()
            .find(|d| d.kind == deadline::Kind::FirstResponse.as_str())
            .map(|d| d.due_at)
            .unwrap_or(self.now);
        let fpr = self.p.keys.team.as_ref().map(|t| t.signing_fingerprint());
        let note = match &self.seen.reading {
            Reading::Plain => AckNote::None,
            Reading::Decrypted { .. } => AckNote::Decrypted,
            Reading::Unreadable { .. } => AckNote::Unreadable { team_fingerprint: fpr.as_deref() },
        };
        let reporter_key = self.reporter_key(to);
        let seal = match (&reporter_key, &self.p.keys.team) {
            (Some(k), Some(team)) => Some(Seal { to: k, team }),
            _ => None,
        };
        let compose = |seal| compose::ack(cfg, &row, &seen.msg, to, due, note, seal, compose::new_message_id(&cfg.mailbox.address), now);
        let m = match compose(seal) {
            Ok(m) => m,
            Err(e) if seal.is_some() => {
                let why = format!("the ack could not be encrypted ({e:#}); sent unencrypted (it carries no report text)");
                self.event("ack-degraded", &why)?;
                match compose(None) {
                    Ok(m) => m,
                    Err(e) => return self.event("no-ack", &format!("ack not sent: {e:#}")),
                }
            }
            Err(e) => return self.event("no-ack", &format!("ack not sent: {e:#}")),
        };
        if self.p.queue(self.c, Some(id), format!("ack:{id}"), "ack", &m, "", self.now)? {
            store::record_auto_reply(self.c, to, self.now)?;
            store::add_event(self.c, id, self.now, "ack-queued", None, &format!("ack to {to} queued"))?;
            self.summary.push(format!("ack to {to} queued"));
        }
        Ok(())
    }

    /// The reporter's key to encrypt to: from the keyring, the message, or
    /// inside its encryption (SPEC §4).
    fn reporter_key(&self, to: &str) -> Option<Cert> {
        crypto::reporter_cert(self.raw, to, &self.p.keys.reporter_keyring, self.now).or_else(|| match &self.seen.reading {
            Reading::Decrypted { inner, .. } => crypto::reporter_cert(inner, to, &[], self.now),
            _ => None,
        })
    }

    fn quarantine(&mut self) -> Result<()> {
        let pk = self.store_in(None, "quarantined")?;
        let v = self.verdict.context("quarantine without a spam verdict")?;
        let rules: Vec<serde_json::Value> = v.matched.iter().map(|h| serde_json::json!({"rule": h.rule, "score": h.score})).collect();
        let qid = store::quarantine(self.c, pk, v.score, &serde_json::to_string(&rules)?, self.now)?;
        self.disposition = Disposition::Quarantine;
        let names = v.matched.iter().map(|h| h.rule.as_str()).collect::<Vec<_>>().join(", ");
        self.summary.push(format!("held as spam: Q{qid}, score {:.1} ({names})", v.score));
        Ok(())
    }

    fn notify(&mut self, notice: &Notice) -> Result<()> {
        let cfg = &*self.p.cfg;
        let id = self.case.context("notification without a case")?;
        let row = store::get_case(self.c, id)?.context("case vanished")?.view();
        let crypto_line = self.seen.crypto_line();
        let problems = self.problems.clone();
        let content = Content { text: self.seen.text(), protected_subject: self.seen.protected_subject(), crypto: &crypto_line, problems: &problems };
        for member in cfg.team.recipients() {
            let seal = match (self.p.keys.member_cert(&member), &self.p.keys.team) {
                (Some(k), Some(team)) => Some(Seal { to: k, team }),
                _ => None,
            };
            let compose = |seal| compose::team_notice(cfg, &row, &self.seen.msg, &content, notice, &member, seal, compose::new_message_id(&cfg.mailbox.address), self.now);
            let m: Composed = match compose(seal) {
                Ok(m) => m,
                Err(e) if seal.is_some() => {
                    let why = format!("the notice to {member} could not be encrypted to their key ({e:#}); sent as metadata only");
                    store::add_event(self.c, id, self.now, "notice-degraded", None, &why)?;
                    let metadata_only = Content { text: "", protected_subject: None, ..content };
                    match compose::team_notice(cfg, &row, &self.seen.msg, &metadata_only, notice, &member, None, compose::new_message_id(&cfg.mailbox.address), self.now) {
                        Ok(m) => m,
                        Err(e) => {
                            store::add_event(self.c, id, self.now, "notice-degraded", None, &format!("no notice to {member}: {e:#}"))?;
                            continue;
                        }
                    }
                }
                Err(e) => {
                    store::add_event(self.c, id, self.now, "notice-degraded", None, &format!("no notice to {member}: {e:#}"))?;
                    continue;
                }
            };
            let decision = format!("notify:{}:{}", self.seen.msg.dedupe_key, member.to_ascii_lowercase());
            self.p.queue(self.c, Some(id), decision, "team-notice", &m, TEAM_NOTICE_FLAG, self.now)?;
        }
        self.summary.push("team notified".into());
        Ok(())
    }
}

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
use crate::case::{Action, Notice, TeamStatus, case_id};
use crate::commands::Command;
use crate::compose::{self, AckNote, Composed, Content, Seal};
use crate::crypto::{self, Cert};
use crate::deadline;
use crate::keys::Reading;
use crate::source::Disposition;
use crate::spam::Verdict;
use crate::store;

/// Event kinds that the team notice repeats as a problem line.
const NOTED_EVENTS: &[&str] = &["no-ack", "ack-withheld", "over-limit", "malformed", "ack-degraded", "reporter-key-changed"];

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
    /// The team check, for verified team mail.
    team: Option<&'a TeamStatus>,
    /// The stored message's row, once stored.
    message_pk: Option<i64>,
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
            team: None,
            message_pk: None,
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

    pub(super) fn team(mut self, t: &'a TeamStatus) -> Self {
        self.team = Some(t);
        self
    }

    pub(super) fn refile(mut self, message_pk: i64) -> Self {
        self.existing = Some(message_pk);
        self
    }

    /// Perform every action in order; the message is stored exactly once.
    pub(super) fn run(mut self, actions: &[Action]) -> Result<Outcome> {
        let checked;
        let actions = match self.commands_refused(actions)? {
            Some(a) => {
                checked = a;
                &checked[..]
            }
            None => actions,
        };
        for a in actions {
            match a {
                Action::Ignore { reason } => self.ignore(reason)?,
                Action::OpenCase => self.open_case()?,
                Action::Append { case_id, flag } => self.append(*case_id, flag.as_deref())?,
                Action::Event { kind, detail } => self.event(kind, detail)?,
                Action::Ack { to } => self.ack(to)?,
                Action::Quarantine => self.quarantine()?,
                Action::Notify(notice) => self.notify(&self.p.cfg.team.recipients(), notice)?,
                Action::Tell { to, notice } => self.notify(to, notice)?,
                Action::RecordSignature => self.record_signature()?,
                Action::Apply(cmd) => self.apply(cmd)?,
                Action::Relay { text } => self.relay(text)?,
                Action::CommandRefused { to, error } => self.command_refused(to, error)?,
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
            self.message_pk = Some(pk);
            return Ok(pk);
        }
        let pk = store::insert_message(
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
        )?;
        self.message_pk = Some(pk);
        Ok(pk)
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
            super::timers::schedule(self.c, &self.p.cfg, id, kind, due)?;
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
        if flag.is_none() {
            let row = store::get_case(self.c, id)?.context("case vanished")?;
            if let Some(cert) = self.reporter_key(&row.reporter) {
                self.pin(id, &cert)?;
            }
            if row.state == "waiting-on-reporter" {
                // The reporter answered the team's question: the update
                // clock runs again from now (SPEC §7).
                store::set_case_field(self.c, id, store::CaseField::State, Some("triaged"))?;
                store::add_event(self.c, id, self.now, "state", Some("secmail"), "state waiting-on-reporter -> triaged: the reporter answered")?;
                let (kind, due) = deadline::on_response(&self.p.cfg.policy, self.now);
                super::timers::schedule(self.c, &self.p.cfg, id, kind, due)?;
            }
        }
        Ok(())
    }

    /// Pin the reporter's key on the case the first time one is known; a
    /// different key later is flagged for the team, never silently switched.
    fn pin(&mut self, id: i64, cert: &Cert) -> Result<()> {
        let fpr = cert.fingerprint().to_hex();
        match store::reporter_key(self.c, id)? {
            None => {
                store::pin_reporter_key(self.c, id, &fpr, &crypto::cert_bytes(cert)?)?;
                store::add_event(self.c, id, self.now, "reporter-key", None, &format!("reporter key {fpr} pinned"))?;
            }
            Some((pinned, _)) if !pinned.eq_ignore_ascii_case(&fpr) => {
                let why = format!("the reporter's mail brings key {fpr}, not the pinned key {pinned}; mail to the reporter stays encrypted to {pinned} until the team decides");
                self.event("reporter-key-changed", &why)?;
            }
            Some(_) => {}
        }
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
        if let Some(k) = &reporter_key {
            self.pin(id, k)?;
        }
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

    fn notify(&mut self, recipients: &[String], notice: &Notice) -> Result<()> {
        let cfg = &*self.p.cfg;
        let id = self.case.context("notification without a case")?;
        let row = store::get_case(self.c, id)?.context("case vanished")?.view();
        let crypto_line = self.seen.crypto_line();
        let problems = self.problems.clone();
        let content = Content { text: self.seen.text(), protected_subject: self.seen.protected_subject(), crypto: &crypto_line, problems: &problems };
        for member in recipients {
            let seal = self.p.member_seal(member);
            let compose = |seal| compose::team_notice(cfg, &row, &self.seen.msg, &content, notice, member, seal, compose::new_message_id(&cfg.mailbox.address), self.now);
            let m: Composed = match compose(seal) {
                Ok(m) => m,
                Err(e) if seal.is_some() => {
                    let why = format!("the notice to {member} could not be encrypted to their key ({e:#}); sent as metadata only");
                    store::add_event(self.c, id, self.now, "notice-degraded", None, &why)?;
                    let metadata_only = Content { text: "", protected_subject: None, ..content };
                    match compose::team_notice(cfg, &row, &self.seen.msg, &metadata_only, notice, member, None, compose::new_message_id(&cfg.mailbox.address), self.now) {
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
        if !recipients.is_empty() {
            self.summary.push(format!("{} told", recipients.join(", ")));
        }
        Ok(())
    }

    /// The verified signer of this mail (only set for verified team mail).
    fn signer(&self) -> Result<&crate::team::Verified> {
        match self.team {
            Some(TeamStatus::Verified { signer, .. }) => Ok(signer),
            _ => anyhow::bail!("a team action without a verified signer"),
        }
    }

    /// The case the actions are about (for checks before anything is stored).
    fn case_hint(&self, actions: &[Action]) -> i64 {
        actions.iter().find_map(|a| if let Action::Append { case_id, .. } = a { Some(*case_id) } else { None }).unwrap_or(0)
    }

    /// The advisory of an `#advisory` mail: the text below the command, or an
    /// attached text file.
    fn advisory_text(&self) -> Option<String> {
        let Some(TeamStatus::Verified { mail: Ok(m), .. }) = self.team else { return None };
        if let Some(t) = m.advisory.as_deref().filter(|t| !t.trim().is_empty()) {
            return Some(t.to_string());
        }
        let entity: &[u8] = match &self.seen.reading {
            Reading::Decrypted { inner, .. } => inner,
            _ => self.raw,
        };
        crate::mail::attachments(entity)
            .into_iter()
            .find(|a| a.content_type.starts_with("text/"))
            .map(|a| String::from_utf8_lossy(&a.data).into_owned())
    }

    /// Who did it, for events: the member and the key.
    fn actor(&self) -> Result<String> {
        let s = self.signer()?;
        Ok(format!("{} (key {})", s.member, s.fingerprint))
    }

    /// Checks that need the store (the case or quarantined message a command
    /// names exists) before anything is applied: one failing command turns the
    /// whole mail into a refusal (SPEC §6: nothing from it is applied).
    fn commands_refused(&self, actions: &[Action]) -> Result<Option<Vec<Action>>> {
        let mut problem = None;
        for a in actions {
            let Action::Apply(cmd) = a else { continue };
            let all: Vec<Command> = actions.iter().filter_map(|a| if let Action::Apply(c) = a { Some(c.clone()) } else { None }).collect();
            let case = self.case_hint(actions);
            let why = super::steer::check(self.c, &self.p.cfg, case, cmd, &all, self.now)?;
            if why.is_some() {
                problem = why;
                break;
            }
        }
        let Some(why) = problem else { return Ok(None) };
        let who = self.signer()?.member.clone();
        let mut out = Vec::new();
        for a in actions {
            match a {
                Action::Apply(_) | Action::Relay { .. } | Action::Tell { .. } => {}
                other => out.push(other.clone()),
            }
        }
        out.push(Action::Event { kind: "command-refused", detail: format!("{why}; nothing from this mail was applied or relayed") });
        out.push(Action::CommandRefused { to: who, error: why });
        Ok(Some(out))
    }

    fn record_signature(&mut self) -> Result<()> {
        let s = self.signer()?.clone();
        let pk = self.message_pk.context("signature before the message was stored")?;
        store::set_signer(self.c, pk, &s.fingerprint, &format!("configured key of {}", s.member))?;
        store::record_signature(self.c, &s.signature_id, self.case, &s.member, &s.fingerprint, s.signed_at, &self.seen.msg.message_id, self.now)
    }

    /// One team command (SPEC §6), already validated ([`super::steer`]).
    fn apply(&mut self, cmd: &Command) -> Result<()> {
        let id = self.case.context("a command without a case")?;
        let actor = self.actor()?;
        let advisory = self.advisory_text();
        let kind = super::steer::apply(self.p, self.c, id, cmd, &actor, self.now, advisory.as_deref())?;
        self.summary.push(format!("{kind} applied"));
        Ok(())
    }

    /// The verified answer to the reporter ([`super::steer::relay`]); when it
    /// cannot go (the address or the pinned key will not work), the member is told.
    fn relay(&mut self, text: &str) -> Result<()> {
        let id = self.case.context("relay without a case")?;
        let who = self.signer()?.member.clone();
        let entity: &[u8] = match &self.seen.reading {
            Reading::Decrypted { inner, .. } => inner,
            _ => self.raw,
        };
        let attachments = crate::mail::attachments(entity);
        let decision = format!("relay:{}", self.seen.msg.dedupe_key);
        match super::steer::relay(self.p, self.c, id, text, &attachments, decision, &self.actor()?, self.now)? {
            Ok(summary) => self.summary.push(summary),
            Err(why) => self.command_refused(&who, &why)?,
        }
        Ok(())
    }

    /// Tell a member that their mail was refused (which line, why), sealed to
    /// their key when they have one.
    fn command_refused(&mut self, to: &str, error: &str) -> Result<()> {
        let cfg = &*self.p.cfg;
        let id = self.case.context("a refusal without a case")?;
        let view = store::get_case(self.c, id)?.context("case vanished")?.view();
        let seal = self.p.member_seal(to);
        let mid = &self.seen.msg.message_id;
        let compose = |seal| compose::command_error(cfg, &view, to, error, mid, seal, compose::new_message_id(&cfg.mailbox.address), self.now);
        let m = match compose(seal).or_else(|_| compose(None)) {
            Ok(m) => m,
            Err(e) => return store::add_event(self.c, id, self.now, "notice-degraded", None, &format!("no refusal mail to {to}: {e:#}")),
        };
        self.p.queue(self.c, Some(id), format!("refused:{}:{}", self.seen.msg.dedupe_key, to.to_ascii_lowercase()), "team-notice", &m, TEAM_NOTICE_FLAG, self.now)?;
        self.summary.push(format!("refusal to {to}"));
        Ok(())
    }
}

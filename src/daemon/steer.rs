//! Steering a case: the team commands of SPEC §6 applied to the store, from a
//! verified team mail ([`super::perform`]) or from the CLI on the host
//! (`secmail case SEC-4 state confirmed`). One small function per kind of
//! change; every change is an event naming who did it and with which key.
//!
//! Side effects: the store (the caller's transaction).

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use rusqlite::Connection;

use super::intake::Pipeline;
use crate::case::case_id;
use crate::commands::{Command, CommandContext, State};
use crate::compose::{self, Attachment, Seal};
use crate::deadline;
use crate::store::{self, CaseField as F};

/// What only the store can refuse (the case or quarantined message a command
/// names must exist): `Some(why)` refuses the command, and with it its mail.
pub(crate) fn check(c: &Connection, prefix: &str, cmd: &Command) -> Result<Option<String>> {
    Ok(match cmd {
        Command::Duplicate(n) if store::get_case(c, *n)?.is_none() => Some(format!("#duplicate {}: no such case", case_id(prefix, *n))),
        Command::Release(q) => match store::get_quarantine(c, *q)? {
            None => Some(format!("#release Q{q}: no such quarantined message")),
            Some(r) if r.released_at.is_some() => Some(format!("#release Q{q}: already released")),
            Some(_) => None,
        },
        _ => None,
    })
}

/// Apply one validated command to case `id`; returns the event kind recorded.
pub(crate) fn apply(p: &Pipeline, c: &Connection, id: i64, cmd: &Command, actor: &str, now: DateTime<Utc>) -> Result<&'static str> {
    let prefix = &p.cfg.mailbox.case_prefix;
    let (kind, detail) = match cmd {
        Command::Comment(text) => ("comment", format!("internal comment{}", text.as_deref().map(|t| format!(": {t}")).unwrap_or_default())),
        Command::Assign(who) => {
            store::set_case_field(c, id, F::Handler, Some(who))?;
            ("assigned", format!("handler set to {who}"))
        }
        Command::Severity(sev) => {
            store::set_case_field(c, id, F::Severity, Some(sev.as_str()))?;
            ("severity", format!("severity set to {}", sev.as_str()))
        }
        Command::Cve(cve) => {
            store::set_case_field(c, id, F::Cve, Some(cve))?;
            ("cve", format!("CVE set to {cve}"))
        }
        Command::Duplicate(n) => {
            store::set_case_field(c, id, F::DuplicateOf, Some(&n.to_string()))?;
            let (from, to) = change_state(p, c, id, cmd, now)?;
            ("duplicate", format!("duplicate of {}; state {from} -> {to}", case_id(prefix, *n)))
        }
        Command::Embargo(at) => {
            store::set_case_field(c, id, F::EmbargoUntil, Some(&at.to_rfc3339()))?;
            let (from, to) = change_state(p, c, id, cmd, now)?;
            ("embargo", format!("embargo until {}; state {from} -> {to}", at.to_rfc3339()))
        }
        Command::Release(q) => {
            let out = p.release_in(c, *q, actor)?;
            ("released", format!("Q{q} released: {}", out.summary))
        }
        Command::State(_) | Command::Close | Command::Reopen | Command::NotSecurity | Command::Publish => {
            let (from, to) = change_state(p, c, id, cmd, now)?;
            ("state", format!("state {from} -> {to}"))
        }
        Command::Affected(v) => ("affected", format!("affected versions: {v}")),
        Command::FixedIn(v) => ("fixed-in", format!("fixed in: {v}")),
        Command::Predisclose(l) => ("predisclose", format!("pre-disclosure to: {l}")),
        Command::Advisory => ("advisory", "advisory text received".to_string()),
    };
    store::add_event(c, id, now, kind, Some(actor), &detail)?;
    Ok(kind)
}

/// Move the case to the state this command leads to (by the state machine of
/// [`crate::commands`]); returns (from, to).
fn change_state(p: &Pipeline, c: &Connection, id: i64, cmd: &Command, now: DateTime<Utc>) -> Result<(State, State)> {
    let row = store::get_case(c, id)?.context("case vanished")?;
    let current: State = row.state.parse().map_err(|e| anyhow::anyhow!("case {id}: {e}"))?;
    let next = crate::commands::state_after(current, std::slice::from_ref(cmd)).map_err(|e| anyhow::anyhow!("{e}"))?.unwrap_or(current);
    store::set_case_field(c, id, F::State, Some(next.as_str()))?;
    if next == State::WaitingOnReporter && current != next {
        // The update clock pauses; silence closes the case (SPEC §7).
        super::timers::schedule_silence(c, &p.cfg, id, now)?;
    }
    if current.is_terminal() && !next.is_terminal() {
        // Reopened: the update clock starts again.
        let (kind, due) = deadline::on_response(&p.cfg.policy, now);
        super::timers::schedule(c, &p.cfg, id, kind, due)?;
    }
    Ok((current, next))
}

/// Send the team's answer to the reporter of case `id` (a verified team mail,
/// or `secmail case ID reply --file F`): sealed to the pinned reporter key when
/// there is one and signed by the team key, in the case's thread; records the
/// team response (first response, last response, the next update deadline).
/// `Ok(Err(why))` when it cannot go (an address the SMTP library refuses, a
/// pinned key that cannot encrypt: the answer may quote the report, so it is
/// never sent in clear instead); nothing is queued then.
#[allow(clippy::too_many_arguments)]
pub(crate) fn relay(
    p: &Pipeline,
    c: &Connection,
    id: i64,
    text: &str,
    attachments: &[Attachment],
    decision: String,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<std::result::Result<String, String>> {
    let cfg = &*p.cfg;
    let row = store::get_case(c, id)?.context("case vanished")?;
    let to = row.reporter.clone();
    if let Err(why) = compose::check_address(&to) {
        let why = format!("the answer could not be relayed: {why}");
        store::add_event(c, id, now, "relay-failed", Some(actor), &why)?;
        return Ok(Err(why));
    }
    let pinned = match store::reporter_key(c, id)? {
        Some((_, bytes)) => Some(crate::crypto::cert_from_bytes(&bytes).context("the pinned reporter key")?),
        None => None,
    };
    let seal = match (&pinned, &p.keys.team) {
        (Some(k), Some(team)) => Some(Seal { to: k, team }),
        _ => None,
    };
    let parent = store::last_message_from(c, id, &to)?;
    let m = match compose::relay(cfg, &row.view(), &to, text, attachments, parent.as_deref(), seal, compose::new_message_id(&cfg.mailbox.address), now) {
        Ok(m) => m,
        Err(e) => {
            let why = format!("the answer could not be relayed to {to}: {e:#}");
            store::add_event(c, id, now, "relay-failed", Some(actor), &why)?;
            return Ok(Err(why));
        }
    };
    if !p.queue(c, Some(id), decision, "relay", &m, "", now)? {
        return Ok(Ok("answer already relayed".into()));
    }
    store::record_team_response(c, id, now)?;
    store::meet_deadlines(c, id, deadline::Kind::FirstResponse.as_str(), now)?;
    store::meet_deadlines(c, id, deadline::Kind::Update.as_str(), now)?;
    if !deadline::stops_deadlines(&row.state) {
        let (kind, due) = deadline::on_response(&cfg.policy, now);
        super::timers::schedule(c, cfg, id, kind, due)?;
    }
    let how = if m.encrypted { "encrypted to the reporter's key and signed by the team key" } else { "unencrypted (no reporter key known)" };
    store::add_event(c, id, now, "relayed", Some(actor), &format!("answer relayed to {to}, {how}"))?;
    Ok(Ok(format!("answer relayed to {to}")))
}

impl Pipeline {
    /// `secmail case ID <command> ...` on the host: the same command a signed
    /// team mail carries, validated the same way, applied in one transaction.
    /// `by` names the operator (for the record).
    pub fn steer(&self, conn: &mut Connection, id: i64, word: &str, args: &str, by: &str) -> Result<String> {
        let now = self.clock_now();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let row = store::get_case(&tx, id)?.with_context(|| format!("no case {}", case_id(&self.cfg.mailbox.case_prefix, id)))?;
        let team = self.cfg.team.recipients();
        let ctx = CommandContext { case_prefix: &self.cfg.mailbox.case_prefix, case_id: id, team: &team, now };
        let cmd = crate::commands::parse_args(word, args, &ctx).map_err(|e| anyhow::anyhow!("{e}"))?;
        let current: State = row.state.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
        crate::commands::state_after(current, std::slice::from_ref(&cmd)).map_err(|e| anyhow::anyhow!("{e}"))?;
        if let Some(why) = check(&tx, &self.cfg.mailbox.case_prefix, &cmd)? {
            anyhow::bail!("{why}");
        }
        let kind = apply(self, &tx, id, &cmd, by, now)?;
        tx.commit()?;
        self.wake_outbox();
        Ok(format!("{kind} applied to {}", case_id(&self.cfg.mailbox.case_prefix, id)))
    }

    /// `secmail case ID reply --file F`: the team's answer from the host.
    pub fn reply(&self, conn: &mut Connection, id: i64, text: &str, by: &str) -> Result<String> {
        let now = self.clock_now();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        store::get_case(&tx, id)?.with_context(|| format!("no case {}", case_id(&self.cfg.mailbox.case_prefix, id)))?;
        let decision = format!("reply:{}", uuid::Uuid::new_v4().simple());
        let summary = match relay(self, &tx, id, text, &[], decision, by, now)? {
            Ok(s) => s,
            Err(why) => anyhow::bail!("{why}"),
        };
        tx.commit()?;
        self.wake_outbox();
        Ok(summary)
    }
}

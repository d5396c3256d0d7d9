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

/// What only the store and the config can refuse (the case or quarantined
/// message a command names must exist; a pre-notification list must be
/// configured; an embargo must fit every chosen list's `max_embargo` and leave
/// time for the pre-notice): `Some(why)` refuses the command, and with it its
/// mail. `all` is every command of the same mail.
pub(crate) fn check(c: &Connection, cfg: &crate::config::Config, case: i64, cmd: &Command, all: &[Command], now: DateTime<Utc>) -> Result<Option<String>> {
    let prefix = &cfg.mailbox.case_prefix;
    let d = &cfg.disclosure;
    let chosen = || -> Result<Vec<String>> {
        let mut lists = store::case_extra(c, case)?.predisclose;
        for other in all {
            if let Command::Predisclose(l) = other {
                lists.extend(list_names(l));
            }
        }
        Ok(lists)
    };
    Ok(match cmd {
        Command::Predisclose(l) => list_names(l)
            .into_iter()
            .find(|n| !d.lists.iter().any(|x| x.name.eq_ignore_ascii_case(n)))
            .map(|n| format!("#predisclose {n}: no such list (configured: {})", d.lists.iter().map(|x| x.name.as_str()).collect::<Vec<_>>().join(", "))),
        Command::Embargo(at) => {
            let mut why = None;
            for name in chosen()? {
                let Some(list) = d.lists.iter().find(|x| x.name.eq_ignore_ascii_case(&name)) else { continue };
                let max = chrono::Duration::from_std(list.max_embargo).unwrap_or(chrono::Duration::MAX);
                let pre = chrono::Duration::from_std(d.prenotice_before).unwrap_or_default();
                if *at - now > max {
                    why = Some(format!("#embargo {}: longer than {}'s max_embargo ({})", at.to_rfc3339(), list.name, humantime::format_duration(list.max_embargo)));
                } else if *at - pre < now {
                    why = Some(format!(
                        "#embargo {}: {} must be pre-notified {} before the lift, which is already past",
                        at.to_rfc3339(),
                        list.name,
                        humantime::format_duration(d.prenotice_before)
                    ));
                }
            }
            why
        }
        Command::Duplicate(n) if store::get_case(c, *n)?.is_none() => Some(format!("#duplicate {}: no such case", case_id(prefix, *n))),
        Command::Duplicate(n) if store::get_case(c, *n)?.is_none() => Some(format!("#duplicate {}: no such case", case_id(prefix, *n))),
        Command::Release(q) => match store::get_quarantine(c, *q)? {
            None => Some(format!("#release Q{q}: no such quarantined message")),
            Some(r) if r.released_at.is_some() => Some(format!("#release Q{q}: already released")),
            Some(_) => None,
        },
        _ => None,
    })
}

/// `distros, oss-security` or `distros oss-security`.
fn list_names(l: &str) -> Vec<String> {
    l.split([',', ' ']).map(str::trim).filter(|n| !n.is_empty()).map(str::to_string).collect()
}

/// Apply one validated command to case `id`; returns the event kind recorded.
/// `advisory` is the text of an `#advisory` (the rest of the mail, or a file).
pub(crate) fn apply(p: &Pipeline, c: &Connection, id: i64, cmd: &Command, actor: &str, now: DateTime<Utc>, advisory: Option<&str>) -> Result<&'static str> {
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
            store::set_case_field(c, id, F::EmbargoUntil, Some(&store::ts(*at)))?;
            let (from, to) = change_state(p, c, id, cmd, now)?;
            super::disclose::schedule(c, &p.cfg, id, *at)?;
            ("embargo", format!("embargo until {}; state {from} -> {to}", super::disclose::when(&p.cfg, *at)))
        }
        Command::Release(q) => {
            let out = p.release_in(c, *q, actor)?;
            ("released", format!("Q{q} released: {}", out.summary))
        }
        Command::State(_) | Command::Close | Command::Reopen => {
            let (from, to) = change_state(p, c, id, cmd, now)?;
            ("state", format!("state {from} -> {to}"))
        }
        Command::NotSecurity => {
            let (from, to) = change_state(p, c, id, cmd, now)?;
            super::disclose::not_security(p, c, id, now)?;
            ("state", format!("state {from} -> {to}; the reporter was told where to file a public bug"))
        }
        Command::Publish => {
            let (from, to) = change_state(p, c, id, cmd, now)?;
            super::disclose::schedule_publish(c, id, now)?;
            ("publish", format!("published now: state {from} -> {to}; the advisory goes out"))
        }
        Command::Affected(v) => {
            store::set_case_field(c, id, F::Affected, Some(v))?;
            ("affected", format!("affected versions: {v}"))
        }
        Command::FixedIn(v) => {
            store::set_case_field(c, id, F::FixedIn, Some(v))?;
            ("fixed-in", format!("fixed in: {v}"))
        }
        Command::Predisclose(l) => {
            let mut lists = store::case_extra(c, id)?.predisclose;
            for n in list_names(l) {
                let name = p.cfg.disclosure.lists.iter().find(|x| x.name.eq_ignore_ascii_case(&n)).map(|x| x.name.clone()).unwrap_or(n);
                if !lists.contains(&name) {
                    lists.push(name);
                }
            }
            store::set_case_field(c, id, F::Predisclose, Some(&serde_json::to_string(&lists)?))?;
            // An embargo already set: the new lists get their pre-notice.
            if let Some(e) = store::case_extra(c, id)?.embargo_until {
                super::disclose::schedule(c, &p.cfg, id, store::parse_ts(&e)?)?;
            }
            ("predisclose", format!("pre-notification to: {}", lists.join(", ")))
        }
        Command::Advisory => {
            let text = advisory.map(str::trim).filter(|t| !t.is_empty()).context("#advisory without text (write it below the command, or attach a text file)")?;
            store::set_case_field(c, id, F::Advisory, Some(text))?;
            ("advisory", format!("advisory text set ({} characters)", text.chars().count()))
        }
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
    if current == State::Embargoed && !matches!(next, State::Embargoed | State::Disclosed) {
        // The embargo is cancelled: its pre-notice, reminder and lift do nothing.
        store::set_case_field(c, id, F::EmbargoUntil, None)?;
        store::add_event(c, id, now, "embargo", Some("secmail"), &format!("embargo cancelled (state {next})"))?;
    }
    if current.is_terminal() && !next.is_terminal() {
        // Reopened: the update clock starts again.
        let (kind, due) = deadline::on_response(&p.cfg.policy, now);
        super::timers::schedule(c, &p.cfg, id, kind, due)?;
    }
    Ok((current, next))
}

/// The reporter key pinned on case `id`, if any.
pub(crate) fn pinned_reporter_key(c: &Connection, id: i64) -> Result<Option<crate::crypto::Cert>> {
    store::reporter_key(c, id)?
        .map(|(_, bytes)| crate::crypto::cert_from_bytes(&bytes).context("the pinned reporter key"))
        .transpose()
}

/// The seal of mail to the reporter: the pinned key and the team key, when both exist.
pub(crate) fn reporter_seal<'a>(p: &'a Pipeline, pinned: &'a Option<crate::crypto::Cert>) -> Option<Seal<'a>> {
    match (pinned, &p.keys.team) {
        (Some(k), Some(team)) => Some(Seal { to: k, team }),
        _ => None,
    }
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
    let pinned = pinned_reporter_key(c, id)?;
    let seal = reporter_seal(p, &pinned);
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
    pub fn steer(&self, conn: &mut Connection, id: i64, word: &str, args: &str, by: &str, advisory: Option<&str>) -> Result<String> {
        let now = self.clock_now();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let row = store::get_case(&tx, id)?.with_context(|| format!("no case {}", case_id(&self.cfg.mailbox.case_prefix, id)))?;
        let team = self.cfg.team.recipients();
        let ctx = CommandContext { case_prefix: &self.cfg.mailbox.case_prefix, case_id: id, team: &team, now };
        let cmd = crate::commands::parse_args(word, args, &ctx).map_err(|e| anyhow::anyhow!("{e}"))?;
        let current: State = row.state.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
        crate::commands::state_after(current, std::slice::from_ref(&cmd)).map_err(|e| anyhow::anyhow!("{e}"))?;
        if let Some(why) = check(&tx, &self.cfg, id, &cmd, std::slice::from_ref(&cmd), now)? {
            anyhow::bail!("{why}");
        }
        let kind = apply(self, &tx, id, &cmd, by, now, advisory)?;
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

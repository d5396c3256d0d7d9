//! Embargo and disclosure (SPEC §6, §7b), as jobs of the timer task
//! ([`super::timers`]): the pre-notification to each chosen list
//! `prenotice_before` the lift (encrypted to the list's key, signed by the
//! team key, carrying the advisory), a reminder to the handler
//! `remind_before` the lift, and at the lift: the advisory to `announce`
//! (signed, in clear: it is public now), the reporter told (encrypted to their
//! key) with the advisory and the credit line, the case `disclosed`, and the
//! handler reminded to publish the blog post / release notes within 6 hours.
//!
//! Each job's decision key carries the embargo time it was scheduled for, so a
//! moved or cancelled embargo turns the old jobs into no-ops and schedules new
//! ones; each job is done once, also across restarts and kills.
//!
//! Side effects: the store (the caller's transaction).

use anyhow::Result;
use chrono::{DateTime, Utc};
use rusqlite::Connection;

use super::intake::Pipeline;
use crate::case::{CaseView, case_id};
use crate::compose::{self, Seal};
use crate::config::Config;
use crate::store::{self, CaseExtra, CaseField as F, JobRow};

pub(crate) const PRENOTICE: &str = "prenotice";
pub(crate) const EMBARGO_REMIND: &str = "embargo-remind";
pub(crate) const LIFT: &str = "lift";

/// How long after the lift the handler has to publish (the policy's promise).
const PUBLISH_WITHIN: &str = "6 hours";

/// An embargo time as people need it: UTC, and the calendar's zone when it has one.
pub(crate) fn when(cfg: &Config, t: DateTime<Utc>) -> String {
    let utc = t.format("%Y-%m-%d %H:%M UTC").to_string();
    match &cfg.policy.calendar {
        crate::config::Calendar::Business(c) => format!("{utc} ({})", c.local(t)),
        crate::config::Calendar::AllDay => utc,
    }
}

/// Schedule the embargo's jobs for the lift at `embargo` (and the lists chosen).
pub(crate) fn schedule(c: &Connection, cfg: &Config, case: i64, embargo: DateTime<Utc>) -> Result<()> {
    let key = store::ts(embargo);
    let d = &cfg.disclosure;
    let before = |x: std::time::Duration| embargo - chrono::Duration::from_std(x).unwrap_or_default();
    for list in store::case_extra(c, case)?.predisclose {
        store::add_job(c, before(d.prenotice_before), PRENOTICE, case, None, &format!("{PRENOTICE}:{case}:{list}:{key}"))?;
    }
    store::add_job(c, before(d.remind_before), EMBARGO_REMIND, case, None, &format!("{EMBARGO_REMIND}:{case}:{key}"))?;
    store::add_job(c, embargo, LIFT, case, None, &format!("{LIFT}:{case}:{key}"))?;
    Ok(())
}

/// `#publish`: lift now.
pub(crate) fn schedule_publish(c: &Connection, case: i64, now: DateTime<Utc>) -> Result<()> {
    store::add_job(c, now, LIFT, case, None, &format!("{LIFT}:{case}:publish"))
}

/// Run one disclosure job (inside its transaction).
pub(crate) fn run(p: &Pipeline, c: &Connection, job: &JobRow, case: &store::CaseRow, now: DateTime<Utc>) -> Result<String> {
    let extra = store::case_extra(c, case.id)?;
    let parts: Vec<&str> = job.decision.splitn(if job.kind == PRENOTICE { 4 } else { 3 }, ':').collect();
    let scheduled_for = parts.last().copied().unwrap_or("");
    let publish = job.kind == LIFT && scheduled_for == "publish";
    if !publish && extra.embargo_until.as_deref().map(|e| store::parse_ts(e).map(store::ts).unwrap_or_default()).as_deref() != Some(scheduled_for) {
        return Ok("the embargo was moved or cancelled; nothing to do".into());
    }
    if extra.disclosed_at.is_some() {
        return Ok("already disclosed; nothing to do".into());
    }
    if !publish && case.state != "embargoed" {
        return Ok(format!("the case is {}, not embargoed; nothing to do", case.state));
    }
    match job.kind.as_str() {
        PRENOTICE => prenotice(p, c, case, &extra, parts.get(2).copied().unwrap_or(""), now),
        EMBARGO_REMIND => embargo_reminder(p, c, case, &extra, now),
        _ => lift(p, c, case, &extra, now),
    }
}

/// Who the advisory credits: the display name of the report's From line
/// (`Rita Reporter`), never the address (it would be published); "the
/// reporter" when the report had none.
pub fn credit(c: &Connection, case: i64) -> Result<String> {
    // A message secmail gave up on is never parsed again.
    let first = store::messages(c, case)?.into_iter().find(|m| m.direction == "in" && !m.flags.starts_with("processing failed"));
    let name = first.and_then(|m| crate::mail::parse(&m.raw, &crate::mail::ParseLimits::default()).from_name).map(|n| compose::one_line(&n)).filter(|n| !n.is_empty() && !n.contains('@'));
    Ok(name.unwrap_or_else(|| "the reporter".into()))
}

/// The advisory as it goes out: the team's text, versions, CVE, credit.
fn advisory_body(cfg: &Config, view: &CaseView, extra: &CaseExtra, credit: Option<&str>) -> String {
    let mut out = format!("Security advisory {}", case_id(&cfg.mailbox.case_prefix, view.id));
    if let Some(cve) = &extra.cve {
        out.push_str(&format!(" ({cve})"));
    }
    out.push_str(&format!("\n{}\n\n", compose::one_line(&view.subject)));
    out.push_str(extra.advisory.as_deref().unwrap_or("(no advisory text was given)").trim_end());
    out.push_str("\n\n");
    if let Some(a) = &extra.affected {
        out.push_str(&format!("Affected versions: {a}\n"));
    }
    if let Some(f) = &extra.fixed_in {
        out.push_str(&format!("Fixed in:          {f}\n"));
    }
    if let Some(who) = credit {
        out.push_str(&format!("\nCredit: reported by {who}.\n"));
    }
    out
}

fn prenotice(p: &Pipeline, c: &Connection, case: &store::CaseRow, extra: &CaseExtra, list: &str, now: DateTime<Utc>) -> Result<String> {
    let cfg = &*p.cfg;
    let Some(l) = cfg.disclosure.lists.iter().find(|l| l.name.eq_ignore_ascii_case(list)) else {
        return Ok(format!("list {list:?} is no longer configured; no pre-notice"));
    };
    if !extra.predisclose.iter().any(|n| n.eq_ignore_ascii_case(list)) {
        return Ok(format!("list {list} is no longer chosen; no pre-notice"));
    }
    let (Some(cert), Some(team)) = (p.keys.list_cert(&l.name), &p.keys.team) else {
        store::add_event(c, case.id, now, "prenotice-failed", None, &format!("no pre-notice to {}: no list key or no team key", l.name))?;
        return Ok("no pre-notice: keys missing".into());
    };
    let embargo = extra.embargo_until.as_deref().map(store::parse_ts).transpose()?.unwrap_or(now);
    let view = case.view();
    let body = format!(
        "EMBARGOED until {} — do not disclose before then.\n\n{}",
        when(cfg, embargo),
        advisory_body(cfg, &view, extra, None)
    );
    let subject = format!("Embargoed security advisory, lift {}", embargo.format("%Y-%m-%d %H:%M UTC"));
    let m = compose::note(cfg, &view, &l.address, &subject, &body, None, Some(Seal { to: cert, team }), None, compose::new_message_id(&cfg.mailbox.address), now)?;
    p.queue(c, Some(case.id), format!("prenotice:{}:{}:{}", case.id, l.name, store::ts(embargo)), "prenotice", &m, super::TEAM_NOTICE_FLAG, now)?;
    store::add_event(c, case.id, now, "prenotice", None, &format!("pre-notice to {} ({}), encrypted to the list's key", l.name, l.address))?;
    Ok(format!("pre-notice sent to {}", l.name))
}

fn embargo_reminder(p: &Pipeline, c: &Connection, case: &store::CaseRow, extra: &CaseExtra, now: DateTime<Utc>) -> Result<String> {
    let cfg = &*p.cfg;
    let embargo = extra.embargo_until.as_deref().map(store::parse_ts).transpose()?.unwrap_or(now);
    let to = holders(cfg, case);
    let body = format!(
        "The embargo on {id} lifts at {at}.\n\nThen secmail sends the advisory to {announce}, tells the reporter, and marks\nthe case disclosed.{missing}\nTo move it: a signed mail with  #embargo RFC3339  (or secmail case {id} embargo ...).\n",
        id = case_id(&cfg.mailbox.case_prefix, case.id),
        at = when(cfg, embargo),
        announce = cfg.disclosure.announce.as_deref().unwrap_or("(no announce list configured)"),
        missing = if extra.advisory.is_none() { "\nNO ADVISORY TEXT YET: send a signed mail starting with  #advisory  and the text." } else { "" },
    );
    tell(p, c, case, &to, "Embargo lifts soon", &body, &format!("embargo-remind:{}:{}", case.id, store::ts(embargo)), now)?;
    Ok(format!("embargo reminder to {}", to.join(", ")))
}

fn lift(p: &Pipeline, c: &Connection, case: &store::CaseRow, extra: &CaseExtra, now: DateTime<Utc>) -> Result<String> {
    let cfg = &*p.cfg;
    let view = case.view();
    let who = credit(c, case.id)?;
    let mut done = Vec::new();
    match (&cfg.disclosure.announce, &extra.advisory, &p.keys.team) {
        (Some(announce), Some(_), Some(team)) => {
            let subject = format!("Security advisory: {}{}", compose::one_line(&view.subject), extra.cve.as_deref().map(|c| format!(" ({c})")).unwrap_or_default());
            let body = advisory_body(cfg, &view, extra, Some(&who));
            let m = compose::note(cfg, &view, announce, &subject, &body, None, None, Some(team), compose::new_message_id(&cfg.mailbox.address), now)?;
            p.queue(c, Some(case.id), format!("announce:{}", case.id), "announce", &m, "", now)?;
            done.push(format!("advisory to {announce}"));
        }
        (None, _, _) => done.push("no announce list configured".into()),
        (_, None, _) => done.push("NO advisory text: nothing announced".into()),
        (_, _, None) => done.push("no team key to sign the advisory: nothing announced".into()),
    }
    // The reporter: encrypted to the pinned key when there is one.
    if compose::check_address(&case.reporter).is_ok() {
        let pinned = super::steer::pinned_reporter_key(c, case.id)?;
        let seal = super::steer::reporter_seal(p, &pinned);
        let body = format!(
            "Hello,\n\nthe vulnerability you reported ({id}) is now public. Thank you!\nThis is the advisory as published:\n\n{adv}\n-- \n{name} <{addr}>\n",
            id = case_id(&cfg.mailbox.case_prefix, case.id),
            adv = advisory_body(cfg, &view, extra, Some(&who)),
            name = cfg.mailbox.name,
            addr = cfg.mailbox.address,
        );
        let parent = store::last_message_from(c, case.id, &case.reporter)?;
        let m = compose::note(cfg, &view, &case.reporter, &format!("Re: {}", view.subject), &body, parent.as_deref(), seal, None, compose::new_message_id(&cfg.mailbox.address), now)?;
        p.queue(c, Some(case.id), format!("disclosed:{}", case.id), "disclosed", &m, "", now)?;
        done.push(format!("the reporter told{}", if seal.is_some() { " (encrypted)" } else { "" }));
    }
    if case.state != "disclosed" {
        store::set_case_field(c, case.id, F::State, Some("disclosed"))?;
    }
    store::set_case_field(c, case.id, F::DisclosedAt, Some(&store::ts(now)))?;
    let to = holders(cfg, case);
    let body = format!(
        "{id} is disclosed: {summary}.\n\nPublish the blog post / release notes within {PUBLISH_WITHIN}.\n",
        id = case_id(&cfg.mailbox.case_prefix, case.id),
        summary = done.join("; ")
    );
    tell(p, c, case, &to, "Disclosed: publish now", &body, &format!("published:{}", case.id), now)?;
    store::add_event(c, case.id, now, "disclosed", Some("secmail"), &format!("embargo lifted: {}", done.join("; ")))?;
    Ok(format!("lifted: {}", done.join("; ")))
}

/// The handler, or the whole team when nobody is assigned.
fn holders(cfg: &Config, case: &store::CaseRow) -> Vec<String> {
    match &case.handler {
        Some(h) => vec![h.clone()],
        None => cfg.team.recipients(),
    }
}

/// A note to team members, each sealed to their key when they have one.
#[allow(clippy::too_many_arguments)]
fn tell(p: &Pipeline, c: &Connection, case: &store::CaseRow, to: &[String], subject: &str, body: &str, decision: &str, now: DateTime<Utc>) -> Result<()> {
    let cfg = &*p.cfg;
    let view = case.view();
    p.queue_to_members(c, Some(case.id), to, decision, "team-notice", now, |member, seal| {
        compose::note(cfg, &view, member, subject, body, None, seal, None, compose::new_message_id(&cfg.mailbox.address), now)
    })
}

/// `#not-security`: the reporter gets the configured polite answer.
pub(crate) fn not_security(p: &Pipeline, c: &Connection, id: i64, now: DateTime<Utc>) -> Result<()> {
    let cfg = &*p.cfg;
    let Some(case) = store::get_case(c, id)? else { return Ok(()) };
    if compose::check_address(&case.reporter).is_err() {
        return Ok(());
    }
    let pinned = super::steer::pinned_reporter_key(c, id)?;
    let seal = super::steer::reporter_seal(p, &pinned);
    let body = compose::render(
        &cfg.disclosure.not_security_text,
        &[("case_id", case_id(&cfg.mailbox.case_prefix, id)), ("team_address", cfg.mailbox.address.clone())],
    );
    let parent = store::last_message_from(c, id, &case.reporter)?;
    let view = case.view();
    let m = compose::note(cfg, &view, &case.reporter, &format!("Re: {}", view.subject), &body, parent.as_deref(), seal, None, compose::new_message_id(&cfg.mailbox.address), now)?;
    p.queue(c, Some(id), format!("not-security:{id}:{}", store::ts(now)), "not-security", &m, "", now)?;
    Ok(())
}

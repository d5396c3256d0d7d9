//! The timer task (SPEC §7): reminders `remind_before` a deadline to the
//! case's handler (every member when nobody is assigned), escalations when it
//! lapses to `policy.escalate_to` (the coordinator and the backup), again every
//! `re_escalate_every` while it stays lapsed, and closing a case whose reporter
//! stays silent for `close_if_silent` after the team asked a question.
//!
//! Every such step is a row of the `jobs` table keyed by its due time; the
//! task sleeps until the earliest one (an index lookup, whatever the number of
//! cases) or until woken by a change, and runs each due job in one transaction
//! that queues its mail in the outbox and marks the job done. So a job is done
//! once, also when the daemon was down when it fell due (it runs at start) or
//! was killed in the middle (the transaction rolls back and it runs again).
//!
//! Side effects: the store; mail is sent by the outbox task.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use chrono::{DateTime, Utc};
use rusqlite::Connection;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::intake::Pipeline;
use crate::case::case_id;
use crate::compose::{self, DeadlineMail, Promise};
use crate::config::Config;
use crate::deadline::{self, Kind};
use crate::store::{self, JobRow};

/// Longest sleep between two looks at the jobs table (a clock change, a job
/// added by the CLI in another process).
const MAX_SLEEP: Duration = Duration::from_secs(30);
/// Jobs run per transaction batch.
const BATCH: usize = 50;

/// Job kinds.
pub(crate) const REMIND: &str = "remind";
pub(crate) const ESCALATE: &str = "escalate";
pub(crate) const CLOSE_IF_SILENT: &str = "close-if-silent";

/// Add a deadline to a case with its reminder and first escalation.
pub(crate) fn schedule(c: &Connection, cfg: &Config, case: i64, kind: Kind, due: DateTime<Utc>) -> Result<()> {
    let id = store::add_deadline_id(c, case, kind.as_str(), due)?;
    let remind_at = due - chrono::Duration::from_std(cfg.policy.remind_before).unwrap_or_default();
    store::add_job(c, remind_at, REMIND, case, Some(id), &format!("remind:{id}"))?;
    store::add_job(c, due, ESCALATE, case, Some(id), &format!("escalate:{id}:1"))?;
    Ok(())
}

/// Close the case if the reporter has not answered by then (state
/// `waiting-on-reporter`, SPEC §7).
pub(crate) fn schedule_silence(c: &Connection, cfg: &Config, case: i64, now: DateTime<Utc>) -> Result<()> {
    let due = now + chrono::Duration::from_std(cfg.policy.close_if_silent).unwrap_or(chrono::Duration::MAX);
    store::add_job(c, due, CLOSE_IF_SILENT, case, None, &format!("silent:{case}:{}", store::ts(now)))
}

/// The task: run due jobs, sleep until the next one or a wake-up.
pub async fn timer_loop(pipeline: Arc<Pipeline>, wake: Arc<Notify>, outbox: Arc<Notify>, shutdown: CancellationToken) {
    loop {
        let now = pipeline.clock_now();
        let wait = match run_due(&pipeline, now).await {
            Ok((ran, next)) => {
                if ran > 0 {
                    outbox.notify_one();
                }
                match next {
                    Some(t) => (t - pipeline.clock_now()).to_std().unwrap_or(Duration::ZERO).min(MAX_SLEEP),
                    None => MAX_SLEEP,
                }
            }
            Err(e) => {
                tracing::warn!("timer: {e:#}; trying again in {MAX_SLEEP:?}");
                MAX_SLEEP
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait.max(Duration::from_millis(20))) => {}
        }
    }
}

/// Run every job due at `now`; returns how many ran and when the next is due.
pub async fn run_due(p: &Arc<Pipeline>, now: DateTime<Utc>) -> Result<(usize, Option<DateTime<Utc>>)> {
    let mut ran = 0;
    loop {
        let me = p.clone();
        let (n, more) = p
            .store()
            .call(move |c| {
                let jobs = store::due_jobs(c, now, BATCH)?;
                let n = jobs.len();
                // One transaction (one sync) per batch; each job in a savepoint
                // of its own, so a job that fails is recorded as failed (with
                // the reason) instead of being retried for ever, and takes
                // nothing else with it.
                let mut tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                for job in jobs {
                    let sp = tx.savepoint()?;
                    let outcome = match run_job(&me, &sp, &job, now) {
                        Ok(outcome) => {
                            sp.commit()?;
                            outcome
                        }
                        Err(e) => {
                            drop(sp);
                            let why = format!("failed: {e:#}");
                            tracing::error!(job = %job.decision, "timer: {why}");
                            why
                        }
                    };
                    store::job_done(&tx, job.id, now, &outcome)?;
                    tracing::info!(case = %case_id(&me.cfg.mailbox.case_prefix, job.case_id), job = %job.decision, "timer: {outcome}");
                }
                tx.commit()?;
                Ok((n, n == BATCH))
            })
            .await?;
        ran += n;
        if !more {
            break;
        }
    }
    let next = p.store().call(|c| store::next_job_due(c)).await?;
    Ok((ran, next))
}

/// One job, inside its transaction; returns what happened (for the log and the row).
fn run_job(p: &Pipeline, c: &Connection, job: &JobRow, now: DateTime<Utc>) -> Result<String> {
    let Some(case) = store::get_case(c, job.case_id)? else { return Ok("case gone; nothing to do".into()) };
    if job.kind == CLOSE_IF_SILENT {
        return close_if_silent(p, c, job, &case, now);
    }
    if [super::disclose::PRENOTICE, super::disclose::EMBARGO_REMIND, super::disclose::LIFT].contains(&job.kind.as_str()) {
        return super::disclose::run(p, c, job, &case, now);
    }
    let Some(dl_id) = job.deadline_id else { return Ok("no deadline; nothing to do".into()) };
    let Some(dl) = store::deadline_by_id(c, dl_id)? else { return Ok("deadline gone; nothing to do".into()) };
    if dl.met_at.is_some() {
        return Ok(format!("{} deadline already met; nothing to do", dl.kind));
    }
    if deadline::stops_deadlines(&case.state) {
        return Ok(format!("case is {}; deadlines stopped", case.state));
    }
    if dl.kind == Kind::Update.as_str() && case.state == "waiting-on-reporter" {
        return Ok("waiting on the reporter: the update clock is paused".into());
    }
    let cfg = &*p.cfg;
    let thread = store::first_message_id(c, case.id)?;
    let view = case.view();
    if job.kind == REMIND && now >= dl.due_at {
        // Late (the daemon was down): the escalation says it instead.
        return Ok(format!("{} reminder skipped: the deadline has passed", dl.kind));
    }
    if job.kind == REMIND {
        let to = match &case.handler {
            Some(h) => vec![h.clone()],
            None => cfg.team.recipients(),
        };
        let promise = Promise { kind: &dl.kind, due: dl.due_at, lapsed_by: None, handler: case.handler.as_deref(), thread: thread.as_deref() };
        send(p, c, &view, DeadlineMail::Reminder, &promise, &to, &job.decision, now)?;
        store::deadline_reminded(c, dl_id, now)?;
        store::add_event(c, case.id, now, "reminded", None, &format!("{} due {}: reminder to {}", dl.kind, store::ts(dl.due_at), to.join(", ")))?;
        return Ok(format!("reminder for {} sent to {}", dl.kind, to.join(", ")));
    }
    // An escalation: the nth of this lapse.
    let n: u32 = job.decision.rsplit(':').next().and_then(|s| s.parse().ok()).unwrap_or(1);
    let to = escalate_to(cfg);
    let lapsed_by = deadline::elapsed(&cfg.policy.calendar, dl.due_at, now);
    let promise = Promise { kind: &dl.kind, due: dl.due_at, lapsed_by: Some(lapsed_by), handler: case.handler.as_deref(), thread: thread.as_deref() };
    send(p, c, &view, DeadlineMail::Escalation { n }, &promise, &to, &job.decision, now)?;
    store::deadline_escalated(c, dl_id, now)?;
    store::add_escalation(c, case.id, &dl.kind, &to, now)?;
    store::add_event(c, case.id, now, "escalated", None, &format!("{} lapsed by {}: escalation #{n} to {}", dl.kind, deadline::human_approx(lapsed_by), to.join(", ")))?;
    let again = now + chrono::Duration::from_std(cfg.policy.re_escalate_every).unwrap_or(chrono::Duration::MAX);
    store::add_job(c, again, ESCALATE, case.id, Some(dl_id), &format!("escalate:{dl_id}:{}", n + 1))?;
    Ok(format!("escalation #{n} for {} sent to {}", dl.kind, to.join(", ")))
}

/// `policy.escalate_to`: "coordinator" and "backup" name the team's; other
/// entries are addresses. Nobody left: the whole team.
pub(crate) fn escalate_to(cfg: &Config) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for e in &cfg.policy.escalate_to {
        let who = match e.as_str() {
            "coordinator" => cfg.team.coordinator.clone(),
            "backup" => cfg.team.backup.clone(),
            addr => Some(addr.to_string()),
        };
        if let Some(w) = who
            && !out.iter().any(|o| o.eq_ignore_ascii_case(&w))
        {
            out.push(w);
        }
    }
    if out.is_empty() { cfg.team.recipients() } else { out }
}

/// Queue one deadline mail per recipient, sealed to their key when they have one.
#[allow(clippy::too_many_arguments)]
fn send(p: &Pipeline, c: &Connection, view: &crate::case::CaseView, which: DeadlineMail, promise: &Promise<'_>, to: &[String], decision: &str, now: DateTime<Utc>) -> Result<()> {
    let cfg = &*p.cfg;
    p.queue_to_members(c, Some(view.id), to, decision, "deadline", now, |member, seal| {
        compose::deadline_mail(cfg, view, which, promise, member, seal, compose::new_message_id(&cfg.mailbox.address), now)
    })
}

/// The reporter did not answer the team's question: a polite notice, and the
/// case closes. If they answered meanwhile (the state moved on), nothing.
fn close_if_silent(p: &Pipeline, c: &Connection, job: &JobRow, case: &store::CaseRow, now: DateTime<Utc>) -> Result<String> {
    let cfg = &*p.cfg;
    let asked = job.due_at - chrono::Duration::from_std(cfg.policy.close_if_silent).unwrap_or_default();
    if case.state != "waiting-on-reporter" || store::reporter_wrote_since(c, case.id, &case.reporter, asked)? {
        return Ok("the reporter answered or the state moved on; nothing to do".into());
    }
    let pinned = super::steer::pinned_reporter_key(c, case.id)?;
    let seal = super::steer::reporter_seal(p, &pinned);
    let parent = store::last_message_from(c, case.id, &case.reporter)?;
    if compose::check_address(&case.reporter).is_ok() {
        let m = compose::closed_silent(cfg, &case.view(), &case.reporter, parent.as_deref(), seal, compose::new_message_id(&cfg.mailbox.address), now)?;
        p.queue(c, Some(case.id), job.decision.clone(), "closed-silent", &m, "", now)?;
    }
    store::set_case_field(c, case.id, store::CaseField::State, Some("closed"))?;
    store::add_event(
        c,
        case.id,
        now,
        "state",
        Some("secmail"),
        &format!("state waiting-on-reporter -> closed: no answer from the reporter for {}", deadline::human(cfg.policy.close_if_silent)),
    )?;
    Ok("closed: the reporter stayed silent".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, FakeClock};
    use crate::config::Config;
    use crate::keys::Keys;
    use crate::store::Store;

    const REPORT: &[u8] = b"From: r@example.org\r\nSubject: XSS\r\nMessage-ID: <t1@example.org>\r\n\r\nPoC\r\n";

    /// The built-in config (coordinator@localhost, no backup) with second-long
    /// promises: first response 100 s, reminder 30 s before, re-escalation 50 s.
    fn setup(dir: &std::path::Path) -> (Arc<Pipeline>, Arc<FakeClock>, Store) {
        let mut cfg = Config::builtin(dir).unwrap();
        cfg.policy.ack_within = Duration::from_secs(3600);
        cfg.policy.first_response_within = Duration::from_secs(100);
        cfg.policy.remind_before = Duration::from_secs(30);
        cfg.policy.re_escalate_every = Duration::from_secs(50);
        let store = Store::open(&cfg.store.path).unwrap();
        let clock = Arc::new(FakeClock::new("2026-11-25T10:00:00Z".parse().unwrap()));
        let p = Arc::new(Pipeline::new(Arc::new(cfg), Arc::new(Keys::default()), store.clone(), clock.clone(), Arc::new(Notify::new())).unwrap());
        (p, clock, store)
    }

    /// Deadline mails queued so far, by subject.
    fn queued(store: &Store) -> Vec<String> {
        store
            .call_sync(|c| {
                let mut st = c.prepare("SELECT m.subject FROM outbox o JOIN messages m ON m.message_id = o.message_id WHERE o.kind = 'deadline' ORDER BY o.id")?;
                let rows = st.query_map([], |r| r.get::<_, String>(0))?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .unwrap()
    }

    async fn tick(p: &Arc<Pipeline>, clock: &FakeClock, secs: u64) -> usize {
        clock.advance(Duration::from_secs(secs));
        run_due(p, clock.now()).await.unwrap().0
    }

    #[tokio::test]
    async fn reminder_then_one_escalation_per_lapse_then_re_escalation() {
        let d = tempfile::tempdir().unwrap();
        let (p, clock, store) = setup(d.path());
        store.call_sync(|c| p.process(c, REPORT)).unwrap();
        // t+69: nothing due yet (the reminder is at t+70).
        tick(&p, &clock, 69).await;
        assert!(queued(&store).is_empty());
        // t+70: the reminder, to everyone (nobody is assigned).
        tick(&p, &clock, 1).await;
        let q = queued(&store);
        assert_eq!(q.len(), 1, "{q:?}");
        assert!(q[0].contains("Reminder: first-response"), "{q:?}");
        // Run again at the same moment: nothing twice.
        assert_eq!(run_due(&p, clock.now()).await.unwrap().0, 0);
        // t+100: the lapse escalates once, to the coordinator.
        tick(&p, &clock, 30).await;
        let q = queued(&store);
        assert_eq!(q.len(), 2, "{q:?}");
        assert!(q[1].contains("ESCALATION: first-response"), "{q:?}");
        tick(&p, &clock, 49).await;
        assert_eq!(queued(&store).len(), 2, "no second escalation before re_escalate_every");
        // t+150: re-escalation.
        tick(&p, &clock, 1).await;
        assert_eq!(queued(&store).len(), 3);
        let esc = store.call_sync(|c| store::escalations(c, 1)).unwrap();
        assert_eq!(esc.len(), 2);
        assert_eq!(esc[0].to, vec!["coordinator@localhost".to_string()]);
        // A response meets the deadline: no more escalations.
        store.call_sync(|c| store::meet_deadlines(c, 1, "first-response", clock.now())).unwrap();
        tick(&p, &clock, 500).await;
        assert_eq!(queued(&store).len(), 3);
    }

    #[tokio::test]
    async fn a_lapse_while_the_daemon_was_down_is_acted_on_once() {
        let d = tempfile::tempdir().unwrap();
        let (p, clock, store) = setup(d.path());
        store.call_sync(|c| p.process(c, REPORT)).unwrap();
        // Down for a long time (the ack never went out either): at start,
        // each lapsed promise escalates once, no late reminders, and the
        // re-escalation is scheduled from now, not replayed.
        clock.advance(Duration::from_secs(10_000));
        run_due(&p, clock.now()).await.unwrap();
        run_due(&p, clock.now()).await.unwrap();
        let q = queued(&store);
        assert_eq!(q.len(), 2, "{q:?}");
        assert!(q.iter().all(|s| s.contains("ESCALATION")), "{q:?}");
        let next = store.call_sync(|c| store::next_job_due(c)).unwrap().unwrap();
        assert_eq!(next, clock.now() + chrono::Duration::seconds(50), "the next escalation is re_escalate_every from now");
    }

    #[tokio::test]
    async fn closed_cases_and_paused_clocks_send_nothing() {
        let d = tempfile::tempdir().unwrap();
        let (p, clock, store) = setup(d.path());
        store.call_sync(|c| p.process(c, REPORT)).unwrap();
        store.call_sync(|c| p.steer(c, 1, "close", "", "test", None)).unwrap();
        tick(&p, &clock, 1000).await;
        assert!(queued(&store).is_empty(), "a closed case has no deadlines");
    }

    #[tokio::test]
    async fn waiting_on_the_reporter_pauses_the_update_clock_and_silence_closes_the_case() {
        let d = tempfile::tempdir().unwrap();
        let (p, clock, store) = setup(d.path());
        let silent = p.cfg.policy.close_if_silent.as_secs();
        store.call_sync(|c| p.process(c, REPORT)).unwrap();
        store.call_sync(|c| p.steer(c, 1, "state", "waiting-on-reporter", "test", None)).unwrap();
        // The reporter answers: the case goes back to triaged, nothing closes.
        clock.advance(Duration::from_secs(10));
        let answer = b"From: r@example.org\r\nSubject: Re: [SEC-1] XSS\r\nMessage-ID: <t2@example.org>\r\nIn-Reply-To: <t1@example.org>\r\n\r\nhere it is\r\n";
        store.call_sync(|c| p.process(c, answer)).unwrap();
        assert_eq!(store.call_sync(|c| store::get_case(c, 1)).unwrap().unwrap().state, "triaged");
        // Asked again, and silence this time: closed politely.
        store.call_sync(|c| p.steer(c, 1, "state", "waiting-on-reporter", "test", None)).unwrap();
        tick(&p, &clock, silent + 1).await;
        let row = store.call_sync(|c| store::get_case(c, 1)).unwrap().unwrap();
        assert_eq!(row.state, "closed");
        let kinds: Vec<String> = store
            .call_sync(|c| {
                let mut st = c.prepare("SELECT kind FROM outbox ORDER BY id")?;
                let rows = st.query_map([], |r| r.get::<_, String>(0))?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .unwrap();
        assert_eq!(kinds.iter().filter(|k| *k == "closed-silent").count(), 1, "{kinds:?}");
    }
}

//! The weekly digest task: every `health.digest_every` (7 days) each team
//! member gets, sealed to their key when they have one, the open cases with
//! their next deadlines, the promises that lapsed in the period, how many cases
//! were opened and closed, and what the spam filter held. A security@ that
//! nobody reads shows up here first.
//!
//! Side effects: the store (queues the digest; the outbox sends it).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::intake::Pipeline;
use crate::case::case_id;
use crate::compose;
use crate::store;

/// Meta key of the last weekly digest.
const WEEKLY_META: &str = "last_weekly_digest";

/// Queue the digest when it is due; look again every hour.
pub async fn weekly_loop(p: Arc<Pipeline>, shutdown: CancellationToken) {
    if p.cfg.health.digest_every.is_zero() {
        return;
    }
    loop {
        let me = p.clone();
        let now = p.clock_now();
        match p.store().call(move |c| weekly_once(&me, c, now)).await {
            Ok(true) => p.wake_outbox(),
            Ok(false) => {}
            Err(e) => tracing::warn!("weekly digest failed: {e:#}"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(3600).min(p.cfg.health.digest_every)) => {}
        }
    }
}

/// The digest if it is due (the first period starts at first start); `true`
/// when mail was queued.
pub(crate) fn weekly_once(p: &Pipeline, c: &mut rusqlite::Connection, now: DateTime<Utc>) -> Result<bool> {
    let cfg = &*p.cfg;
    let every = chrono::Duration::from_std(cfg.health.digest_every)?;
    let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let Some(last) = store::meta_get(&tx, WEEKLY_META)?.map(|s| store::parse_ts(&s)).transpose()? else {
        store::meta_set(&tx, WEEKLY_META, &store::ts(now))?;
        tx.commit()?;
        return Ok(false);
    };
    if now < last + every {
        return Ok(false);
    }
    let body = digest_text(p, &tx, last, now)?;
    let subject = format!("secmail: digest {} to {}", last.format("%Y-%m-%d"), now.format("%Y-%m-%d"));
    p.queue_to_members(&tx, None, &cfg.team.recipients(), &format!("weekly:{}", store::ts(now)), "digest", now, |member, seal| {
        compose::alert(cfg, member, &subject, &body, seal, compose::new_message_id(&cfg.mailbox.address), now)
    })?;
    store::meta_set(&tx, WEEKLY_META, &store::ts(now))?;
    tx.commit()?;
    tracing::info!("weekly digest queued");
    Ok(true)
}

/// What the digest says (no report text: subjects and numbers).
fn digest_text(p: &Pipeline, c: &rusqlite::Connection, since: DateTime<Utc>, now: DateTime<Utc>) -> Result<String> {
    let cfg = &*p.cfg;
    let prefix = &cfg.mailbox.case_prefix;
    let all = store::list_cases(c, true)?;
    let open: Vec<&store::CaseRow> = all.iter().filter(|r| !crate::deadline::stops_deadlines(&r.state)).collect();
    let opened = all.iter().filter(|r| r.opened_at >= since).count();
    let closed: i64 = c.query_row(
        "SELECT count(DISTINCT case_id) FROM events WHERE kind IN ('state', 'disclosed') AND at >= ?1 AND (detail LIKE '%-> closed%' OR detail LIKE '%-> disclosed%' OR detail LIKE '%-> not-security%' OR detail LIKE '%-> duplicate%' OR kind = 'disclosed')",
        [store::ts(since)],
        |r| r.get(0),
    )?;
    let mut out = format!("secmail digest for {} — {} to {}\n\n", cfg.mailbox.address, since.format("%Y-%m-%d %H:%M UTC"), now.format("%Y-%m-%d %H:%M UTC"));
    out.push_str(&format!("Cases opened: {opened}   closed: {closed}   open now: {}\n\n", open.len()));
    out.push_str("Open cases, next deadline first:\n");
    let mut rows: Vec<(Option<DateTime<Utc>>, String)> = Vec::new();
    let mut lapses = Vec::new();
    for r in &open {
        let dls = store::deadlines(c, r.id)?;
        let next = dls.iter().filter(|d| d.met_at.is_none()).map(|d| (d.due_at, d.kind.clone())).min();
        for d in &dls {
            let late = match d.met_at {
                Some(m) => m > d.due_at,
                None => d.due_at < now,
            };
            if late && d.due_at >= since {
                lapses.push(format!("  {} {} due {}{}", case_id(prefix, r.id), d.kind, d.due_at.format("%Y-%m-%d %H:%M"), if d.met_at.is_some() { " (met late)" } else { " (still lapsed)" }));
            }
        }
        let line = format!(
            "  {:<9} {:<20} {:<9} {:<28} {}",
            case_id(prefix, r.id),
            r.state,
            r.severity.as_deref().unwrap_or("-"),
            next.as_ref().map(|(t, k)| format!("{k} {}{}", t.format("%Y-%m-%d %H:%M"), if *t < now { " LAPSED" } else { "" })).unwrap_or_else(|| "-".into()),
            compose::one_line(&r.subject)
        );
        rows.push((next.map(|n| n.0), line));
    }
    rows.sort_by_key(|(t, _)| t.unwrap_or(DateTime::<Utc>::MAX_UTC));
    if rows.is_empty() {
        out.push_str("  (none)\n");
    }
    for (_, l) in rows {
        out.push_str(&l);
        out.push('\n');
    }
    out.push_str("\nPromises that lapsed in this period:\n");
    if lapses.is_empty() {
        out.push_str("  (none)\n");
    }
    for l in lapses {
        out.push_str(&l);
        out.push('\n');
    }
    let held = store::list_quarantine(c, Some(since))?;
    let released = held.iter().filter(|q| q.released_at.is_some()).count();
    out.push_str(&format!("\nQuarantine: {} message(s) held in this period, {released} released (secmail quarantine).\n", held.len()));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, FakeClock};
    use crate::config::Config;
    use crate::keys::Keys;
    use crate::store::Store;

    #[test]
    fn the_digest_lists_open_cases_lapses_and_counts_once_a_week() {
        let d = tempfile::tempdir().unwrap();
        let mut cfg = Config::builtin(d.path()).unwrap();
        cfg.policy.first_response_within = Duration::from_secs(3600);
        let store = Store::open(&cfg.store.path).unwrap();
        let clock = Arc::new(FakeClock::new("2026-11-25T10:00:00Z".parse().unwrap()));
        let p = Pipeline::new(Arc::new(cfg), Arc::new(Keys::default()), store.clone(), clock.clone(), Arc::new(tokio::sync::Notify::new())).unwrap();
        // The first start sets the period.
        assert!(!store.call_sync(|c| weekly_once(&p, c, clock.now())).unwrap());
        store.call_sync(|c| p.process(c, b"From: r@example.org\r\nSubject: XSS in search\r\nMessage-ID: <w1@x>\r\n\r\nPoC\r\n")).unwrap();
        clock.advance(Duration::from_secs(6 * 86_400));
        assert!(!store.call_sync(|c| weekly_once(&p, c, clock.now())).unwrap(), "not a week yet");
        clock.advance(Duration::from_secs(86_400));
        assert!(store.call_sync(|c| weekly_once(&p, c, clock.now())).unwrap());
        let text = store.call_sync(|c| digest_text(&p, c, clock.now() - chrono::Duration::days(7), clock.now())).unwrap();
        assert!(text.contains("Cases opened: 1") && text.contains("open now: 1"), "{text}");
        assert!(text.contains("SEC-1") && text.contains("XSS in search") && text.contains("LAPSED"), "{text}");
        assert!(text.contains("first-response due") && text.contains("(still lapsed)"), "{text}");
        assert!(!text.contains("PoC"), "no report text");
        assert!(!store.call_sync(|c| weekly_once(&p, c, clock.now())).unwrap(), "once per period");
    }
}

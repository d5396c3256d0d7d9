//! The outbox task: sends queued mail that is due (acks first, several SMTP
//! conversations at once), retries transient failures with backoff, records
//! permanent refusals on the case, and marks acks sent.
//!
//! Side effects: the store and the transport (SMTP or `.eml` files).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use futures::StreamExt as _;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::deadline;
use crate::source;
use crate::store::{self, Store};
use crate::transport::{SendError, Transport};

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

/// What one pass over the due mail gave.
#[derive(Debug, Default)]
struct Pass {
    /// Mails the server took.
    sent: usize,
    /// Why the server could not be reached, if it could not.
    unreachable: Option<String>,
}

/// An SMTP outage in progress: logged once when it starts and once when it
/// ends; meanwhile one due mail at a time probes the server.
struct Outage {
    since: std::time::Instant,
    backoff: Duration,
}

/// The outbox sender: sends what is due, retries with backoff, records results.
/// When the SMTP server cannot be reached, mail waits in the outbox without
/// counting attempts, the first due mail (acks first) probes the server with
/// backoff (1 s doubling to 64 s), and on its return everything due goes out
/// in order, acks before notices.
pub async fn outbox_sender(
    store: Store,
    transport: Transport,
    clock: SharedClock,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let mut backoff = source::BACKOFF_START;
    let mut outage: Option<Outage> = None;
    loop {
        let batch = if outage.is_some() { 1 } else { SEND_BATCH };
        let failed = match send_due(&store, &transport, &clock, batch).await {
            Ok(pass) => {
                backoff = source::BACKOFF_START;
                track_outage(&mut outage, &pass, &store).await;
                false
            }
            Err(err) => {
                tracing::warn!("outbox pass failed: {err:#}; retrying in {backoff:?}");
                true
            }
        };
        let next = store.call(|c| store::outbox_next_due(c)).await.ok().flatten();
        let wait = match (&mut outage, next) {
            // A failing pass (e.g. the database) must not spin on mail that is due.
            _ if failed => {
                let w = backoff;
                backoff = source::next_backoff(backoff);
                w
            }
            (Some(o), _) => {
                let w = o.backoff;
                o.backoff = source::next_backoff(o.backoff);
                w
            }
            (None, Some(t)) => (t - clock.now()).to_std().unwrap_or(Duration::ZERO).min(SENDER_IDLE_MAX),
            (None, None) => SENDER_IDLE_MAX,
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
            _ = wake.notified(), if outage.is_none() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Start or end the outage from what a pass gave, with one log line each.
async fn track_outage(outage: &mut Option<Outage>, pass: &Pass, store: &Store) {
    match (outage.as_ref(), &pass.unreachable) {
        (None, Some(why)) => {
            let waiting = store.call(|c| store::outbox_waiting(c)).await.unwrap_or(0);
            tracing::warn!(waiting, "SMTP server unreachable: {why}; mail waits in the outbox (nothing is lost); probing with backoff (1 s doubling to 64 s)");
            *outage = Some(Outage { since: std::time::Instant::now(), backoff: source::BACKOFF_START });
        }
        (Some(o), None) if pass.sent > 0 => {
            let waiting = store.call(|c| store::outbox_waiting(c)).await.unwrap_or(0);
            tracing::info!(waiting, "SMTP server reachable again after {:?}; sending the queued mail", o.since.elapsed());
            *outage = None;
        }
        _ => {}
    }
}

async fn send_due(store: &Store, transport: &Transport, clock: &SharedClock, batch: usize) -> Result<Pass> {
    let now = clock.now();
    let due = store.call(move |c| store::outbox_due(c, now, batch)).await?;
    // Acks first: every ack of the pass is answered before any other mail
    // starts (concurrent conversations finish in any order).
    let (acks, others): (Vec<_>, Vec<_>) = due.into_iter().partition(|r| r.kind == "ack");
    let mut pass = Pass::default();
    for rows in [acks, others] {
        // Several SMTP conversations at once (lettre pools the connections): a
        // flood's acks must not queue behind each other's round trips.
        let results: Vec<Result<Sent>> = futures::stream::iter(rows)
            .map(|row| send_one(store, transport, clock, row))
            .buffer_unordered(SEND_CONCURRENCY)
            .collect()
            .await;
        for r in results {
            match r? {
                Sent::Yes => pass.sent += 1,
                Sent::Unreachable(why) => pass.unreachable = Some(why),
                Sent::No => {}
            }
        }
        if pass.unreachable.is_some() {
            break;
        }
    }
    Ok(pass)
}

/// What became of one mail.
enum Sent {
    Yes,
    /// Refused or deferred by the server (recorded on the row).
    No,
    /// The server could not be reached: the row is left as it was.
    Unreachable(String),
}

async fn send_one(store: &Store, transport: &Transport, clock: &SharedClock, row: store::OutboxRow) -> Result<Sent> {
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
                .await?;
            Ok(Sent::Yes)
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
                .await?;
            Ok(Sent::No)
        }
        Err(SendError::Transient(e)) => {
            let delay = SEND_RETRY_START.saturating_mul(1u32 << row.attempts.min(16)).min(SEND_RETRY_MAX);
            let next = now + chrono::Duration::from_std(delay)?;
            tracing::warn!(kind = %row.kind, attempt = row.attempts + 1, retry_in = ?delay, "send deferred by the server: {e}");
            store.call(move |c| store::outbox_retry(c, row.id, next, &e)).await?;
            Ok(Sent::No)
        }
        Err(SendError::Unreachable(e)) => {
            tracing::debug!(kind = %row.kind, "send failed, server unreachable: {e}");
            Ok(Sent::Unreachable(e))
        }
    }
}

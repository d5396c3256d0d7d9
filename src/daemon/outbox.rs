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


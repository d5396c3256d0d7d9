//! The digest task: every `spam.digest_every`, the team gets a list of what
//! the spam filter held since the last digest (nothing when nothing was held).
//!
//! Side effects: the store (queues the digest mail; the outbox sends it).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::compose;
use crate::config::Config;
use crate::store::{self, OutMail, Store};

/// Meta key of the last quarantine digest time.
const DIGEST_META: &str = "last_quarantine_digest";

/// Sends the team a digest of newly held spam every `spam.digest_every`
/// (nothing when nothing was held). The first period starts at first start.
pub async fn digest_loop(cfg: Arc<Config>, store: Store, clock: SharedClock, wake: Arc<Notify>, shutdown: CancellationToken) {
    loop {
        let wait = match digest_once(&cfg, &store, &clock).await {
            Ok(next) => (next - clock.now()).to_std().unwrap_or(Duration::ZERO).max(Duration::from_millis(200)),
            Err(err) => {
                tracing::warn!("quarantine digest failed: {err:#}");
                Duration::from_secs(60)
            }
        };
        wake.notify_one();
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Queue the digest if it is due; returns when the next one is due.
async fn digest_once(cfg: &Arc<Config>, store: &Store, clock: &SharedClock) -> Result<DateTime<Utc>> {
    let cfg = cfg.clone();
    let now = clock.now();
    store
        .call(move |c| {
            let every = chrono::Duration::from_std(cfg.spam.digest_every)?;
            let tx = c.transaction()?;
            let last = match store::meta_get(&tx, DIGEST_META)? {
                Some(s) => store::parse_ts(&s)?,
                None => {
                    store::meta_set(&tx, DIGEST_META, &store::ts(now))?;
                    tx.commit()?;
                    return Ok(now + every);
                }
            };
            if now < last + every {
                return Ok(last + every);
            }
            let held: Vec<compose::Held> = store::list_quarantine(&tx, Some(last))?.iter().map(|q| q.held()).collect();
            if !held.is_empty() {
                for member in cfg.team.recipients() {
                    let mid = compose::new_message_id(&cfg.mailbox.address);
                    let m = compose::quarantine_digest(&cfg, &held, &member, mid, now)?;
                    let out = OutMail {
                        case_id: None,
                        decision: format!("digest:{}:{}", store::ts(now), member.to_ascii_lowercase()),
                        kind: "digest".into(),
                        message_id: m.message_id.clone(),
                        envelope_from: cfg.mailbox.address.clone(),
                        recipients: m.to.clone(),
                        raw: m.raw,
                    };
                    store::enqueue(&tx, &out, now)?;
                }
                tracing::info!(held = held.len(), "quarantine digest queued");
            }
            store::meta_set(&tx, DIGEST_META, &store::ts(now))?;
            tx.commit()?;
            Ok(now + every)
        })
        .await
}


//! The health task: every [`HEARTBEAT`] the daemon writes what it knows of
//! itself into the database (`meta` key [`HEALTH_META`]): that it runs, what
//! the mail source is doing and since when, and when mail last flowed. `secmail
//! status` reads it from another process, so monitoring learns the truth while
//! the daemon runs, and learns that it does not run when the heartbeat is old.
//!
//! Side effects: the store (one small write per heartbeat).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::source::Progress;
use crate::store::{self, Store};

/// How often the daemon records its health.
pub const HEARTBEAT: Duration = Duration::from_secs(10);
/// `meta` key of the record.
pub const HEALTH_META: &str = "health";

/// What the daemon records (JSON in `meta`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Health {
    /// When this was written.
    pub at: DateTime<Utc>,
    /// When the daemon started.
    pub started_at: DateTime<Utc>,
    pub pid: u32,
    /// `idle`, `polling`, `down`, `config-error`, `starting`.
    pub source_state: String,
    pub source_detail: String,
    /// Since when the source is in this state.
    pub source_since: DateTime<Utc>,
    /// When the source last made progress (a cycle, a message, a connection attempt).
    pub source_progress_at: DateTime<Utc>,
    /// Written by a clean stop: the daemon does not run any more.
    #[serde(default)]
    pub stopped: bool,
}

/// Write the health record every [`HEARTBEAT`] until shutdown.
pub async fn health_loop(store: Store, clock: SharedClock, progress: Progress, shutdown: CancellationToken) {
    let started_at = clock.now();
    loop {
        let stopped = shutdown.is_cancelled();
        let now = clock.now();
        let (state, for_how_long) = progress.state();
        let h = Health {
            stopped,
            at: now,
            started_at,
            pid: std::process::id(),
            source_state: state.word().into(),
            source_detail: state.detail(),
            source_since: now - chrono::Duration::from_std(for_how_long).unwrap_or_default(),
            source_progress_at: now - chrono::Duration::from_std(progress.age()).unwrap_or_default(),
        };
        if let Ok(json) = serde_json::to_string(&h)
            && let Err(e) = store.call(move |c| store::meta_set(c, HEALTH_META, &json)).await
        {
            tracing::debug!("health record not written: {e:#}");
        }
        if stopped {
            return;
        }
        tokio::select! {
            // One last record, saying so.
            _ = shutdown.cancelled() => {}
            _ = tokio::time::sleep(HEARTBEAT) => {}
        }
    }
}

/// The last health record, if the daemon ever ran on this database.
pub fn read(c: &rusqlite::Connection) -> anyhow::Result<Option<Health>> {
    Ok(store::meta_get(c, HEALTH_META)?.and_then(|s| serde_json::from_str(&s).ok()))
}

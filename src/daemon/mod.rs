//! The daemon: its tasks, one file each, and the per-message pipeline.
//!
//! - [`intake`]: the receive pipeline a source hands each message to
//!   (attempts, see, decide, perform; bounded, never blocking on one message);
//! - [`seen`]: parse and decrypt, apart from the store lock;
//! - [`perform`]: one small function per [`crate::case::Action`];
//! - [`outbox`]: the sender of queued mail;
//! - [`digest`]: the quarantine digest timer.
//!
//! Shutdown is passed in as a [`CancellationToken`]; the message in hand
//! finishes. Side effects: everything the edges do (store, source,
//! transport), plus sd_notify readiness and watchdog pings.

mod canary;
mod digest;
mod disclose;
pub mod health;
mod intake;
mod outbox;
mod perform;
pub(crate) mod seen;
mod steer;
mod timers;
mod weekly;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::SharedClock;
use crate::config::{Config, SourceConfig};
use crate::keys::Keys;
use crate::source::{self, Disposition};
use crate::store::Store;
use crate::transport::Transport;

pub use digest::digest_loop;
pub use intake::{Pipeline, spam_input};
pub use outbox::outbox_sender;
pub use seen::{Seen, see};
pub use timers::run_due;
pub use disclose::credit;
pub use canary::{CanaryState, read as canary_state};

/// Flag on stored team notifications: kept for threading, not listed as case mail.
pub const TEAM_NOTICE_FLAG: &str = "team-notice";

/// What one message got (for logs and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub disposition: Disposition,
    /// The case it ended up on, if any.
    pub case: Option<i64>,
    /// Whether this was a repeat of a message already processed.
    pub duplicate: bool,
    /// Short description of what was done.
    pub summary: String,
}

/// Run the daemon until `shutdown` is cancelled.
pub async fn run(cfg: Config, clock: SharedClock, shutdown: CancellationToken) -> Result<()> {
    let cfg = Arc::new(cfg);
    let store = Store::open(&cfg.store.path)?;
    let transport = Transport::new(&cfg.transport)?;
    let wake = Arc::new(Notify::new());
    let keys = Arc::new(Keys::load(&cfg)?);
    if let Some(t) = &keys.team {
        tracing::info!(fingerprint = %t.signing_fingerprint(), "team key loaded");
    }
    let pipeline = Arc::new(Pipeline::new(cfg.clone(), keys, store.clone(), clock.clone(), wake.clone())?);
    let tracker = TaskTracker::new();

    tracker.spawn(outbox_sender(store.clone(), transport, clock.clone(), wake.clone(), shutdown.clone()));
    tracker.spawn(digest_loop(cfg.clone(), store.clone(), clock.clone(), wake.clone(), shutdown.clone()));
    tracker.spawn(timers::timer_loop(pipeline.clone(), pipeline.timers(), wake, shutdown.clone()));

    let handler = pipeline.handler();
    let src_shutdown = shutdown.clone();
    let source_cfg = cfg.source.clone();
    let src_store = store.clone();
    let src_stop = shutdown.clone();
    let progress = source::Progress::default();
    let src_progress = progress.clone();
    let wedged_after = wedged_after(&cfg.source);
    let source_task = tracker.spawn(async move {
        let res = match source_cfg {
            SourceConfig::Imap(c) => source::imap::run(c, src_store, handler, src_shutdown, src_progress).await,
            SourceConfig::Maildir(c) => source::maildir::run(c, handler, src_shutdown, src_progress).await,
        };
        if let Err(err) = &res {
            tracing::error!("source stopped: {err:#}");
            src_stop.cancel();
        }
        res
    });

    tracker.spawn(weekly::weekly_loop(pipeline.clone(), shutdown.clone()));
    tracker.spawn(health::health_loop(pipeline.clone(), clock.clone(), progress.clone(), shutdown.clone()));

    let watchdog = watchdog_interval();
    tracing::info!(config = ?cfg.origin, "secmail running");
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    tracker.close();
    let mut wedged = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(watchdog.unwrap_or(Duration::from_secs(3600))) => {
                // The watchdog means mail flows: no ping while the source has
                // not completed a cycle, a message or a connection attempt
                // within its expected time, so systemd restarts a wedged daemon.
                let age = progress.age();
                if age > wedged_after {
                    if !wedged {
                        tracing::error!(?age, "the mail source has made no progress for {age:?}; not pinging the systemd watchdog (systemd will restart secmail)");
                    }
                    wedged = true;
                } else if watchdog.is_some() {
                    if wedged {
                        tracing::info!("the mail source makes progress again");
                    }
                    wedged = false;
                    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
                }
            }
        }
    }
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    tracing::info!("shutting down: finishing the message in hand");
    tracker.wait().await;
    // A source that could not run at all (e.g. an unusable Maildir) is a
    // failure of the daemon: exit non-zero so systemd restarts and reports it.
    source_task.await.context("source task panicked")?.context("the mail source failed")?;
    tracing::info!("stopped");
    Ok(())
}

/// How long a source may go without progress before it counts as wedged: its
/// longest wait between cycles (IDLE or poll), plus the longest a cycle's
/// network steps and one large message may take, plus a reconnect backoff.
fn wedged_after(source: &SourceConfig) -> Duration {
    let wait = match source {
        SourceConfig::Imap(c) => c.poll_interval.min(source::imap::IDLE_MAX),
        SourceConfig::Maildir(c) => c.poll_interval,
    };
    wait + source::imap::CONNECT_TIMEOUT + source::imap::FETCH_TIMEOUT + 2 * source::imap::COMMAND_TIMEOUT + source::BACKOFF_MAX + WEDGE_MARGIN
}

/// Slack for one slow message (a large encrypted report) in a cycle.
const WEDGE_MARGIN: Duration = Duration::from_secs(300);

/// Half the systemd watchdog period, if one is set (sd_watchdog_enabled(3)).
fn watchdog_interval() -> Option<Duration> {
    let mut usec = 0u64;
    if sd_notify::watchdog_enabled(false, &mut usec) && usec > 0 {
        Some(Duration::from_micros(usec / 2))
    } else {
        None
    }
}

/// Open the store for a CLI command.
pub fn open_store(cfg: &Config) -> Result<Store> {
    Store::open(&cfg.store.path).with_context(|| format!("opening the database {}", cfg.store.path.display()))
}


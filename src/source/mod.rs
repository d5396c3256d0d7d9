//! Sources: where incoming mail comes from (SPEC §3). Each source owns its own
//! connection, retry and watch loop, hands every message's raw bytes to a
//! [`Handler`], and only after the handler says the effects are committed moves the
//! message on (`processed_folder` / `quarantine_folder`, or Maildir `cur/`).
//! Nothing is ever deleted.

pub mod folders;
pub mod imap;
pub mod maildir;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

/// What the pipeline decided for a message whose effects are now committed; the
/// source files it accordingly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Processed (new case, appended, ignored as automatic, ...): file as processed.
    Processed,
    /// Held as spam: file into the quarantine folder.
    Quarantine,
}

/// The receive pipeline as a source sees it: raw bytes in, disposition out. An
/// `Err` means nothing was committed; the source leaves the message where it is
/// and offers it again later.
pub type Handler = Arc<dyn Fn(Vec<u8>) -> BoxFuture<'static, anyhow::Result<Disposition>> + Send + Sync>;

/// Backoff after a failed connection or iteration: 1 s doubling to 64 s
/// (mini-redis's accept loop).
pub const BACKOFF_START: std::time::Duration = std::time::Duration::from_secs(1);
pub const BACKOFF_MAX: std::time::Duration = std::time::Duration::from_secs(64);

/// The next backoff step.
pub fn next_backoff(cur: std::time::Duration) -> std::time::Duration {
    (cur * 2).min(BACKOFF_MAX)
}

/// Proof that mail is flowing: a source ticks it after every completed cycle
/// over its folder, every message handed on, and every connection attempt; the
/// daemon pings the systemd watchdog only while it is fresh, so a wedged loop
/// (not a merely idle one) gets secmail restarted.
#[derive(Debug, Clone)]
pub struct Progress {
    base: Instant,
    /// Milliseconds after `base` of the last tick.
    last: Arc<AtomicU64>,
    /// What the source is doing, and since when (for `secmail status`).
    state: Arc<std::sync::Mutex<(SourceState, Instant)>>,
}

/// What a source is doing, as `secmail status` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceState {
    Starting,
    /// Connected and waiting for mail with IDLE.
    Idle,
    /// Connected (or watching a directory) and polling every so often.
    Polling(Duration),
    /// The server cannot be reached (or refuses the login): why.
    Down(String),
    /// A configuration error the server reported (a refused folder): why.
    ConfigError(String),
}

impl SourceState {
    /// `idle`, `polling`, `down`, `config-error`, `starting`.
    pub fn word(&self) -> &'static str {
        match self {
            SourceState::Starting => "starting",
            SourceState::Idle => "idle",
            SourceState::Polling(_) => "polling",
            SourceState::Down(_) => "down",
            SourceState::ConfigError(_) => "config-error",
        }
    }

    pub fn detail(&self) -> String {
        match self {
            SourceState::Starting => "starting".into(),
            SourceState::Idle => "connected, waiting for mail with IDLE".into(),
            SourceState::Polling(d) => format!("polling every {d:?}"),
            SourceState::Down(why) => format!("down: {why}"),
            SourceState::ConfigError(why) => format!("configuration error: {why}"),
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Progress {
            base: Instant::now(),
            last: Arc::new(AtomicU64::new(0)),
            state: Arc::new(std::sync::Mutex::new((SourceState::Starting, Instant::now()))),
        }
    }
}

impl Progress {
    /// Something completed just now.
    pub fn tick(&self) {
        self.last.store(self.base.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// The source's state changed (`since` only moves when it does).
    pub fn set_state(&self, s: SourceState) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if std::mem::discriminant(&st.0) != std::mem::discriminant(&s) {
            st.1 = Instant::now();
        }
        st.0 = s;
    }

    /// The source's state and how long it has been in it.
    pub fn state(&self) -> (SourceState, Duration) {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        (st.0.clone(), st.1.elapsed())
    }

    /// How long ago the last tick was.
    pub fn age(&self) -> Duration {
        self.base.elapsed().saturating_sub(Duration::from_millis(self.last.load(Ordering::Relaxed)))
    }
}

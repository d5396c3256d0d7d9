//! The Maildir source (SPEC §3): for hosts where the MTA delivers locally.
//! Watches `new/` with inotify (a message renamed or written into it is taken
//! at once), and rescans it every `poll_interval` besides, the only watch
//! where inotify is unavailable; each message is handed to the pipeline and, only once its
//! effects are committed, renamed into `cur/` with the `S` flag (processed), or
//! into the Maildir++ folder `.secmail.quarantine/cur/` when held as spam. Files
//! are only ever renamed, never deleted.
//!
//! Side effects: reads and renames files under the Maildir root.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use futures::{FutureExt as _, StreamExt as _};
use inotify::{EventStream, Inotify, WatchMask};
use tokio_util::sync::CancellationToken;

use super::{BACKOFF_START, Disposition, Handler, Progress, next_backoff};
use crate::config::MaildirConfig;

/// The Maildir++ folder spam is filed into.
pub const QUARANTINE_FOLDER: &str = ".secmail.quarantine";

/// Create `new/`, `cur/`, `tmp/` under `root` if missing.
fn ensure_maildir(root: &Path) -> Result<()> {
    for sub in ["new", "cur", "tmp"] {
        let d = root.join(sub);
        std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    }
    Ok(())
}

/// The messages waiting in `new/`, oldest name first (names start with the
/// delivery time, Maildir convention).
fn pending(root: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(root.join("new")).with_context(|| format!("reading {}/new", root.display()))? {
        let e = e?;
        if e.file_type()?.is_file() && !e.file_name().to_string_lossy().starts_with('.') {
            out.push(e.path());
        }
    }
    out.sort();
    Ok(out)
}

/// Rename a processed message from `new/` into `dest/cur/` with the `S` flag.
fn file_away(msg: &Path, dest_root: &Path) -> Result<()> {
    let name = msg.file_name().context("message without a file name")?.to_string_lossy().to_string();
    let base = name.split(":2,").next().unwrap_or(&name);
    let target = dest_root.join("cur").join(format!("{base}:2,S"));
    std::fs::rename(msg, &target).with_context(|| format!("moving {} to {}", msg.display(), target.display()))
}

/// Bytes read from the inotify descriptor at once (each event is 16 bytes
/// plus the file name).
const WATCH_BUFFER: usize = 4096;

/// An inotify watch on `new/`: a message an MTA renames in from `tmp/`
/// (`IN_MOVED_TO`) or writes there directly (`IN_CLOSE_WRITE`, once complete).
type Watch = EventStream<Vec<u8>>;

/// Start watching `root/new/`; `None` (and the poll alone) where inotify is
/// unavailable (no kernel support, the watch limit reached).
fn watch_new(root: &Path) -> Option<Watch> {
    let start = || -> std::io::Result<Watch> {
        let inotify = Inotify::init()?;
        inotify.watches().add(root.join("new"), WatchMask::MOVED_TO | WatchMask::CLOSE_WRITE)?;
        inotify.into_event_stream(vec![0; WATCH_BUFFER])
    };
    start()
        .inspect_err(|e| tracing::warn!("cannot watch {}/new with inotify ({e}); polling only", root.display()))
        .ok()
}

/// Waits for the next change in `new/` and takes every event already queued
/// with it (a flood is one wake-up, not one per file). Never returns without
/// a watch; a watch that fails is dropped (the poll remains).
async fn changed(watch: &mut Option<Watch>) {
    let Some(w) = watch else { return std::future::pending().await };
    match w.next().await {
        Some(Ok(_)) => while let Some(Some(Ok(_))) = w.next().now_or_never() {},
        end => {
            let why = end.map_or("stream ended".to_string(), |e| format!("{:#}", e.unwrap_err()));
            tracing::warn!("inotify watch on the Maildir failed ({why}); polling only");
            *watch = None;
        }
    }
}

/// Watch the Maildir until `shutdown`.
pub async fn run(cfg: MaildirConfig, handler: Handler, shutdown: CancellationToken, progress: Progress) -> Result<()> {
    let root = cfg.path.clone();
    ensure_maildir(&root)?;
    ensure_maildir(&root.join(QUARANTINE_FOLDER))?;
    // Watching starts before the first scan, so nothing delivered in between is missed.
    let mut watch = watch_new(&root);
    tracing::info!(path = %root.display(), poll = ?cfg.poll_interval, inotify = watch.is_some(), "watching Maildir");
    let mut backoff = BACKOFF_START;
    loop {
        let result = cycle(&root, &handler, &shutdown).await;
        progress.tick();
        let (wait, ok) = match result {
            Ok(()) => {
                backoff = BACKOFF_START;
                progress.set_state(crate::source::SourceState::Polling(cfg.poll_interval));
                (cfg.poll_interval, true)
            }
            Err(err) => {
                progress.set_state(crate::source::SourceState::Down(format!("{err:#}")));
                tracing::warn!("maildir cycle failed: {err:#}; retrying in {backoff:?}");
                let w = backoff;
                backoff = next_backoff(backoff);
                (w, false)
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(wait) => {}
            // After a failed cycle the backoff rules, not new mail.
            _ = changed(&mut watch), if ok => {}
        }
    }
}

async fn cycle(root: &Path, handler: &Handler, shutdown: &CancellationToken) -> Result<()> {
    let root_owned = root.to_path_buf();
    let list = tokio::task::spawn_blocking(move || pending(&root_owned)).await??;
    for path in list {
        if shutdown.is_cancelled() {
            break;
        }
        let raw = match tokio::fs::read(&path).await {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        match handler(raw).await {
            Ok(d) => {
                let dest = match d {
                    Disposition::Processed => root.to_path_buf(),
                    Disposition::Quarantine => root.join(QUARANTINE_FOLDER),
                };
                file_away(&path, &dest)?;
            }
            Err(err) if crate::store::is_transient(&err) => {
                tracing::debug!(file = %path.display(), "store unavailable ({err:#}); waiting for the next cycle");
                break;
            }
            Err(err) => {
                tracing::warn!(file = %path.display(), "message not processed, will retry: {err:#}");
            }
        }
    }
    Ok(())
}


#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// Upper bound for the watch to hand a message over (a loaded CI machine);
    /// far below the poll interval the test configures.
    const WATCH_DEADLINE: Duration = Duration::from_secs(30);

    /// A message renamed into `new/` (as an MTA delivers) or written there
    /// directly is taken by the inotify watch, not by the poll: the poll is
    /// an hour, so without a working watch this test fails at its deadline.
    #[tokio::test]
    async fn inotify_takes_new_mail_without_waiting_for_the_poll() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("md");
        ensure_maildir(&root).unwrap();
        // Present at start: taken by the first scan, after the watch is set up.
        std::fs::write(root.join("new/1.first"), b"first").unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let handler: Handler = Arc::new(move |raw: Vec<u8>| {
            tx.send(raw).unwrap();
            Box::pin(async { Ok(Disposition::Processed) })
        });
        let cfg = MaildirConfig { path: root.clone(), poll_interval: Duration::from_secs(3600) };
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(cfg, handler, shutdown.clone(), Progress::default()));
        let next = async |rx: &mut tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>| {
            tokio::time::timeout(WATCH_DEADLINE, rx.recv()).await.expect("message taken before the deadline").unwrap()
        };
        assert_eq!(next(&mut rx).await, b"first");
        std::fs::write(root.join("tmp/2.renamed"), b"renamed").unwrap();
        std::fs::rename(root.join("tmp/2.renamed"), root.join("new/2.renamed")).unwrap();
        assert_eq!(next(&mut rx).await, b"renamed");
        std::fs::write(root.join("new/3.written"), b"written").unwrap();
        assert_eq!(next(&mut rx).await, b"written");
        shutdown.cancel();
        task.await.unwrap().unwrap();
        assert!(root.join("cur/3.written:2,S").exists());
    }

    #[tokio::test]
    async fn processed_mail_moves_to_cur_and_failures_stay_in_new() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("md");
        ensure_maildir(&root).unwrap();
        ensure_maildir(&root.join(QUARANTINE_FOLDER)).unwrap();
        std::fs::write(root.join("new/1.a"), b"ok").unwrap();
        std::fs::write(root.join("new/2.b"), b"fail").unwrap();
        std::fs::write(root.join("new/3.c"), b"spam").unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let handler: Handler = Arc::new(move |raw: Vec<u8>| {
            s2.lock().unwrap().push(raw.clone());
            Box::pin(async move {
                match &raw[..] {
                    b"fail" => anyhow::bail!("database is locked"),
                    b"spam" => Ok(Disposition::Quarantine),
                    _ => Ok(Disposition::Processed),
                }
            })
        });
        cycle(&root, &handler, &CancellationToken::new()).await.unwrap();
        assert_eq!(seen.lock().unwrap().len(), 3);
        assert!(root.join("cur/1.a:2,S").exists());
        assert!(root.join("new/2.b").exists());
        assert!(root.join(QUARANTINE_FOLDER).join("cur/3.c:2,S").exists());
        // The failed one is offered again on the next cycle.
        cycle(&root, &handler, &CancellationToken::new()).await.unwrap();
        assert_eq!(seen.lock().unwrap().len(), 4);
    }
}

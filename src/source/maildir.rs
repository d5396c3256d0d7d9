//! The Maildir source (SPEC §3): for hosts where the MTA delivers locally.
//! Watches `new/`; each message is handed to the pipeline and, only once its
//! effects are committed, renamed into `cur/` with the `S` flag (processed), or
//! into the Maildir++ folder `.secmail.quarantine/cur/` when held as spam. Files
//! are only ever renamed, never deleted.
//!
//! Side effects: reads and renames files under the Maildir root.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
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

/// Watch the Maildir until `shutdown`.
pub async fn run(cfg: MaildirConfig, handler: Handler, shutdown: CancellationToken, progress: Progress) -> Result<()> {
    let root = cfg.path.clone();
    ensure_maildir(&root)?;
    ensure_maildir(&root.join(QUARANTINE_FOLDER))?;
    tracing::info!(path = %root.display(), poll = ?cfg.poll_interval, "watching Maildir");
    let mut backoff = BACKOFF_START;
    loop {
        let result = cycle(&root, &handler, &shutdown).await;
        progress.tick();
        let wait = match result {
            Ok(()) => {
                backoff = BACKOFF_START;
                progress.set_state(crate::source::SourceState::Polling(cfg.poll_interval));
                cfg.poll_interval
            }
            Err(err) => {
                progress.set_state(crate::source::SourceState::Down(format!("{err:#}")));
                tracing::warn!("maildir cycle failed: {err:#}; retrying in {backoff:?}");
                let w = backoff;
                backoff = next_backoff(backoff);
                w
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(wait) => {}
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

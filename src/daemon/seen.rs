//! Seeing a message: parse (after the prescan of [`crate::prescan`]), decrypt,
//! parse the decrypted entity. Runs before any store transaction, on a thread
//! of its own with a large stack, and survives a panicking parser or OpenPGP
//! library: the message is then kept raw with the reason.
//!
//! Side effects: none beyond the thread it runs on.

use chrono::{DateTime, Utc};

use crate::config::LimitsConfig;
use crate::keys::{self, Keys, Reading};
use crate::mail::{self, ParseLimits, Parsed};

/// Stack of the thread that parses and decrypts: the prescan keeps nesting
/// shallow; this is the margin behind it.
const SEE_STACK: usize = 64 << 20;

/// A message as the pipeline sees it: the outer headers, what its encryption
/// gave, and the decrypted entity parsed.
#[derive(Debug, Clone)]
pub struct Seen {
    pub msg: Parsed,
    pub reading: Reading,
    pub inner: Option<Parsed>,
}

impl Seen {
    /// The readable text: decrypted, or the plain body.
    pub fn text(&self) -> &str {
        match &self.inner {
            Some(i) => &i.text,
            None => &self.msg.text,
        }
    }

    /// The protected Subject from inside the encryption, if it has one. Used
    /// inside secmail only; never put in a cleartext header.
    pub fn protected_subject(&self) -> Option<&str> {
        self.inner.as_ref().map(|i| i.subject.as_str()).filter(|s| !s.is_empty())
    }

    /// `none`, `good`, `bad` or `unknown-key` (SPEC §2).
    pub fn signature(&self) -> &str {
        match &self.reading {
            Reading::Decrypted { signature, .. } => signature.as_str(),
            _ => "none",
        }
    }

    /// Why the message could not be read, if it is encrypted and could not.
    pub fn problem(&self) -> Option<&str> {
        match &self.reading {
            Reading::Unreadable { reason, .. } => Some(reason),
            _ => None,
        }
    }

    /// One line on encryption and signature for the team.
    pub fn crypto_line(&self) -> String {
        match &self.reading {
            Reading::Plain => "not encrypted".into(),
            Reading::Decrypted { signature, .. } => format!("decrypted; signature: {}", signature.as_str()),
            Reading::Unreadable { reason, .. } => format!("NOT decrypted: {reason}"),
        }
    }
}

/// Parse a raw message and read its encryption: what the pipeline decides on
/// and what `secmail case` shows (decrypt on read). A message over a limit is
/// not decrypted. A parser or decryption library that panics on hostile input
/// costs the message its parsing, not the daemon: the raw bytes are kept on a
/// case with the reason.
pub fn see(raw: &[u8], keys: &Keys, limits: &LimitsConfig, now: DateTime<Utc>) -> Seen {
    let parse_limits = ParseLimits::from(limits);
    let read = || {
        let msg = mail::parse(raw, &parse_limits);
        let reading = match &msg.over_limit {
            Some(b) if msg.encrypted => Reading::Unreadable { reason: format!("not decrypted: over a limit ({b})"), no_integrity: false },
            Some(_) => Reading::Plain,
            None => keys::read(raw, msg.encrypted, keys, &keys::crypto_limits(limits), now),
        };
        let inner = match &reading {
            Reading::Decrypted { inner, .. } => Some(mail::parse(inner, &parse_limits)),
            _ => None,
        };
        Seen { msg, reading, inner }
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(read)) {
        Ok(seen) => seen,
        Err(_) => {
            tracing::error!(bytes = raw.len(), "parsing a message panicked; keeping it raw");
            Seen {
                msg: mail::unparseable(raw, "secmail could not parse this message (parser failure); kept raw"),
                reading: Reading::Plain,
                inner: None,
            }
        }
    }
}

/// [`see`] on a thread of its own with a large stack (off the async threads
/// and outside any store lock).
pub async fn see_apart(raw: std::sync::Arc<Vec<u8>>, keys: std::sync::Arc<Keys>, limits: LimitsConfig, now: DateTime<Utc>) -> anyhow::Result<Seen> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("secmail-see".into())
        .stack_size(SEE_STACK)
        .spawn(move || {
            let _ = tx.send(see(&raw, &keys, &limits, now));
        })?;
    Ok(rx.await?)
}

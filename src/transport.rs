//! Transports: where outgoing mail goes (SPEC §3): SMTP (implicit TLS, STARTTLS,
//! or plain to loopback; AUTH) or a directory of `.eml` files (dry run).
//!
//! Side effects: network (SMTP) or file writes (outbox_dir). Errors are split into
//! transient and permanent so the outbox sender knows whether to retry.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result};
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::config::{self, TransportConfig};

/// How long one SMTP conversation may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a send failed; decides retry.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The server said "try again later" (4xx) for this mail.
    #[error("transient: {0}")]
    Transient(String),
    /// No SMTP conversation at all (connection refused, network down, TLS,
    /// timeout): the server's problem, not this mail's.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// Will never work as is (5xx: bad recipient, policy rejection).
    #[error("permanent: {0}")]
    Permanent(String),
}

/// A configured transport.
#[derive(Clone)]
pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    OutboxDir(PathBuf),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Smtp(_) => f.write_str("Transport::Smtp"),
            Transport::OutboxDir(p) => write!(f, "Transport::OutboxDir({})", p.display()),
        }
    }
}

impl Transport {
    /// Build the transport (no connection is made yet).
    pub fn new(cfg: &TransportConfig) -> Result<Transport> {
        match cfg {
            TransportConfig::OutboxDir(o) => {
                std::fs::create_dir_all(&o.path)
                    .with_context(|| format!("creating outbox_dir {}", o.path.display()))?;
                Ok(Transport::OutboxDir(o.path.clone()))
            }
            TransportConfig::Smtp(s) => {
                let tls_params = || -> Result<TlsParameters> {
                    let mut b = TlsParameters::builder(s.host.clone());
                    if let Some(ca) = &s.ca_file {
                        let pem = std::fs::read(ca).with_context(|| format!("reading smtp.ca_file {}", ca.display()))?;
                        let cert = Certificate::from_pem(&pem)
                            .with_context(|| format!("smtp.ca_file {} is not a PEM certificate", ca.display()))?;
                        b = b.add_root_certificate(cert);
                    }
                    Ok(b.build_rustls()?)
                };
                let tls = match s.tls {
                    config::Tls::Implicit => Tls::Wrapper(tls_params()?),
                    config::Tls::Starttls => Tls::Required(tls_params()?),
                    config::Tls::None => Tls::None,
                };
                let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(s.host.clone())
                    .port(s.port)
                    .tls(tls)
                    .timeout(Some(SMTP_TIMEOUT));
                if let (Some(u), Some(p)) = (&s.username, &s.password) {
                    b = b.credentials(Credentials::new(u.clone(), p.expose().to_string()));
                }
                Ok(Transport::Smtp(b.build()))
            }
        }
    }

    /// Send one mail. `raw` is the complete message; the envelope is given
    /// separately (the message may carry no Bcc).
    pub async fn send(&self, envelope_from: &str, recipients: &[String], raw: &[u8]) -> Result<(), SendError> {
        let perm = |e: String| SendError::Permanent(e);
        let from = envelope_from.parse().map_err(|e| perm(format!("bad sender {envelope_from:?}: {e}")))?;
        let to = recipients
            .iter()
            .map(|r| r.parse().map_err(|e| perm(format!("bad recipient {r:?}: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let envelope = Envelope::new(Some(from), to).map_err(|e| perm(e.to_string()))?;
        match self {
            Transport::Smtp(t) => match tokio::time::timeout(SMTP_TIMEOUT * 2, t.send_raw(&envelope, raw)).await {
                Err(_) => Err(SendError::Unreachable("SMTP timed out".into())),
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) if e.is_permanent() => Err(SendError::Permanent(format!("{e:#}"))),
                Ok(Err(e)) if e.status().is_some() => Err(SendError::Transient(format!("{e:#}"))),
                Ok(Err(e)) => Err(SendError::Unreachable(format!("{e:#}"))),
            },
            Transport::OutboxDir(dir) => write_eml(dir, raw)
                .await
                .map_err(|e| SendError::Transient(format!("{e:#}"))),
        }
    }

    /// Connect and authenticate once (for `check-config`).
    pub async fn check(&self) -> Result<String> {
        match self {
            Transport::Smtp(t) => {
                let ok = tokio::time::timeout(SMTP_TIMEOUT, t.test_connection())
                    .await
                    .context("SMTP connection timed out")?
                    .context("SMTP connection failed")?;
                anyhow::ensure!(ok, "SMTP server did not accept the connection");
                Ok("SMTP: connected and authenticated".into())
            }
            Transport::OutboxDir(dir) => {
                let probe = dir.join(".secmail-write-test");
                std::fs::write(&probe, b"").with_context(|| format!("outbox_dir {} is not writable", dir.display()))?;
                std::fs::remove_file(&probe)?;
                Ok(format!("outbox_dir {}: writable", dir.display()))
            }
        }
    }
}

/// Write `raw` as `<dir>/<time>-<n>.eml`, atomically (tmp file, then rename).
async fn write_eml(dir: &std::path::Path, raw: &[u8]) -> Result<()> {
    let name = format!(
        "{}-{}.eml",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ"),
        uuid::Uuid::new_v4().simple()
    );
    let tmp = dir.join(format!(".{name}.tmp"));
    tokio::fs::write(&tmp, raw).await.with_context(|| format!("writing {}", tmp.display()))?;
    tokio::fs::rename(&tmp, dir.join(&name)).await.context("renaming outgoing .eml into place")?;
    Ok(())
}

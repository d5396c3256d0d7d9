//! Transports: where outgoing mail goes (SPEC §3): SMTP (implicit TLS, STARTTLS,
//! or plain to loopback; AUTH) or a directory of `.eml` files (dry run).
//!
//! Side effects: network (SMTP) or file writes (outbox_dir). Errors are split into
//! transient and permanent so the outbox sender knows whether to retry.
//!
//! lettre speaks SMTP; the connections are ours: TCP_NODELAY on (lettre writes
//! a message and its final `.` separately, and with Nagle the `.` waits for
//! the server's delayed ACK of the message, about 40 ms a mail), kept between
//! mails and checked with NOOP before reuse, as lettre's pool did.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, Certificate, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::ServerName;

use crate::config::{self, SmtpConfig, TransportConfig};

/// How long one SMTP conversation may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(60);
/// Connections kept open between mails (the outbox runs 8 conversations at once).
const SMTP_KEEP: usize = 8;
/// A kept connection unused for longer is closed rather than reused (servers
/// end idle sessions after a few minutes; Postfix after 300 s).
const SMTP_IDLE_MAX: Duration = Duration::from_secs(60);

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
    Smtp(Arc<Smtp>),
    OutboxDir(PathBuf),
}

/// How the conversation is secured.
enum Security {
    /// Plain (loopback only, `tls = "none"`).
    None,
    /// STARTTLS (RFC 3207), required.
    Starttls(TlsParameters),
    /// TLS from the first byte (RFC 8314).
    Implicit(tokio_rustls::TlsConnector, ServerName<'static>),
}

/// The SMTP server and the connections kept to it.
pub struct Smtp {
    host: String,
    port: u16,
    security: Security,
    credentials: Option<Credentials>,
    hello: ClientId,
    /// Connections between mails, with when each was last used.
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
}

/// A TLS stream lettre can speak over (its trait for streams it did not open).
#[derive(Debug)]
struct Tls(TlsStream<TcpStream>);

impl AsyncRead for Tls {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tls {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for Tls {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

/// What a failed SMTP command means for the mail (the server's reply code, or
/// no conversation at all).
fn classify(e: lettre::transport::smtp::Error) -> SendError {
    if e.is_permanent() {
        SendError::Permanent(format!("{e:#}"))
    } else if e.status().is_some() {
        SendError::Transient(format!("{e:#}"))
    } else {
        SendError::Unreachable(format!("{e:#}"))
    }
}

type SmtpResult<T> = Result<T, SendError>;

impl Smtp {
    fn new(s: &SmtpConfig) -> Result<Smtp> {
        let security = match s.tls {
            config::Tls::None => Security::None,
            config::Tls::Starttls => {
                let mut b = TlsParameters::builder(s.host.clone());
                if let Some(ca) = &s.ca_file {
                    let pem = std::fs::read(ca).with_context(|| format!("reading smtp.ca_file {}", ca.display()))?;
                    let cert = Certificate::from_pem(&pem)
                        .with_context(|| format!("smtp.ca_file {} is not a PEM certificate", ca.display()))?;
                    b = b.add_root_certificate(cert);
                }
                Security::Starttls(b.build_rustls()?)
            }
            config::Tls::Implicit => {
                let tls = crate::tls::client_config(s.ca_file.as_deref())?;
                let name = ServerName::try_from(s.host.clone()).with_context(|| format!("smtp.host {:?} is not a server name", s.host))?;
                Security::Implicit(tokio_rustls::TlsConnector::from(tls), name)
            }
        };
        let credentials = match (&s.username, &s.password) {
            (Some(u), Some(p)) => Some(Credentials::new(u.clone(), p.expose().to_string())),
            _ => None,
        };
        Ok(Smtp { host: s.host.clone(), port: s.port, security, credentials, hello: ClientId::default(), idle: Mutex::default() })
    }

    /// A new conversation: connected, greeted, secured, authenticated.
    async fn connect(&self) -> SmtpResult<AsyncSmtpConnection> {
        let unreachable = |what: &str, e: std::io::Error| SendError::Unreachable(format!("{what} {}:{}: {e}", self.host, self.port));
        let tcp = TcpStream::connect((self.host.as_str(), self.port)).await.map_err(|e| unreachable("connecting to", e))?;
        tcp.set_nodelay(true).map_err(|e| unreachable("TCP_NODELAY on", e))?;
        let mut conn = match &self.security {
            Security::Implicit(connector, name) => {
                let tls = connector.connect(name.clone(), tcp).await.map_err(|e| unreachable("TLS with", e))?;
                AsyncSmtpConnection::connect_with_transport(Box::new(Tls(tls)), &self.hello).await
            }
            Security::None | Security::Starttls(_) => AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello).await,
        }
        .map_err(classify)?;
        if let Security::Starttls(params) = &self.security {
            conn.starttls(params.clone(), &self.hello).await.map_err(classify)?;
        }
        if let Some(c) = &self.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], c).await.map_err(classify)?;
        }
        Ok(conn)
    }

    /// A kept connection that still answers NOOP, else a new one.
    async fn checkout(&self) -> SmtpResult<AsyncSmtpConnection> {
        loop {
            let kept = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let Some((mut conn, since)) = kept else { return self.connect().await };
            if since.elapsed() <= SMTP_IDLE_MAX && conn.test_connected().await {
                return Ok(conn);
            }
            conn.abort().await;
        }
    }

    async fn send(&self, envelope: &Envelope, raw: &[u8]) -> SmtpResult<()> {
        let mut conn = self.checkout().await?;
        let res = conn.send(envelope, raw).await;
        if !conn.has_broken() {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < SMTP_KEEP {
                idle.push((conn, Instant::now()));
            }
        }
        res.map(|_| ()).map_err(classify)
    }
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
            TransportConfig::Smtp(s) => Ok(Transport::Smtp(Arc::new(Smtp::new(s)?))),
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
            Transport::Smtp(t) => match tokio::time::timeout(SMTP_TIMEOUT * 2, t.send(&envelope, raw)).await {
                Err(_) => Err(SendError::Unreachable("SMTP timed out".into())),
                Ok(r) => r,
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
                let mut conn = tokio::time::timeout(SMTP_TIMEOUT, t.connect())
                    .await
                    .context("SMTP connection timed out")?
                    .map_err(|e| anyhow::anyhow!("SMTP connection failed: {e}"))?;
                let _ = conn.quit().await;
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

//! The IMAP source (SPEC §3): log in to the security@ mailbox, hand every message
//! of `folder` to the receive pipeline ([`Handler`]), and file it into
//! `processed_folder` or `quarantine_folder` once the pipeline says its effects are
//! committed. Then wait for new mail with IDLE (RFC 2177) when the server has it,
//! or poll, and do it again; reconnect with backoff on any failure.
//!
//! Side effects: network (one IMAP connection at a time, TLS per `cfg.tls`);
//! creates the two target folders when missing, named by the server's rules
//! ([`folders`]: NAMESPACE, hierarchy delimiter, modified UTF-7); moves messages
//! with `UID MOVE` (RFC 6851) or, without MOVE, copies them, marks the original
//! with the keyword [`PROCESSED_KEYWORD`] and, with UIDPLUS (RFC 4315), removes
//! exactly that original with `UID EXPUNGE` (a MOVE done in three steps; never a
//! bare EXPUNGE, which would also remove what a person marked `\Deleted`).
//! When the server refuses the target folders (name, rights, quota), messages
//! are still processed and are marked with the keyword where they are. Records
//! UIDVALIDITY and the highest filed UID per folder in the store
//! ([`Store::set_imap_sync`]). Logs neither message contents nor the password.
//!
//! Protocol rules cited below are from RFC 3501 (IMAP4rev1); RFC 9051 (IMAP4rev2)
//! keeps them, and nothing here needs IMAP4rev2.
//!
//! Delivery is at least once: a message whose handler failed, whose MOVE failed,
//! or that was in hand when the connection dropped is offered again on a later
//! cycle; the pipeline dedupes.

use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

use async_imap::error::Error as ProtoError;
use async_imap::extensions::idle::IdleResponse;
use async_imap::imap_proto::{MailboxDatum, Response, ResponseCode, Status};
use futures::TryStreamExt as _;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::{ImapConfig, Tls};
use crate::source::folders::{self, Namespace};
use crate::source::{self, Disposition, Handler, Progress};
use crate::store::Store;

/// Limit for the TCP connect, the TLS handshake and the server greeting.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Limit for one ordinary command (LOGIN, SELECT, SEARCH, MOVE, ...).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Limit for fetching one message: a big one takes a while on a slow link.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(120);
/// Limit for the polite LOGOUT on shutdown: the server owes us nothing then.
pub const LOGOUT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest single IDLE before it is re-issued. RFC 2177 §3: servers may log a
/// client off after 30 minutes, so clients re-issue IDLE at least every 29;
/// hosted servers drop an idle connection sooner (Exchange Online and Gmail
/// after about 10 minutes), so 9.
pub const IDLE_MAX: Duration = Duration::from_secs(9 * 60);
/// While the server refuses a folder (a configuration error: its name or our
/// rights), how often it is tried again. Slow on purpose: the log says what to
/// fix, and a retry every second would only fill it.
pub const FOLDER_RETRY: Duration = Duration::from_secs(10 * 60);
/// Messages larger than this (RFC 3501 `RFC822.SIZE`) are not fetched: the IMAP
/// client buffers a whole response, up to 512 MiB, so one such message would fail
/// every cycle and block the rest of the folder. They stay where they are and are
/// named in a warning every cycle, for a human to deal with.
pub const MAX_FETCH_SIZE: u64 = 256 << 20;
/// Keyword (RFC 3501 §2.3.2) set on a message that was copied to its target folder
/// on a server without MOVE (RFC 6851), so it is skipped from then on.
pub const PROCESSED_KEYWORD: &str = "$SecmailProcessed";

/// Why a connection or an iteration failed. Every variant is retried with backoff;
/// the variants exist so the log says which part to fix.
#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    /// TCP connect or the server greeting failed (server down, wrong host or port,
    /// network).
    #[error("cannot connect to IMAP server {server}")]
    Connect {
        server: String,
        #[source]
        source: BoxError,
    },
    /// TLS failed: handshake, certificate, `ca_file`, or STARTTLS not offered.
    #[error("TLS with IMAP server {server} failed")]
    Tls {
        server: String,
        #[source]
        source: BoxError,
    },
    /// The server refused the credentials (RFC 3501 §6.2.3 LOGIN answered NO/BAD).
    #[error("IMAP login as {user} refused (check imap.username and imap.password_file)")]
    Auth {
        user: String,
        #[source]
        source: BoxError,
    },
    /// The server refuses a folder we are configured to use (CREATE and STATUS,
    /// or SELECT, answered NO/BAD): its name or our rights. A configuration
    /// error; retrying soon will not help.
    #[error("the IMAP server refuses folder {folder:?} (configured as {configured:?}): {said}")]
    FolderRefused {
        configured: String,
        folder: String,
        said: String,
    },
    /// A configured folder name the server's naming rules cannot express.
    #[error("folder {configured:?}: {source}")]
    FolderName {
        configured: String,
        #[source]
        source: folders::NameError,
    },
    /// A command failed or timed out, or the connection dropped.
    #[error("IMAP {what} failed")]
    Protocol {
        what: String,
        #[source]
        source: BoxError,
    },
}

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

impl ImapError {
    /// Whether the server answered NO or BAD to a command (RFC 3501 §7.1): the
    /// connection is still fine, only that command was refused.
    fn is_refusal(&self) -> bool {
        match self {
            ImapError::Protocol { source, .. } => matches!(
                source.downcast_ref::<ProtoError>(),
                Some(ProtoError::No(_) | ProtoError::Bad(_))
            ),
            _ => false,
        }
    }

    /// Whether this is a configuration error about a folder (see
    /// [`ImapError::FolderRefused`], [`ImapError::FolderName`]).
    pub fn is_folder_problem(&self) -> bool {
        matches!(self, ImapError::FolderRefused { .. } | ImapError::FolderName { .. })
    }
}

/// The server's words in a NO/BAD refusal, or the error's text. async-imap
/// keeps only a Debug rendering of the response (`code: None, info:
/// Some("[CANNOT] ...")`): the text inside `Some("...")` is what the server said.
fn said(e: &ProtoError) -> String {
    match e {
        ProtoError::No(t) | ProtoError::Bad(t) => server_words(t),
        other => other.to_string(),
    }
}

fn server_words(debug: &str) -> String {
    let Some(at) = debug.find("info: Some(\"").map(|i| i + 12).or_else(|| debug.find("information: Some(\"").map(|i| i + 19)) else {
        return debug.trim().to_string();
    };
    let mut out = String::new();
    let mut chars = debug[at..].chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n) => out.push(n),
                None => break,
            },
            '"' => break,
            c => out.push(c),
        }
    }
    out.trim().to_string()
}

/// The byte stream under an IMAP session, whatever the TLS mode, so that one
/// session type serves `implicit`, `starttls` and `none`.
pub trait ImapIo: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug> ImapIo for T {}

type Session = async_imap::Session<Box<dyn ImapIo>>;

/// What the server offers that changes how we work (from CAPABILITY after login).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ServerCaps {
    /// RFC 2177 IDLE.
    idle: bool,
    /// RFC 6851 MOVE.
    mv: bool,
    /// RFC 4315 UIDPLUS (`UID EXPUNGE`).
    uidplus: bool,
    /// RFC 2342 NAMESPACE.
    namespace: bool,
    /// Every capability name, for `check-config`.
    names: Vec<String>,
}

impl ServerCaps {
    /// Forget `names` (for tests of the fallbacks).
    fn remove(&mut self, names: &[&str]) {
        let gone = |c: &str| names.iter().any(|n| n.eq_ignore_ascii_case(c));
        self.names.retain(|n| !gone(n));
        *self = ServerCaps::from_names(std::mem::take(&mut self.names));
    }

    fn from_names(mut names: Vec<String>) -> ServerCaps {
        names.sort();
        let has = |c: &str| names.iter().any(|n| n.eq_ignore_ascii_case(c));
        ServerCaps {
            idle: has("IDLE"),
            mv: has("MOVE"),
            uidplus: has("UIDPLUS"),
            namespace: has("NAMESPACE"),
            names,
        }
    }
}

/// Everything one watch loop needs, borrowed from [`run`].
struct Ctx<'a> {
    cfg: &'a ImapConfig,
    store: &'a Store,
    handler: &'a Handler,
    shutdown: &'a CancellationToken,
    progress: &'a Progress,
    /// Folder trouble, across reconnects, so it is logged once per episode.
    trouble: std::sync::Mutex<Trouble>,
}

/// Configuration trouble with folders that outlives a connection: each kind
/// is logged once when it starts and once when it ends.
#[derive(Debug, Default)]
struct Trouble {
    /// The target folders cannot be used (since when): messages are marked
    /// [`PROCESSED_KEYWORD`] where they are.
    targets: Option<Instant>,
    /// The source folder is refused (since when).
    source: Option<Instant>,
    /// A MOVE or COPY was refused (since when, how many messages marked in
    /// place meanwhile).
    filing: Option<(Instant, u64)>,
}

/// The folders of this connection, as the server names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folders {
    /// The server's personal namespace (or the delimiter from `LIST "" ""`).
    pub namespace: Namespace,
    /// `cfg.folder`.
    pub source: String,
    /// `cfg.processed_folder`.
    pub processed: String,
    /// `cfg.quarantine_folder`.
    pub quarantine: String,
}

/// How this connection files a message it has handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Filing {
    /// Into the target folders.
    Folders,
    /// The target folders are refused: mark [`PROCESSED_KEYWORD`] in place.
    InPlace,
}

/// How a sync cycle ended.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    /// Every message was offered; wait for more.
    Done,
    /// Shutdown was requested between two messages.
    Shutdown,
}

/// Connect, log in, and watch `cfg.folder` until `shutdown` is cancelled.
///
/// Each cycle SELECTs the folder, compares its UIDVALIDITY (RFC 3501 §2.3.1.1)
/// with the one in the store (a change, or a first visit, means a clean rescan),
/// `UID SEARCH`es every message still there, and for each, in ascending UID order:
/// `UID FETCH uid BODY.PEEK[]` (RFC 3501 §6.4.5, `.PEEK` so `\Seen` is left alone),
/// the handler, then `UID MOVE` (RFC 6851) to `processed_folder` or
/// `quarantine_folder` (without MOVE: `UID COPY`, the keyword
/// [`PROCESSED_KEYWORD`], and with UIDPLUS `UID EXPUNGE` of that UID), and the new
/// sync state into the store. Folder names follow the server's namespace
/// ([`folders::wire_name`]). A folder the server refuses is a configuration
/// error: one warning with the server's words, a retry every [`FOLDER_RETRY`],
/// and meanwhile the inbox is still read (messages marked in place). A handler `Err` leaves the message in place for the next
/// cycle. Then it waits: IDLE (RFC 2177) re-issued every `poll_interval` (at most
/// [`IDLE_MAX`]) when `cfg.idle` and the server offers it, else a `poll_interval`
/// sleep.
///
/// Failures (connect, TLS, login, timeouts, dropped connections) are logged and
/// retried after [`source::BACKOFF_START`] doubling to [`source::BACKOFF_MAX`],
/// reset after a successful cycle; they never end the loop. Shutdown is checked
/// between messages, so the message in hand is finished and filed. Returns `Ok(())`
/// once `shutdown` is cancelled, after a polite LOGOUT.
pub async fn run(
    cfg: ImapConfig,
    store: Store,
    handler: Handler,
    shutdown: CancellationToken,
    progress: Progress,
) -> anyhow::Result<()> {
    run_without(cfg, store, handler, shutdown, progress, &[]).await
}

/// [`run`] as if the server lacked the capabilities `ignore` (e.g. `MOVE`,
/// `UIDPLUS`), so that the fallbacks can be tested against a real server that
/// has them. Not for production.
#[doc(hidden)]
pub async fn run_without(
    cfg: ImapConfig,
    store: Store,
    handler: Handler,
    shutdown: CancellationToken,
    progress: Progress,
    ignore: &'static [&'static str],
) -> anyhow::Result<()> {
    let ctx = Ctx {
        cfg: &cfg,
        store: &store,
        handler: &handler,
        shutdown: &shutdown,
        progress: &progress,
        trouble: Default::default(),
    };
    let mut backoff = source::BACKOFF_START;
    // An outage is logged once when it starts and once when it ends: when it
    // began, and how many attempts failed since.
    let mut outage: Option<(Instant, u32)> = None;
    loop {
        if shutdown.is_cancelled() {
            break;
        }
        // Connecting holds no message, so it may be abandoned at once.
        let connected = tokio::select! {
            r = connect_and_login(&cfg) => r,
            _ = shutdown.cancelled() => break,
        };
        let result = match connected {
            Ok((session, mut caps)) => {
                if let Some((since, failed)) = outage.take() {
                    info!(folder = %cfg.folder, "IMAP: connection restored after {:?} ({failed} failed attempt(s))", since.elapsed());
                }
                caps.remove(ignore);
                watch(session, &caps, &ctx, &mut backoff).await
            }
            Err(e) => Err(e.into()),
        };
        progress.tick();
        match result {
            Ok(()) => break,
            Err(err) => match &mut outage {
                Some((_, failed)) => {
                    *failed += 1;
                    debug!("IMAP source still down: {err:#}; next attempt in {backoff:?}");
                }
                None => {
                    outage = Some((Instant::now(), 1));
                    progress.set_state(source::SourceState::Down(format!("{err:#}")));
                    if let Some(ImapError::Auth { .. }) = err.downcast_ref::<ImapError>() {
                        warn!("IMAP: authentication failed: {err:#}; retrying with backoff (1 s doubling to 64 s) until it works");
                    } else {
                        warn!("IMAP: connection lost or refused: {err:#}; mail waits on the server; reconnecting with backoff (1 s doubling to 64 s)");
                    }
                }
            },
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.cancelled() => break,
        }
        backoff = source::next_backoff(backoff);
    }
    info!(folder = %cfg.folder, "IMAP source stopped");
    Ok(())
}

/// Log in and out once (for `secmail check-config`): read the namespace, map
/// the configured folders into it, create or check the two target folders,
/// EXAMINE `cfg.folder` read-only (RFC 3501 §6.3.2), and look for a SPECIAL-USE
/// `\Junk` folder (RFC 6154) to suggest for quarantine. Returns lines for the
/// operator (what it logged in to, which folder each name maps to, message
/// count, IDLE/MOVE/UIDPLUS support, capabilities); the error says what failed
/// (connect, TLS, authentication, a refused folder: [`ImapError::is_folder_problem`]).
pub async fn check_login(cfg: &ImapConfig) -> anyhow::Result<String> {
    let (mut session, caps) = connect_and_login(cfg).await?;
    let result = check_folders(&mut session, &caps, cfg).await;
    logout(&mut session).await;
    let (folders, exists, junk) = result?;
    let yes_no = |b: bool| if b { "yes" } else { "no (fallback used)" };
    let ns = match folders.namespace.delimiter {
        Some(d) => format!("personal namespace {:?}, delimiter {d:?}", folders.namespace.prefix),
        None => format!("personal namespace {:?}, no hierarchy", folders.namespace.prefix),
    };
    let mut lines = vec![
        format!(
            "logged in to {}:{} as {} ({}); {ns}",
            cfg.host,
            cfg.port,
            cfg.username,
            tls_name(cfg.tls),
        ),
        format!("folder {} -> {:?} holds {exists} message(s)", cfg.folder, folders::display(&folders.source)),
        format!("processed {} -> {:?}", cfg.processed_folder, folders::display(&folders.processed)),
        format!("quarantine {} -> {:?}", cfg.quarantine_folder, folders::display(&folders.quarantine)),
    ];
    // Gmail (X-GM-EXT-1) empties its \Junk folder ([Gmail]/Spam) after 30
    // days: no place to hold anything.
    let gmail = caps.names.iter().any(|n| n.eq_ignore_ascii_case("X-GM-EXT-1"));
    if let Some(junk) = junk.filter(|j| *j != folders.quarantine && !gmail) {
        lines.push(format!(
            "hint: the server marks {:?} as \\Junk (RFC 6154); quarantine_folder = {:?} would put held spam where mail clients show it",
            folders::display(&junk),
            folders::display(&junk)
        ));
    }
    lines.push(format!(
        "IDLE: {}, MOVE: {}, UIDPLUS: {}; capabilities: {}",
        yes_no(caps.idle),
        yes_no(caps.mv),
        if caps.uidplus || caps.mv { "yes" } else { "no (copies are marked, originals stay)" },
        caps.names.join(" ")
    ));
    Ok(lines.join("\n"))
}

/// [`check_login`]'s work on a logged-in session: the folders, the source's
/// message count, and a `\Junk` folder if the server names one.
async fn check_folders(
    session: &mut Session,
    caps: &ServerCaps,
    cfg: &ImapConfig,
) -> Result<(Folders, u32, Option<String>), ImapError> {
    let folders = server_folders(session, caps, cfg).await?;
    ensure_folder(session, &cfg.processed_folder, &folders.processed).await?;
    ensure_folder(session, &cfg.quarantine_folder, &folders.quarantine).await?;
    let mailbox = match tokio::time::timeout(COMMAND_TIMEOUT, session.examine(&folders.source)).await {
        Ok(Ok(m)) => m,
        Ok(Err(e @ (ProtoError::No(_) | ProtoError::Bad(_)))) => {
            return Err(ImapError::FolderRefused { configured: cfg.folder.clone(), folder: folders.source.clone(), said: said(&e) });
        }
        Ok(Err(e)) => return Err(protocol(&format!("EXAMINE {:?}", folders.source), e)),
        Err(_) => return Err(timed_out(&format!("EXAMINE {:?}", folders.source), COMMAND_TIMEOUT)),
    };
    let junk = junk_folder(session).await;
    Ok((folders, mailbox.exists, junk))
}

/// The folder the server marks `\Junk` (RFC 6154), if any; `None` when LIST
/// fails or names none.
async fn junk_folder(session: &mut Session) -> Option<String> {
    let listed = tokio::time::timeout(COMMAND_TIMEOUT, async {
        let names = session.list(Some(""), Some("*")).await?;
        names.try_collect::<Vec<_>>().await
    })
    .await
    .ok()?
    .ok()?;
    listed
        .iter()
        .find(|n| n.attributes().iter().any(|a| matches!(a, async_imap::types::NameAttribute::Junk)))
        .map(|n| n.name().to_string())
}

/// Ask the server how it names folders, and map the configured ones: NAMESPACE
/// (RFC 2342) when offered, else the delimiter of `LIST "" ""` (RFC 3501
/// §6.3.8) and no prefix.
async fn server_folders(
    session: &mut Session,
    caps: &ServerCaps,
    cfg: &ImapConfig,
) -> Result<Folders, ImapError> {
    let from_namespace = if caps.namespace { namespace(session).await? } else { None };
    let namespace = match from_namespace {
        Some(ns) => ns,
        None => Namespace { prefix: String::new(), delimiter: root_delimiter(session).await? },
    };
    let map = |configured: &str| {
        folders::wire_name(configured, &namespace)
            .map_err(|source| ImapError::FolderName { configured: configured.to_string(), source })
    };
    Ok(Folders {
        source: map(&cfg.folder)?,
        processed: map(&cfg.processed_folder)?,
        quarantine: map(&cfg.quarantine_folder)?,
        namespace,
    })
}

/// The hierarchy delimiter from `LIST "" ""` (RFC 3501 §6.3.8).
async fn root_delimiter(session: &mut Session) -> Result<Option<char>, ImapError> {
    let names = cmd("LIST \"\" \"\"", COMMAND_TIMEOUT, async {
        let names = session.list(Some(""), Some("")).await?;
        names.try_collect::<Vec<_>>().await
    })
    .await?;
    Ok(names.first().and_then(|n| n.delimiter()).and_then(|d| d.chars().next()))
}

/// RFC 2342 NAMESPACE, the personal namespace. async-imap cannot parse the
/// untagged NAMESPACE response (its parser would fail the connection), so the
/// command is written and its answer read on the raw stream, between two
/// commands, when async-imap holds no unread data. `None` when the server
/// answers without a personal namespace.
async fn namespace(session: &mut Session) -> Result<Option<Namespace>, ImapError> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    const TAG: &str = "SMNS1";
    /// Longest line read; a NAMESPACE response is a few dozen bytes.
    const MAX_LINE: usize = 8192;
    let io = session.get_mut();
    cmd("NAMESPACE", COMMAND_TIMEOUT, async {
        io.write_all(format!("{TAG} NAMESPACE\r\n").as_bytes()).await?;
        io.flush().await?;
        let mut found = None;
        loop {
            let mut line = Vec::new();
            loop {
                let b = io.read_u8().await?;
                line.push(b);
                if line.ends_with(b"\r\n") {
                    break;
                }
                if line.len() > MAX_LINE {
                    return Err(std::io::Error::other("NAMESPACE: response line too long"));
                }
            }
            let text = String::from_utf8_lossy(&line);
            if let Some(rest) = text.strip_prefix(TAG) {
                let rest = rest.trim_start();
                if rest.len() >= 2 && rest[..2].eq_ignore_ascii_case("OK") {
                    return Ok(found);
                }
                return Err(std::io::Error::other(format!("NAMESPACE refused: {}", rest.trim_end())));
            }
            if text.ends_with("}\r\n") {
                // A literal (RFC 3501 §4.3) in a NAMESPACE response: we cannot
                // tell where the response ends without parsing it fully.
                return Err(std::io::Error::other("NAMESPACE: a literal in the response is not supported"));
            }
            if let Some(ns) = folders::parse_namespace(&text) {
                found.get_or_insert(ns);
            }
        }
    })
    .await
}

fn tls_name(tls: Tls) -> &'static str {
    match tls {
        Tls::Implicit => "implicit TLS",
        Tls::Starttls => "STARTTLS",
        Tls::None => "no TLS",
    }
}

// ---------------------------------------------------------------- the watch loop

/// Map the folders, create the target folders, then sync and wait until
/// shutdown (`Ok`) or a failure (`Err`; the session is dropped and [`run`]
/// reconnects). A refused target folder files in place, a refused source folder
/// waits; both are retried every [`FOLDER_RETRY`].
async fn watch(
    mut session: Session,
    caps: &ServerCaps,
    ctx: &Ctx<'_>,
    backoff: &mut Duration,
) -> anyhow::Result<()> {
    let cfg = ctx.cfg;
    let folders = match server_folders(&mut session, caps, cfg).await {
        Ok(f) => f,
        Err(e) if e.is_folder_problem() => {
            // A name the server cannot take: nothing to read, nothing to file.
            source_trouble(ctx, &e);
            wait_or_shutdown(FOLDER_RETRY, ctx.shutdown).await;
            logout(&mut session).await;
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    if (folders.source.as_str(), folders.processed.as_str(), folders.quarantine.as_str())
        != (cfg.folder.as_str(), cfg.processed_folder.as_str(), cfg.quarantine_folder.as_str())
    {
        info!(
            "IMAP: the server names folders {:?} with delimiter {:?}: reading {:?}, filing into {:?} and {:?}",
            folders.namespace.prefix,
            folders.namespace.delimiter,
            folders.source,
            folders.processed,
            folders.quarantine
        );
    }
    let mut filing = prepare_targets(&mut session, cfg, &folders, ctx).await?;
    let mut targets_tried = Instant::now();
    let idle_period = idle_period(cfg.poll_interval);
    let use_idle = cfg.idle && caps.idle;
    if use_idle {
        ctx.progress.set_state(source::SourceState::Idle);
        info!(folder = %cfg.folder, "IMAP: waiting for new mail with IDLE (re-issued every {idle_period:?})");
    } else {
        ctx.progress.set_state(source::SourceState::Polling(cfg.poll_interval));
        let why = if cfg.idle {
            "the server does not offer IDLE"
        } else {
            "imap.idle = false"
        };
        info!(folder = %cfg.folder, "IMAP: polling every {:?} ({why})", cfg.poll_interval);
    }
    if !caps.mv {
        if caps.uidplus {
            info!("IMAP: the server lacks MOVE (RFC 6851); filing by COPY, marking the original {PROCESSED_KEYWORD} and removing exactly it with UID EXPUNGE (RFC 4315)");
        } else {
            info!("IMAP: the server lacks MOVE (RFC 6851) and UIDPLUS (RFC 4315); filing by COPY and marking the original {PROCESSED_KEYWORD}, which stays in {:?}", cfg.folder);
        }
    }
    loop {
        if filing == Filing::InPlace && targets_tried.elapsed() >= FOLDER_RETRY {
            filing = prepare_targets(&mut session, cfg, &folders, ctx).await?;
            targets_tried = Instant::now();
        }
        match sync(&mut session, caps, ctx, &folders, filing).await {
            Ok(Flow::Shutdown) => break,
            Ok(Flow::Done) => source_recovered(ctx),
            Err(e) if e.downcast_ref::<ImapError>().is_some_and(ImapError::is_folder_problem) => {
                source_trouble(ctx, e.downcast_ref::<ImapError>().expect("checked above"));
                wait_or_shutdown(FOLDER_RETRY, ctx.shutdown).await;
                if ctx.shutdown.is_cancelled() {
                    break;
                }
                continue;
            }
            Err(e) => return Err(e),
        }
        ctx.progress.tick();
        *backoff = source::BACKOFF_START;
        // Unilateral responses (EXISTS, EXPUNGE, ...) pile up in a bounded
        // channel we do not need: each cycle rescans anyway.
        while session.unsolicited_responses.try_recv().is_ok() {}
        if ctx.shutdown.is_cancelled() {
            break;
        }
        if use_idle {
            session = idle_once(session, idle_period, ctx.shutdown).await?;
        } else {
            wait_or_shutdown(cfg.poll_interval, ctx.shutdown).await;
        }
        if ctx.shutdown.is_cancelled() {
            break;
        }
    }
    logout(&mut session).await;
    Ok(())
}

async fn wait_or_shutdown(period: Duration, shutdown: &CancellationToken) {
    tokio::select! {
        _ = tokio::time::sleep(period) => {}
        _ = shutdown.cancelled() => {}
    }
}

/// Create (or check) both target folders. A refusal is a configuration error:
/// logged once per episode with the server's words, and messages are filed in
/// place until a later try works. Connection failures are `Err`.
async fn prepare_targets(
    session: &mut Session,
    cfg: &ImapConfig,
    folders: &Folders,
    ctx: &Ctx<'_>,
) -> Result<Filing, ImapError> {
    let mut result = ensure_folder(session, &cfg.processed_folder, &folders.processed).await;
    if result.is_ok() {
        result = ensure_folder(session, &cfg.quarantine_folder, &folders.quarantine).await;
    }
    let mut trouble = ctx.trouble.lock().unwrap_or_else(|p| p.into_inner());
    match result {
        Ok(()) => {
            if let Some(since) = trouble.targets.take() {
                info!(
                    "IMAP: the target folders work again after {:?}: filing into {:?} and {:?} (messages marked {PROCESSED_KEYWORD} meanwhile stay in {:?})",
                    since.elapsed(),
                    folders.processed,
                    folders.quarantine,
                    cfg.folder
                );
            }
            Ok(Filing::Folders)
        }
        Err(e) if e.is_refusal() || e.is_folder_problem() => {
            ctx.progress.set_state(source::SourceState::ConfigError(format!("{e}; messages are marked in place")));
            if trouble.targets.is_none() {
                trouble.targets = Some(Instant::now());
                warn!(
                    "IMAP: configuration error: {:#}; reports are still read, answered and recorded, and each message is marked {PROCESSED_KEYWORD} where it is instead of filed; fix processed_folder/quarantine_folder (secmail check-config shows how names map); retrying every {FOLDER_RETRY:?}",
                    anyhow::Error::from(e)
                );
            } else {
                debug!("IMAP: target folders still refused: {e}");
            }
            Ok(Filing::InPlace)
        }
        Err(e) => Err(e),
    }
}

/// The source folder is refused: one warning per episode.
fn source_trouble(ctx: &Ctx<'_>, e: &ImapError) {
    let mut trouble = ctx.trouble.lock().unwrap_or_else(|p| p.into_inner());
    ctx.progress.set_state(source::SourceState::ConfigError(e.to_string()));
    if trouble.source.is_none() {
        trouble.source = Some(Instant::now());
        warn!(
            "IMAP: configuration error: {e}; no mail is read until it is fixed (imap.folder; secmail check-config shows how names map); retrying every {FOLDER_RETRY:?}"
        );
    } else {
        debug!("IMAP: source folder still refused: {e}");
    }
}

fn source_recovered(ctx: &Ctx<'_>) {
    let mut trouble = ctx.trouble.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(since) = trouble.source.take() {
        info!(folder = %ctx.cfg.folder, "IMAP: the source folder works again after {:?}", since.elapsed());
    }
}

/// How long one IDLE lasts before it is re-issued: `poll_interval` (which also
/// bounds how long a failed message waits for its retry), at most [`IDLE_MAX`].
fn idle_period(poll_interval: Duration) -> Duration {
    poll_interval.min(IDLE_MAX)
}

/// One IDLE (RFC 2177): returns on any server data (new mail, expunge, flag
/// change), after `period`, or on shutdown, with DONE sent and the session back.
async fn idle_once(
    session: Session,
    period: Duration,
    shutdown: &CancellationToken,
) -> Result<Session, ImapError> {
    let mut idle = session.idle();
    cmd("IDLE", COMMAND_TIMEOUT, idle.init()).await?;
    let started = Instant::now();
    let woke = {
        // `wait_with_timeout` restarts its timer on every keepalive ("* OK Still
        // here"), so the outer timeout bounds the IDLE by the wall clock.
        let (wait, _stop) = idle.wait_with_timeout(period);
        tokio::select! {
            r = tokio::time::timeout(period, wait) => match r {
                // A server going away says BYE and closes: waiting for the
                // answer to DONE would only run into COMMAND_TIMEOUT.
                Ok(Ok(resp)) => match bye(&resp) {
                    Some(why) => return Err(protocol("IDLE", format!("the server ended the session: {why}"))),
                    None => describe(&resp),
                },
                Ok(Err(e)) => return Err(protocol("IDLE", e)),
                Err(_) => "timeout".to_string(),
            },
            _ = shutdown.cancelled() => "shutdown".to_string(),
        }
    };
    debug!(after = ?started.elapsed(), "IMAP IDLE ended: {woke}");
    cmd("DONE (end of IDLE)", COMMAND_TIMEOUT, idle.done()).await
}

/// The server's words when `resp` is an untagged BYE (RFC 3501 §7.1.5).
fn bye(resp: &IdleResponse) -> Option<String> {
    let IdleResponse::NewData(data) = resp else { return None };
    match data.parsed() {
        Response::Data { status: Status::Bye, outcome } => Some(outcome.information.as_deref().unwrap_or("BYE").to_string()),
        _ => None,
    }
}

/// What ended an IDLE, for the debug log: the kind of response only, never data.
fn describe(resp: &IdleResponse) -> String {
    match resp {
        IdleResponse::NewData(data) => match data.parsed() {
            Response::MailboxData(MailboxDatum::Exists(n)) => format!("EXISTS {n}"),
            Response::MailboxData(MailboxDatum::Recent(n)) => format!("RECENT {n}"),
            Response::Expunge(n) => format!("EXPUNGE {n}"),
            Response::Fetch(n, _) => format!("FETCH {n}"),
            _ => "other server data".to_string(),
        },
        IdleResponse::Timeout => "timeout".to_string(),
        IdleResponse::ManualInterrupt => "interrupted".to_string(),
    }
}

/// One cycle over the folder: offer every message still there to the handler
/// and file it. Stops early (between messages) on shutdown.
async fn sync(
    session: &mut Session,
    caps: &ServerCaps,
    ctx: &Ctx<'_>,
    folders: &Folders,
    filing: Filing,
) -> anyhow::Result<Flow> {
    // The store keys sync state by the configured name, as before names were
    // mapped: an upgrade keeps its state.
    let folder = &ctx.cfg.folder;
    let mailbox = match tokio::time::timeout(COMMAND_TIMEOUT, session.select(&folders.source)).await {
        Ok(Ok(m)) => m,
        Ok(Err(e @ (ProtoError::No(_) | ProtoError::Bad(_)))) => {
            return Err(ImapError::FolderRefused { configured: folder.clone(), folder: folders.source.clone(), said: said(&e) }.into());
        }
        Ok(Err(e)) => return Err(protocol(&format!("SELECT {:?}", folders.source), e).into()),
        Err(_) => return Err(timed_out(&format!("SELECT {:?}", folders.source), COMMAND_TIMEOUT).into()),
    };
    let uidvalidity = mailbox.uid_validity.ok_or_else(|| ImapError::Protocol {
        what: format!("SELECT {folder:?}"),
        source: "the server sent no UIDVALIDITY (RFC 3501 §2.3.1.1)".into(),
    })?;
    let stored = ctx.store.imap_sync(folder).await?;
    let last_uid = match resume(stored, uidvalidity) {
        Resume::Continue(last) => last,
        Resume::FirstVisit => {
            info!(folder = %folder, uidvalidity, "IMAP: first visit of this folder; scanning all of it");
            ctx.store.set_imap_sync(folder, uidvalidity, 0).await?;
            0
        }
        Resume::UidValidityChanged(old) => {
            info!(folder = %folder, old, new = uidvalidity, "IMAP: UIDVALIDITY changed; rescanning the folder from scratch");
            ctx.store.set_imap_sync(folder, uidvalidity, 0).await?;
            0
        }
    };

    let oversized = search(session, &search_query(true)).await?;
    if !oversized.is_empty() {
        warn!(
            folder = %folder,
            "IMAP: message(s) with UID {} exceed {} MiB and are left in place unprocessed; file them by hand",
            uid_list(&oversized),
            MAX_FETCH_SIZE >> 20
        );
    }
    let uids = search(session, &search_query(false)).await?;
    debug!(folder = %folder, count = uids.len(), "IMAP: messages to offer");

    // Processed messages are filed a batch at a time (one MOVE per target
    // folder: RFC 6851 takes a UID set), each only once its effects are
    // committed; a crash in between offers them again, which the pipeline
    // knows as duplicates.
    let mut batch = Batch { folder, uidvalidity, last_uid, done: Vec::new() };
    for chunk in fetch_chunks(session, &uids).await? {
        if ctx.shutdown.is_cancelled() {
            batch.file(session, caps, ctx, folders, filing).await?;
            return Ok(Flow::Shutdown);
        }
        let started = Instant::now();
        let fetched = fetch(session, &chunk).await?;
        debug!(count = chunk.len(), took = ?started.elapsed(), "IMAP: messages fetched");
        for (uid, raw) in chunk.iter().zip(fetched) {
            let uid = *uid;
            if ctx.shutdown.is_cancelled() {
                batch.file(session, caps, ctx, folders, filing).await?;
                return Ok(Flow::Shutdown);
            }
            let Some(raw) = raw else {
                debug!(uid, "IMAP: message vanished before it could be fetched");
                continue;
            };
            let size = raw.len();
            let started = Instant::now();
            let handled = (ctx.handler)(raw).await;
            ctx.progress.tick();
            debug!(uid, size, took = ?started.elapsed(), "IMAP: message handled");
            let disposition = match handled {
                Ok(d) => d,
                // The database refusing writes is logged once by the pipeline;
                // the rest of the folder waits for the next cycle, not fetched
                // again message by message meanwhile.
                Err(err) if crate::store::is_transient(&err) => {
                    debug!(uid, "IMAP: store unavailable ({err:#}); the folder waits for the next cycle");
                    batch.file(session, caps, ctx, folders, filing).await?;
                    return Ok(Flow::Done);
                }
                Err(err) => {
                    warn!(
                        uid,
                        "IMAP: processing message failed: {err:#}; it stays in {folder:?} and is offered again on the next cycle"
                    );
                    continue;
                }
            };
            batch.done.push((uid, size, disposition));
            if batch.done.len() >= FILE_BATCH {
                batch.file(session, caps, ctx, folders, filing).await?;
            }
        }
    }
    batch.file(session, caps, ctx, folders, filing).await?;
    Ok(Flow::Done)
}

/// Most processed messages that wait for their filing (a flood is filed
/// with one command per this many, a single report at once).
const FILE_BATCH: usize = 32;

/// Messages processed and not yet filed, and how far the folder is done.
struct Batch<'a> {
    folder: &'a str,
    uidvalidity: u32,
    last_uid: u32,
    /// (uid, size, where it goes), ascending UIDs.
    done: Vec<(u32, usize, Disposition)>,
}

impl Batch<'_> {
    /// File every processed message (or mark it in place), then record the
    /// highest UID done.
    async fn file(&mut self, session: &mut Session, caps: &ServerCaps, ctx: &Ctx<'_>, folders: &Folders, filing: Filing) -> anyhow::Result<()> {
        if self.done.is_empty() {
            return Ok(());
        }
        let folder = self.folder;
        for (disposition, target) in [(Disposition::Processed, &folders.processed), (Disposition::Quarantine, &folders.quarantine)] {
            let group: Vec<(u32, usize)> = self.done.iter().filter(|d| d.2 == disposition).map(|d| (d.0, d.1)).collect();
            if group.is_empty() {
                continue;
            }
            let uids = uid_list(&group.iter().map(|g| g.0).collect::<Vec<_>>());
            let started = Instant::now();
            let filed = match filing {
                Filing::InPlace => mark(session, &uids, false).await.map(|()| false),
                Filing::Folders => file(session, caps, &uids, target, ctx).await,
            };
            debug!(count = group.len(), took = ?started.elapsed(), "IMAP: batch filed");
            match filed {
                Ok(true) => group.iter().for_each(|&(uid, size)| info!(uid, size, "IMAP: message filed into {target:?}")),
                Ok(false) => group.iter().for_each(|&(uid, size)| {
                    info!(uid, size, "IMAP: message marked {PROCESSED_KEYWORD} in {folder:?} (not filed: the target folder is refused)")
                }),
                Err(e) if e.is_refusal() => {
                    // Not even the keyword could be set: the messages come back
                    // next cycle, and the pipeline knows them already.
                    warn!(
                        uids,
                        "IMAP: marking {PROCESSED_KEYWORD} failed: {:#}; they stay in {folder:?} and are offered again on the next cycle",
                        anyhow::Error::from(e)
                    );
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            self.last_uid = group.iter().map(|g| g.0).fold(self.last_uid, u32::max);
        }
        self.done.clear();
        ctx.store.set_imap_sync(folder, self.uidvalidity, self.last_uid).await?;
        Ok(())
    }
}

/// Where a folder's scan starts, given the stored `(uidvalidity, last_uid)`.
#[derive(Debug, PartialEq, Eq)]
enum Resume {
    /// Same UIDVALIDITY: the stored last UID still means something.
    Continue(u32),
    /// Nothing stored yet.
    FirstVisit,
    /// The server renumbered the folder (RFC 3501 §2.3.1.1): old UIDs are void.
    UidValidityChanged(u32),
}

fn resume(stored: Option<(u32, u32)>, uidvalidity: u32) -> Resume {
    match stored {
        Some((v, last)) if v == uidvalidity => Resume::Continue(last),
        Some((v, _)) => Resume::UidValidityChanged(v),
        None => Resume::FirstVisit,
    }
}

/// The `UID SEARCH` criteria (RFC 3501 §6.4.4): every message (we move processed
/// ones out, so what is left is unprocessed; nothing below the last UID is
/// skipped, a failed MOVE must be retried) except those marked processed
/// (filed by COPY, or kept in place while the target folders were refused),
/// split at [`MAX_FETCH_SIZE`].
fn search_query(oversized: bool) -> String {
    format!("UNKEYWORD {PROCESSED_KEYWORD} {}LARGER {MAX_FETCH_SIZE}", if oversized { "" } else { "NOT " })
}

/// UIDs matching `query`, ascending (oldest report first).
async fn search(session: &mut Session, query: &str) -> Result<Vec<u32>, ImapError> {
    let found = cmd(
        &format!("UID SEARCH {query}"),
        COMMAND_TIMEOUT,
        session.uid_search(query),
    )
    .await?;
    let mut uids: Vec<u32> = found.into_iter().collect();
    uids.sort_unstable();
    Ok(uids)
}

/// A list of UIDs for a log line, with runs collapsed: `1:3,7,9:10`
/// (RFC 3501 §9 `sequence-set` syntax).
fn uid_list(uids: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end.wrapping_add(1) {
            i += 1;
            end = uids[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

/// Most bytes fetched with one command (a larger message comes alone).
const FETCH_BATCH_BYTES: u64 = 4 << 20;

/// `uids` cut into the runs fetched with one command each: consecutive in
/// order, at most [`FILE_BATCH`] messages and [`FETCH_BATCH_BYTES`] (as the
/// server's RFC822.SIZE says) or one message. A single message needs no sizes.
async fn fetch_chunks(session: &mut Session, uids: &[u32]) -> Result<Vec<Vec<u32>>, ImapError> {
    if uids.len() <= 1 {
        return Ok(uids.iter().map(|&u| vec![u]).collect());
    }
    let set = uid_list(uids);
    let sizes: std::collections::HashMap<u32, u64> = cmd(&format!("UID FETCH {set} RFC822.SIZE"), FETCH_TIMEOUT, async {
        let responses = session.uid_fetch(&set, "RFC822.SIZE").await?;
        let all: Vec<_> = responses.try_collect().await?;
        Ok::<_, ProtoError>(all.iter().filter_map(|f| Some((f.uid?, u64::from(f.size?)))).collect())
    })
    .await?;
    let mut chunks: Vec<Vec<u32>> = Vec::new();
    let mut bytes = 0;
    for &uid in uids {
        let size = sizes.get(&uid).copied().unwrap_or(FETCH_BATCH_BYTES);
        match chunks.last_mut() {
            Some(c) if c.len() < FILE_BATCH && bytes + size <= FETCH_BATCH_BYTES => {
                c.push(uid);
                bytes += size;
            }
            _ => {
                chunks.push(vec![uid]);
                bytes = size;
            }
        }
    }
    Ok(chunks)
}

/// The whole messages `uids` (ascending), each `None` if it is gone, in one
/// command. The client's response buffers are dropped as soon as the bytes
/// are taken out.
async fn fetch(session: &mut Session, uids: &[u32]) -> Result<Vec<Option<Vec<u8>>>, ImapError> {
    let set = uid_list(uids);
    cmd(
        &format!("UID FETCH {set} BODY.PEEK[]"),
        FETCH_TIMEOUT,
        async {
            let mut responses = session.uid_fetch(&set, "BODY.PEEK[]").await?;
            let mut bodies: Vec<Option<Vec<u8>>> = vec![None; uids.len()];
            // Drain to the tagged OK; unsolicited FETCHes (flag changes of other
            // messages) may be interleaved (RFC 3501 §7).
            while let Some(f) = responses.try_next().await? {
                // A response without its UID can only be the one message asked for.
                let i = match f.uid {
                    Some(u) => uids.iter().position(|&x| x == u),
                    None => (uids.len() == 1).then_some(0),
                };
                let Some(i) = i else { continue };
                if bodies[i].is_none() {
                    bodies[i] = f.body().map(<[u8]>::to_vec);
                }
            }
            Ok::<_, ProtoError>(bodies)
        },
    )
    .await
}

/// File the UID set `uids` into `target`: `UID MOVE` (RFC 6851 §3), or without it `UID COPY`,
/// the keyword [`PROCESSED_KEYWORD`] on the original and, with UIDPLUS, `UID
/// EXPUNGE` of exactly those UIDs (RFC 4315 §2.1; a bare EXPUNGE would also remove
/// whatever a person marked `\Deleted`). A refused MOVE or COPY (quota, rights)
/// marks the message in place instead, logged once per episode. `Ok(true)` when
/// filed, `Ok(false)` when marked in place.
async fn file(
    session: &mut Session,
    caps: &ServerCaps,
    uids: &str,
    target: &str,
    ctx: &Ctx<'_>,
) -> Result<bool, ImapError> {
    let moved = if caps.mv {
        cmd(
            &format!("UID MOVE {uids} {target:?}"),
            COMMAND_TIMEOUT,
            session.uid_mv(uids, target),
        )
        .await
    } else {
        cmd(
            &format!("UID COPY {uids} {target:?}"),
            COMMAND_TIMEOUT,
            session.uid_copy(uids, target),
        )
        .await
    };
    match moved {
        Ok(()) => {
            if let Some((since, marked)) = ctx.trouble.lock().unwrap_or_else(|p| p.into_inner()).filing.take() {
                info!("IMAP: filing works again after {:?} ({marked} message(s) marked {PROCESSED_KEYWORD} in place meanwhile)", since.elapsed());
            }
        }
        Err(e) if e.is_refusal() => {
            {
                let mut trouble = ctx.trouble.lock().unwrap_or_else(|p| p.into_inner());
                match &mut trouble.filing {
                    Some((_, marked)) => *marked += 1,
                    None => {
                        trouble.filing = Some((Instant::now(), 1));
                        warn!(
                            uids,
                            "IMAP: filing into {target:?} refused: {:#}; the message is marked {PROCESSED_KEYWORD} where it is, and so is every other until filing works again",
                            anyhow::Error::from(e)
                        );
                    }
                }
            }
            mark(session, uids, false).await?;
            return Ok(false);
        }
        Err(e) => return Err(e),
    }
    if caps.mv {
        return Ok(true);
    }
    mark(session, uids, caps.uidplus).await?;
    if caps.uidplus {
        cmd(&format!("UID EXPUNGE {uids}"), COMMAND_TIMEOUT, async {
            let expunged = session.uid_expunge(uids).await?;
            expunged.try_collect::<Vec<_>>().await?;
            Ok::<_, ProtoError>(())
        })
        .await?;
    }
    Ok(true)
}

/// Set [`PROCESSED_KEYWORD`] on the UID set `uids` (and `\Deleted` when it was copied and is
/// about to be expunged by UID).
async fn mark(session: &mut Session, uids: &str, deleted: bool) -> Result<(), ImapError> {
    let flags = if deleted { format!("{PROCESSED_KEYWORD} \\Deleted") } else { PROCESSED_KEYWORD.to_string() };
    cmd(&format!("UID STORE {uids} +FLAGS ({flags})"), COMMAND_TIMEOUT, async {
        let updates = session.uid_store(uids, format!("+FLAGS.SILENT ({flags})")).await?;
        updates.try_collect::<Vec<_>>().await?;
        Ok::<_, ProtoError>(())
    })
    .await
}

/// CREATE `folder` (RFC 3501 §6.3.3) unless it exists; subscribe it so mail
/// clients show it. CREATE refused and STATUS refused too means the server
/// will not have it: [`ImapError::FolderRefused`] with the server's words.
async fn ensure_folder(session: &mut Session, configured: &str, folder: &str) -> Result<(), ImapError> {
    match tokio::time::timeout(COMMAND_TIMEOUT, session.create(folder)).await {
        Ok(Ok(())) => {
            info!(folder = %folder, "IMAP: created folder");
            if let Ok(Err(e)) = tokio::time::timeout(COMMAND_TIMEOUT, session.subscribe(folder)).await {
                debug!(folder = %folder, "IMAP: SUBSCRIBE failed: {e}");
            }
            Ok(())
        }
        // NO [ALREADYEXISTS] is the usual answer; make sure that is what it meant.
        Ok(Err(refused @ (ProtoError::No(_) | ProtoError::Bad(_)))) => {
            match tokio::time::timeout(COMMAND_TIMEOUT, session.status(folder, "(UIDVALIDITY)")).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(ProtoError::No(_) | ProtoError::Bad(_))) => Err(ImapError::FolderRefused {
                    configured: configured.to_string(),
                    folder: folder.to_string(),
                    said: format!("CREATE: {}", said(&refused)),
                }),
                Ok(Err(e)) => Err(protocol(&format!("STATUS {folder:?}"), e)),
                Err(_) => Err(timed_out(&format!("STATUS {folder:?}"), COMMAND_TIMEOUT)),
            }
        }
        Ok(Err(e)) => Err(protocol(&format!("CREATE {folder:?}"), e)),
        Err(_) => Err(timed_out(&format!("CREATE {folder:?}"), COMMAND_TIMEOUT)),
    }
}

async fn logout(session: &mut Session) {
    match tokio::time::timeout(LOGOUT_TIMEOUT, session.logout()).await {
        Ok(Ok(())) => debug!("IMAP: logged out"),
        Ok(Err(e)) => debug!("IMAP: LOGOUT failed: {e}"),
        Err(_) => debug!("IMAP: LOGOUT timed out"),
    }
}

// ---------------------------------------------------------------- connecting

/// TCP, TLS per `cfg.tls`, greeting, LOGIN (RFC 3501 §6.2.3), CAPABILITY.
async fn connect_and_login(cfg: &ImapConfig) -> Result<(Session, ServerCaps), ImapError> {
    let server = format!("{}:{}", cfg.host, cfg.port);
    let connect_err = |source: BoxError| ImapError::Connect {
        server: server.clone(),
        source,
    };
    let tcp = match tokio::time::timeout(
        CONNECT_TIMEOUT,
        TcpStream::connect((cfg.host.as_str(), cfg.port)),
    )
    .await
    {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => return Err(connect_err(e.into())),
        Err(_) => {
            return Err(connect_err(
                format!("no connection within {CONNECT_TIMEOUT:?}").into(),
            ));
        }
    };
    let _ = tcp.set_nodelay(true);

    let client: async_imap::Client<Box<dyn ImapIo>> = match cfg.tls {
        Tls::Implicit => {
            let tls = tls_handshake(cfg, &server, tcp).await?;
            let mut client = async_imap::Client::new(Box::new(tls) as Box<dyn ImapIo>);
            read_greeting(&mut client, &server).await?;
            client
        }
        Tls::None => {
            let mut client = async_imap::Client::new(Box::new(tcp) as Box<dyn ImapIo>);
            read_greeting(&mut client, &server).await?;
            client
        }
        Tls::Starttls => {
            let mut plain = async_imap::Client::new(tcp);
            let greeting = read_greeting(&mut plain, &server).await?;
            starttls_offered(&greeting).map_err(|why| ImapError::Tls {
                server: server.clone(),
                source: why.into(),
            })?;
            // RFC 3501 §6.2.1. Whatever the server sent before TLS is discarded
            // with the plain client's buffer (no STARTTLS response injection).
            match tokio::time::timeout(
                COMMAND_TIMEOUT,
                plain.run_command_and_check_ok("STARTTLS", None),
            )
            .await
            {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    return Err(ImapError::Tls {
                        server,
                        source: format!("the server refused STARTTLS: {e}").into(),
                    });
                }
                Err(_) => {
                    return Err(ImapError::Tls {
                        server,
                        source: format!("no answer to STARTTLS within {COMMAND_TIMEOUT:?}").into(),
                    });
                }
            }
            let tls = tls_handshake(cfg, &server, plain.into_inner()).await?;
            // No second greeting after STARTTLS.
            async_imap::Client::new(Box::new(tls) as Box<dyn ImapIo>)
        }
    };
    let mut session = match tokio::time::timeout(
        COMMAND_TIMEOUT,
        client.login(&cfg.username, cfg.password.expose()),
    )
    .await
    {
        Ok(Ok(session)) => session,
        Ok(Err((e @ (ProtoError::No(_) | ProtoError::Bad(_)), _))) => {
            return Err(ImapError::Auth {
                user: cfg.username.clone(),
                source: e.into(),
            });
        }
        Ok(Err((e, _))) => return Err(protocol("LOGIN", e)),
        Err(_) => return Err(timed_out("LOGIN", COMMAND_TIMEOUT)),
    };
    let caps = cmd("CAPABILITY", COMMAND_TIMEOUT, session.capabilities()).await?;
    let names = caps
        .iter()
        .map(|c| match c {
            async_imap::types::Capability::Imap4rev1 => "IMAP4rev1".to_string(),
            async_imap::types::Capability::Auth(a) => format!("AUTH={a}"),
            async_imap::types::Capability::Atom(a) => a.clone(),
        })
        .collect();
    let caps = ServerCaps::from_names(names);
    info!(server = %server, user = %cfg.username, tls = tls_name(cfg.tls), idle = caps.idle, r#move = caps.mv, "IMAP: logged in");
    Ok((session, caps))
}

/// What the server said when we connected (RFC 3501 §7.1.1, §7.1.4, §7.1.5).
#[derive(Debug, PartialEq, Eq)]
struct Greeting {
    /// `* PREAUTH`: the server claims we are logged in already.
    preauth: bool,
    /// Capabilities from a `[CAPABILITY ...]` response code, if the server sent one.
    capabilities: Option<Vec<String>>,
}

async fn read_greeting<T>(
    client: &mut async_imap::Client<T>,
    server: &str,
) -> Result<Greeting, ImapError>
where
    T: AsyncRead + AsyncWrite + Unpin + fmt::Debug + Send,
{
    let err = |source: BoxError| ImapError::Connect {
        server: server.to_string(),
        source,
    };
    let response = match tokio::time::timeout(CONNECT_TIMEOUT, client.read_response()).await {
        Ok(Ok(Some(r))) => r,
        Ok(Ok(None)) => {
            return Err(err(
                "the server closed the connection before its greeting".into()
            ));
        }
        Ok(Err(e)) => return Err(err(e.into())),
        Err(_) => return Err(err(format!("no greeting within {CONNECT_TIMEOUT:?}").into())),
    };
    match response.parsed() {
        Response::Data { status, outcome } => {
            let capabilities = match &outcome.code {
                Some(ResponseCode::Capabilities(c)) => Some(
                    c.iter()
                        .map(|c| match c {
                            async_imap::imap_proto::Capability::Imap4rev1 => {
                                "IMAP4rev1".to_string()
                            }
                            async_imap::imap_proto::Capability::Auth(a) => format!("AUTH={a}"),
                            async_imap::imap_proto::Capability::Atom(a) => a.to_string(),
                        })
                        .collect(),
                ),
                _ => None,
            };
            match status {
                Status::Ok => Ok(Greeting {
                    preauth: false,
                    capabilities,
                }),
                Status::PreAuth => Ok(Greeting {
                    preauth: true,
                    capabilities,
                }),
                _ => Err(err(format!(
                    "the server refused the connection: {}",
                    outcome
                        .information
                        .as_deref()
                        .unwrap_or("(no reason given)")
                )
                .into())),
            }
        }
        other => Err(err(format!("unexpected greeting: {other:?}").into())),
    }
}

/// Whether STARTTLS may proceed after this greeting. A PREAUTH greeting on a
/// plain connection is refused: STARTTLS is only valid before authentication
/// (RFC 3501 §6.2.1), and an attacker could use PREAUTH to keep us in clear
/// text. A greeting that lists capabilities without STARTTLS is refused too;
/// without a list, the STARTTLS command itself tells.
fn starttls_offered(greeting: &Greeting) -> Result<(), String> {
    if greeting.preauth {
        return Err(
            "the server greeted with PREAUTH before STARTTLS; refusing to continue in clear text"
                .into(),
        );
    }
    match &greeting.capabilities {
        Some(caps) if !caps.iter().any(|c| c.eq_ignore_ascii_case("STARTTLS")) => Err(format!(
            "the server does not offer STARTTLS (capabilities: {}); refusing to continue in clear text",
            caps.join(" ")
        )),
        _ => Ok(()),
    }
}

async fn tls_handshake(
    cfg: &ImapConfig,
    server: &str,
    tcp: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ImapError> {
    let err = |source: BoxError| ImapError::Tls {
        server: server.to_string(),
        source,
    };
    let config = crate::tls::client_config(cfg.ca_file.as_deref()).map_err(|e| err(e.into()))?;
    // Certificates are checked against `host` (a DNS name or an IP address).
    let name = ServerName::try_from(cfg.host.clone())
        .map_err(|e| err(format!("{:?} is not a valid TLS server name: {e}", cfg.host).into()))?;
    match tokio::time::timeout(
        CONNECT_TIMEOUT,
        TlsConnector::from(config).connect(name, tcp),
    )
    .await
    {
        Ok(Ok(tls)) => Ok(tls),
        Ok(Err(e)) => Err(err(e.into())),
        Err(_) => Err(err(
            format!("no TLS handshake within {CONNECT_TIMEOUT:?}").into()
        )),
    }
}

// ---------------------------------------------------------------- helpers

/// Run one IMAP command under `limit`; a server refusal, an I/O error or the
/// timeout all become [`ImapError::Protocol`] naming `what`.
async fn cmd<T, E>(
    what: &str,
    limit: Duration,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, ImapError>
where
    E: Into<BoxError>,
{
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(protocol(what, e)),
        Err(_) => Err(timed_out(what, limit)),
    }
}

fn protocol(what: &str, e: impl Into<BoxError>) -> ImapError {
    ImapError::Protocol {
        what: what.to_string(),
        source: e.into(),
    }
}

fn timed_out(what: &str, limit: Duration) -> ImapError {
    protocol(what, format!("no answer within {limit:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    fn cfg(port: u16, tls: Tls) -> ImapConfig {
        ImapConfig {
            host: "127.0.0.1".into(),
            port,
            tls,
            username: "security@example.test".into(),
            password: Secret::new("hunter2"),
            ca_file: None,
            folder: "INBOX".into(),
            processed_folder: "secmail/processed".into(),
            quarantine_folder: "secmail/quarantine".into(),
            idle: true,
            poll_interval: Duration::from_secs(60),
        }
    }

    #[test]
    fn backoff_doubles_to_the_cap() {
        let mut d = source::BACKOFF_START;
        let mut seen = vec![d];
        for _ in 0..9 {
            d = source::next_backoff(d);
            seen.push(d);
        }
        let secs: Vec<u64> = seen.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 64, 64, 64]);
    }

    #[test]
    fn idle_is_reissued_within_rfc_2177_bounds() {
        assert_eq!(
            idle_period(Duration::from_secs(60)),
            Duration::from_secs(60)
        );
        assert_eq!(idle_period(Duration::from_secs(3600)), IDLE_MAX);
        assert!(IDLE_MAX < Duration::from_secs(29 * 60));
    }

    #[test]
    fn uidvalidity_decides_rescan() {
        assert_eq!(resume(None, 7), Resume::FirstVisit);
        assert_eq!(resume(Some((7, 42)), 7), Resume::Continue(42));
        assert_eq!(resume(Some((6, 42)), 7), Resume::UidValidityChanged(6));
    }

    #[test]
    fn search_criteria() {
        assert_eq!(search_query(false), "UNKEYWORD $SecmailProcessed NOT LARGER 268435456");
        assert_eq!(search_query(true), "UNKEYWORD $SecmailProcessed LARGER 268435456");
    }

    #[test]
    fn uid_lists_collapse_runs() {
        assert_eq!(uid_list(&[]), "");
        assert_eq!(uid_list(&[5]), "5");
        assert_eq!(uid_list(&[1, 2, 3, 7, 9, 10]), "1:3,7,9:10");
        assert_eq!(uid_list(&[u32::MAX - 1, u32::MAX]), "4294967294:4294967295");
    }

    #[test]
    fn capabilities_are_matched_case_insensitively() {
        let c = ServerCaps::from_names(vec!["IMAP4rev1".into(), "idle".into(), "UIDPLUS".into()]);
        assert!(c.idle);
        assert!(!c.mv);
        let mut c = ServerCaps::from_names(vec!["MOVE".into(), "uidplus".into(), "NAMESPACE".into()]);
        assert!(c.mv && !c.idle && c.uidplus && c.namespace);
        c.remove(&["move", "UIDPLUS"]);
        assert!(!c.mv && !c.uidplus && c.namespace);
        assert_eq!(c.names, ["NAMESPACE"]);
    }

    #[test]
    fn starttls_refusals() {
        let g = |preauth, caps: Option<&[&str]>| Greeting {
            preauth,
            capabilities: caps.map(|c| c.iter().map(|s| s.to_string()).collect()),
        };
        assert!(starttls_offered(&g(false, None)).is_ok());
        assert!(starttls_offered(&g(false, Some(&["IMAP4rev1", "STARTTLS"]))).is_ok());
        let e = starttls_offered(&g(false, Some(&["IMAP4rev1"]))).unwrap_err();
        assert!(e.contains("does not offer STARTTLS"), "{e}");
        let e = starttls_offered(&g(true, Some(&["STARTTLS"]))).unwrap_err();
        assert!(e.contains("PREAUTH"), "{e}");
    }

    #[test]
    fn the_servers_words_are_quoted_plainly() {
        assert_eq!(
            server_words("code: None, info: Some(\"[CANNOT] Character not allowed in mailbox name: '.' (0.001 secs).\")"),
            "[CANNOT] Character not allowed in mailbox name: '.' (0.001 secs)."
        );
        assert_eq!(server_words("outcome: ResponseOutcome { code: None, information: Some(\"Invalid \\\"name\\\"\") }"), "Invalid \"name\"");
        assert_eq!(server_words("no info here"), "no info here");
    }

    #[test]
    fn refusals_are_told_apart_from_broken_connections() {
        assert!(protocol("UID MOVE", ProtoError::No("over quota".into())).is_refusal());
        assert!(!protocol("UID MOVE", ProtoError::ConnectionLost).is_refusal());
        assert!(!timed_out("UID MOVE", COMMAND_TIMEOUT).is_refusal());
        let folder = ImapError::FolderRefused { configured: "a/b".into(), folder: "a/b".into(), said: "NO Invalid mailbox name".into() };
        assert!(folder.is_folder_problem() && !folder.is_refusal());
        assert!(folder.to_string().contains("Invalid mailbox name"), "{folder}");
    }

    /// `run` must be spawnable on a multi-threaded runtime.
    #[test]
    fn run_future_is_send() {
        fn is_send<T: Send>(_: &T) {}
        let handler: Handler =
            std::sync::Arc::new(|_| Box::pin(async { Ok(Disposition::Processed) }));
        let fut = run(
            cfg(1, Tls::None),
            Store::open_in_memory().unwrap(),
            handler,
            CancellationToken::new(),
            Progress::default(),
        );
        is_send(&fut);
    }

    /// A one-shot loopback listener that sends `greeting`, then answers every
    /// command line with `reply` (tag substituted), and closes on EOF.
    async fn fake_server(greeting: &'static str, reply: &'static str) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            s.write_all(greeting.as_bytes()).await.unwrap();
            let mut buf = [0u8; 1024];
            loop {
                let n = match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let line = String::from_utf8_lossy(&buf[..n]);
                let tag = line.split_whitespace().next().unwrap_or("*").to_string();
                let _ = s.write_all(reply.replace("TAG", &tag).as_bytes()).await;
            }
        });
        port
    }

    #[tokio::test]
    async fn starttls_not_offered_is_a_tls_error() {
        let port = fake_server(
            "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi\r\n",
            "TAG BAD no\r\n",
        )
        .await;
        let e = check_login(&cfg(port, Tls::Starttls)).await.unwrap_err();
        assert!(
            matches!(e.downcast_ref::<ImapError>(), Some(ImapError::Tls { .. })),
            "{e:#}"
        );
        assert!(
            format!("{e:#}").contains("does not offer STARTTLS"),
            "{e:#}"
        );
    }

    #[tokio::test]
    async fn starttls_refused_is_a_tls_error() {
        let port = fake_server("* OK hi\r\n", "TAG BAD unknown command\r\n").await;
        let e = check_login(&cfg(port, Tls::Starttls)).await.unwrap_err();
        assert!(format!("{e:#}").contains("refused STARTTLS"), "{e:#}");
    }

    #[tokio::test]
    async fn rejected_login_is_an_auth_error_without_the_password() {
        let port = fake_server(
            "* OK hi\r\n",
            "TAG NO [AUTHENTICATIONFAILED] Authentication failed.\r\n",
        )
        .await;
        let e = check_login(&cfg(port, Tls::None)).await.unwrap_err();
        assert!(
            matches!(e.downcast_ref::<ImapError>(), Some(ImapError::Auth { .. })),
            "{e:#}"
        );
        let text = format!("{e:#}");
        assert!(
            text.contains("security@example.test") && !text.contains("hunter2"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn nothing_listening_is_a_connect_error() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let e = check_login(&cfg(port, Tls::Implicit)).await.unwrap_err();
        assert!(
            matches!(
                e.downcast_ref::<ImapError>(),
                Some(ImapError::Connect { .. })
            ),
            "{e:#}"
        );
    }

    /// With the server unreachable, `run` keeps retrying and still stops at once
    /// when told to.
    #[tokio::test]
    async fn shutdown_stops_a_retrying_source() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let handler: Handler =
            std::sync::Arc::new(|_| Box::pin(async { Ok(Disposition::Processed) }));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(
            cfg(port, Tls::None),
            Store::open_in_memory().unwrap(),
            handler,
            shutdown.clone(),
            Progress::default(),
        ));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !task.is_finished(),
            "run must not give up on connection errors"
        );
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .expect("run stops promptly")
            .unwrap()
            .unwrap();
    }
}
